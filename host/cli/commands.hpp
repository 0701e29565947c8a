#pragma once
// The subcommands of `monge`, one table: main() dispatches through it, and the command list of
// `monge --help`, "unknown command ... did you mean" and `monge help NAME` come from it. A new
// subcommand is one file, host/cli/cmd_NAME.cpp, defining its row, and that row in commands.cpp.

#include <string>
#include <vector>

#include "host/cli/cli_common.hpp"

namespace monge::cli {

/// One line of the command list in `monge --help`: the synopsis after "monge " and what it does
/// (lines after the first of `summary` continue under it; "" for none).
struct Usage {
  std::string synopsis;
  std::string summary;
};

struct Command {
  std::string name;
  std::vector<Usage> usage;  ///< its lines in the command list of `monge --help`
  /// The text of `monge NAME --help` and `monge help NAME`; null: the top-level help.
  std::string (*help)() = nullptr;
  /// Runs it with the arguments after its name; returns the exit code. Throws UsageError for a
  /// bad command line, PluginError for a missing plugin, anything else for a failure.
  int (*run)(const Options& opt, const std::vector<std::string>& args) = nullptr;
  /// Its declared options (`monge help --markdown NAME` prints their table); null: none.
  const host::OptionSet& (*options)() = nullptr;
};

/// Every subcommand, in the order `monge --help` lists them.
const std::vector<Command>& commands();
/// The command called `name`; null when there is none.
const Command* find_command(const std::string& name);
/// The text of `monge --help`: the command list from the table, the global options, the
/// environment, the exit codes.
std::string main_help();

}  // namespace monge::cli
