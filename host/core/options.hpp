#pragma once
// Option sets: the host's own options (apply, batch, ...) declared once, as the plugins declare
// their parameters: a monge::Schema (name, type, default, range, choices, doc) plus what a
// command line needs beside it (the flag's value placeholder, aliases, a default that reads as
// words). From the one declaration come the command-line parser and its errors, the --help
// option list, the Lua argument checking and the option tables of docs/cli.md (a test compares
// them). A Lua key is the option's name (max_pixels); its flag is the name with '-' for '_'
// (--max-pixels).

#include <optional>
#include <string>
#include <vector>

#include "monge/params.hpp"

namespace monge::host {

/// What the command line and the docs need beside the schema entry of one option.
struct OptionCli {
  std::string value;                 ///< placeholder in help ("N", "D"); "" for a flag (boolean)
  std::string default_text;          ///< the default in words, where the schema's is a sentinel
  std::vector<std::string> aliases;  ///< other flags for it ("--color")
  bool negated = false;              ///< a boolean whose flag turns it off: --no-NAME (help: "no " + doc)
  bool cli_only = false;             ///< not a Lua key (e.g. --trust-code's Lua twin lives elsewhere)
  bool lua_only = false;             ///< no flag
  /// The command line's default where it differs from Lua's (progress lines: on unless -q).
  std::optional<Value> cli_default;
};

/// A flag with a value placeholder ("N"), its default in words where the declared one is a
/// sentinel, and other spellings ("--color").
OptionCli with(std::string value, std::string default_text = "", std::vector<std::string> aliases = {});
/// A flag only: its value means something else to the Lua function (a spec string where Lua takes
/// tensors or a list), so it is no Lua key.
OptionCli cli_only(std::string value, std::string default_text = "");
/// A Lua key only (no flag), with its default in words.
OptionCli lua_only(std::string default_text = "");

class OptionSet {
 public:
  explicit OptionSet(std::string owner) : owner_(std::move(owner)) {}

  /// Adds the options declared by `schema` (in order), each with its command-line extras (by
  /// name; options without an entry get a placeholder from their type).
  OptionSet& add(const Schema& schema, const std::vector<std::pair<std::string, OptionCli>>& cli = {});
  /// Every option of `other` (e.g. batch takes all of apply's).
  OptionSet& add(const OptionSet& other);
  /// Where options taken from another set are used here.
  enum class Use { Both, LuaOnly, CliOnly };
  /// The options `names` of `other`, declared there (eval takes apply's --threads, --device and
  /// --trust-code): as they are there (Both), without their flags (LuaOnly: for a Lua function's
  /// set) or without their Lua keys (CliOnly).
  OptionSet& add(const OptionSet& other, const std::vector<std::string>& names, Use use = Use::Both);
  /// A Lua key whose value a Schema cannot hold (a tensor): the binding reads it itself; here it
  /// is only accepted as a key and documented (`values` and `default_text` as the table shows them).
  OptionSet& opaque(std::string name, std::string values, std::string default_text, std::string doc);

  const std::string& owner() const { return owner_; }
  const Schema& schema() const { return schema_; }
  const OptionCli& cli(const std::string& name) const;
  /// The flag of an option: "--" and the name with '-' for '_' (or --no-NAME for a negated one).
  std::string flag(const ParamSpec& spec) const;

  /// The keys a Lua table may hold: every option but the command-line-only ones, and the opaque keys.
  std::vector<std::string> lua_keys() const;

  /// Validates options given by a Lua table (keys are names) and fills the defaults; errors name
  /// `who` and the key.
  Params resolve(const ParamMap& given, const std::string& who) const;

  /// The parsed command line: options given (by name, as typed values), positional arguments.
  struct Parsed {
    ParamMap given;
    std::vector<std::string> positional;
    bool help = false;
  };
  /// Parses `args` ("--tile 512 in.png --no-progress ..."). Throws ParamError naming the flag for
  /// an unknown flag (with a suggestion), a missing value or a value of the wrong type or range.
  Parsed parse(const std::vector<std::string>& args) const;
  /// `parsed.given` validated with the command line's defaults filled in; errors name the flag.
  Params resolve_cli(const ParamMap& given) const;

  /// The options as --help lists them: "  --tile N          doc (default: 1024)", wrapped at 100.
  std::string help() const;
  /// The options as a Markdown table for docs/: option, Lua key, values, default, meaning (without
  /// the option column for a set that has no flags, e.g. monge.train's).
  std::string markdown() const;

 private:
  std::string owner_;
  Schema schema_;
  std::vector<std::pair<std::string, OptionCli>> cli_;
  struct Opaque {
    size_t position;  ///< the number of schema options declared before it (its place in the docs)
    std::string name, values, default_text, doc;
  };
  std::vector<Opaque> opaque_;
};

/// The default of an option as help and docs show it ("1024", "auto", "the receptive radius").
std::string default_text(const ParamSpec& spec, const OptionCli& cli, bool for_cli);

}  // namespace monge::host
