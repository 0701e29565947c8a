#pragma once
// Small text helpers shared by the host.

#include <cctype>
#include <string>

namespace monge::host {

/// `s` in ASCII lower case (file extensions, format names).
inline std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace monge::host
