#pragma once
// The options of the commands and functions written in Lua, declared once (host/core/options.hpp):
// `monge eval` and monge.evaluate{} (scripts/lua/monge/eval_cli.lua, evaluate.lua), `monge
// calibrate` and monge.calibrate{} (calibrate_cli.lua, calibrate.lua). The scripts parse their
// command lines and check their option tables through monge.options (host/lua/options.cpp); the
// --help option lists and the tables of docs/cli.md and docs/lua.md come from the same sets
// (tests/host/options_test.cpp compares them). Options that mean the same on the command line and
// in Lua are declared once and shared by both sets.

#include <string>

#include "host/core/options.hpp"

namespace monge::host {

/// `monge eval`'s options: the test set, the noise, the metrics, the outputs, the run's settings.
const OptionSet& eval_options();
/// monge.evaluate{}'s: the map and the tensors (opaque keys), and the settings it shares with eval.
const OptionSet& evaluate_options();
/// `monge calibrate`'s: the two sets, the operator, the search, a simulated measured set.
const OptionSet& calibrate_options();
/// monge.calibrate{}'s: the tensors, the operator by name with its known parameters, the search.
const OptionSet& calibrate_lua_options();

/// The option set a Lua script names: "eval", "calibrate" (command lines), "monge.evaluate",
/// "monge.calibrate" (option tables), the monge.ot.* functions' ("monge.ot.sinkhorn", ...) and
/// monge.train's ("train"), apply's and batch's; null for another name.
const OptionSet* find_option_set(const std::string& name);
/// The names find_option_set knows, in the order the docs show them.
std::vector<std::string> option_set_names();

}  // namespace monge::host
