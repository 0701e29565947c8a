// `monge help [NAME]`: a command's help (the top-level help without NAME); `monge help --markdown
// NAME`: NAME's declared options as the Markdown table in docs/ (tests/host/options_test.cpp
// compares the docs with it).

#include <iostream>

#include "host/cli/commands.hpp"
#include "host/lua/script_options.hpp"

namespace monge::cli {
namespace {

// The option set whose table `monge help --markdown NAME` prints: a command's, or a Lua
// function's (train: monge.train, in docs/training.md; monge.evaluate, monge.calibrate and
// monge.ot.*, in docs/lua.md); null for none.
const host::OptionSet* documented_options(const std::string& name) {
  const Command* c = find_command(name);
  if (c && c->options) return &c->options();
  return host::find_option_set(name);
}

int run(const Options&, const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "--markdown")
    if (const host::OptionSet* set = documented_options(args[1])) {
      std::cout << set->markdown();
      return kExitOk;
    }
  const Command* c = args.empty() ? nullptr : find_command(args[0]);
  std::cout << (c && c->help ? c->help() : main_help());
  return kExitOk;
}

}  // namespace

Command help_command() {
  return {"help",
          {{"--help | monge COMMAND --help | monge help COMMAND", ""},
           {"help --markdown COMMAND|train|monge.FUNCTION",
            "print the options of a command (or of a Lua function:\ntrain, monge.evaluate, monge.ot.sinkhorn, ...) as the\ntable in docs/cli.md (docs/training.md, docs/lua.md)"}},
          nullptr, &run};
}

}  // namespace monge::cli
