// `monge calibrate`: a degradation's unknown parameter and noise level estimated from unpaired sets.

#include "host/cli/commands.hpp"
#include "host/lua/script_options.hpp"

namespace monge::cli {
namespace {

constexpr const char* kCalibrateHelpHead = R"(Usage: monge calibrate --clean SET --measured SET --operator NAME[:key=value,...] [OPTIONS]

Estimates what a degradation did from two unpaired image sets: clean images of the kind you want,
and degraded images (not of the same scenes). For each candidate value of the operator's unknown
parameter the clean images are degraded by the operator itself and their averaged power spectrum
is matched to the degraded set's, in log space, with white noise of a fitted level on top
(golden-section search; docs/lua.md, monge.calibrate). Use the estimate to train a map
(monge.operator / monge.noise with these values) and for its Wiener lift.

SET: fashion-mnist:test[:N], fashion-mnist:train[:N], idx:FILE[:N], folder:DIR[:N], or a folder
  (images of one size; --measured at the measurement's size).

Options:
)";

constexpr const char* kCalibrateHelpTail = R"(
Prints the estimate and the operator and noise specs to train with. Exit codes: 0 done, 1 bad
input (unreadable set, sizes the operator cannot relate), 2 bad command line.
Lua: monge.calibrate{...} (docs/lua.md).
)";

// `monge calibrate` is monge.calibrate behind a command-line parser (calibrate_cli.lua).
// The options come from their declaration (host/lua/script_options.cpp), which calibrate_cli.lua
// parses the command line with.
std::string help() { return kCalibrateHelpHead + host::calibrate_options().help() + kCalibrateHelpTail; }

int run(const Options& opt, const std::vector<std::string>& args) {
  return run_lua_command(opt, args, help(), "calibrate_cli.lua");
}

}  // namespace

Command calibrate_command() {
  return {"calibrate",
          {{"[OPTIONS] calibrate --clean SET --measured SET --operator NAME[:key=value,...]",
            "estimate a degradation's unknown parameter (a blur's\nsigma, a downsampling factor) and the noise level\nfrom unpaired clean and degraded images"}},
          &help, &run, &host::calibrate_options};
}

}  // namespace monge::cli
