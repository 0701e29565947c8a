#pragma once
// How a library error names an option: as the command line spells it (--max-pixels 100) or as
// Lua does (max_pixels = 100). The apply library is called from both; its errors take the caller's
// spelling, so that neither user is told about a flag or key they did not type.

#include <string>

namespace monge::host {

struct OptionSpelling {
  bool cli = false;  ///< command-line flags; Lua keys otherwise

  /// The option `key` (a Lua key, e.g. "max_pixels"): "--max-pixels" or "max_pixels".
  std::string name(const std::string& key) const {
    if (!cli) return key;
    std::string flag = "--" + key;
    for (char& c : flag)
      if (c == '_') c = '-';
    return flag;
  }
  /// The option set to `value`: "--depth 8" or `depth = "8"` (`quoted`: a Lua string).
  std::string setting(const std::string& key, const std::string& value, bool quoted = false) const {
    if (cli) return name(key) + " " + value;
    return key + " = " + (quoted ? "\"" + value + "\"" : value);
  }
};

}  // namespace monge::host
