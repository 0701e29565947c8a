#pragma once
// What the subcommands of `monge` share: the options given before the command, usage errors, the
// plugin registry and the parsing of a command's declared options (host/core/options.hpp).

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "host/core/options.hpp"
#include "host/core/registry.hpp"
#include "host/lua/runtime.hpp"

namespace monge::host {
struct LoadedMap;
}

namespace monge::cli {

using lua::kExitError;
using lua::kExitOk;
using lua::kExitPlugin;
using lua::kExitUsage;

/// The options before the command (monge [OPTIONS] COMMAND ...).
struct Options {
  std::vector<std::string> argv;  ///< the command line up to and including the command
  std::vector<std::filesystem::path> plugin_paths;
  bool use_env = true;
  bool quiet = false;
  int threads = 0;
};

/// A bad command line found below a command's own parsing; main() prints it as usage_error does.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Prints "monge: MSG" and where to find the usage; returns kExitUsage.
int usage_error(const std::string& msg);

/// Whether `args` ask for the command's help (--help or -h anywhere).
bool wants_help(const std::vector<std::string>& args);

/// The plugin registry with the built-in, MONGE_PLUGIN_PATH (unless --no-env-plugins) and
/// --plugin-path plugins.
host::Registry& registry(const Options& opt);
/// The registry's warnings (skipped plugin files) on stderr, unless -q.
void print_warnings(const host::Registry& reg, const Options& opt);

/// The options of `set` on the command line, validated, with the command line's defaults (a
/// progress line unless -q). Throws UsageError, naming the flag, for a bad command line.
struct CliOptions {
  Params params;
  std::vector<std::string> positional;
  bool help = false;
};
CliOptions parse_options(const host::OptionSet& set, const Options& opt, const std::vector<std::string>& args);

/// A stochastic map's noise seeded from --seed (apply, batch).
void seed_map(host::LoadedMap& map, const Params& p);

/// A subcommand written in Lua: `--help` prints `help`; otherwise share/monge/lua/monge/`script`
/// runs with the arguments (it parses them and sets the exit code).
int run_lua_command(const Options& opt, const std::vector<std::string>& args, const std::string& help, const char* script);

}  // namespace monge::cli
