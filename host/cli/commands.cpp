#include "host/cli/commands.hpp"

#include <algorithm>

namespace monge::cli {

// Each command's row, defined in its file (host/cli/cmd_NAME.cpp).
Command run_command();
Command plugins_command();
Command info_command();
Command map_command();
Command apply_command();
Command batch_command();
Command bench_command();
Command eval_command();
Command calibrate_command();
Command version_command();
Command help_command();

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      run_command(),   plugins_command(), info_command(),      map_command(),     apply_command(), batch_command(),
      bench_command(), eval_command(),    calibrate_command(), version_command(), help_command(),
  };
  return table;
}

const Command* find_command(const std::string& name) {
  const auto& table = commands();
  const auto it = std::find_if(table.begin(), table.end(), [&](const Command& c) { return c.name == name; });
  return it == table.end() ? nullptr : &*it;
}

namespace {

constexpr const char* kHelpHead = R"(monge - unpaired image restoration with learned unbalanced optimal-transport maps

Usage:
)";

constexpr const char* kHelpTail = R"(
Options (before the command):
  --plugin-path PATH   also load plugins from PATH, a directory or one plugin file (repeatable)
  --no-env-plugins     ignore MONGE_PLUGIN_PATH (use only built-in and --plugin-path plugins)
  --threads N          LibTorch threads for the pipeline (default: all cores, or $MONGE_THREADS)
  -q, --quiet          do not print plugin warnings

Environment:
  MONGE_PLUGIN_PATH    colon-separated plugin directories, searched after the built-in one
  MONGE_THREADS        default thread count
  MONGE_CPU_CACHE_MB   MiB of freed CPU tensor memory kept for reuse (default 1024; 0: none)
  MONGE_FASHION_MNIST  Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)

Exit codes:
  0  success
  1  the pipeline failed (Lua error, bad input, failed computation); the message says why
  2  bad command line
  3  a plugin could not be found or loaded

Documentation: docs/ in the source tree (docs/lua.md, docs/plugins.md, docs/cli.md).
)";

// Where the summaries of the command list start.
constexpr size_t kSummaryColumn = 46;

}  // namespace

std::string main_help() {
  std::string out = kHelpHead;
  const std::string indent(kSummaryColumn, ' ');
  for (const auto& command : commands())
    for (const auto& [synopsis, summary] : command.usage) {
      std::string line = "  monge " + synopsis;
      if (!summary.empty()) {
        // The summary beside the synopsis when there is room, else on the next line; its further
        // lines under its first.
        line += line.size() + 2 <= kSummaryColumn ? std::string(kSummaryColumn - line.size(), ' ') : "\n" + indent;
        for (char c : summary) line += c == '\n' ? "\n" + indent : std::string(1, c);
      }
      out += line + "\n";
    }
  return out + kHelpTail;
}

}  // namespace monge::cli
