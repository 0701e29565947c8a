// `monge calibrate`: a degradation's unknown parameter and noise level estimated from unpaired sets.

#include "host/cli/commands.hpp"

namespace monge::cli {
namespace {

constexpr const char* kCalibrateHelp = R"(Usage: monge calibrate --clean SET --measured SET --operator NAME[:key=value,...] [OPTIONS]

Estimates what a degradation did from two unpaired image sets: clean images of the kind you want,
and degraded images (not of the same scenes). For each candidate value of the operator's unknown
parameter the clean images are degraded by the operator itself and their averaged power spectrum
is matched to the degraded set's, in log space, with white noise of a fitted level on top
(golden-section search; docs/lua.md, monge.calibrate). Use the estimate to train a map
(monge.operator / monge.noise with these values) and for its Wiener lift.

SET: fashion-mnist:test[:N], fashion-mnist:train[:N], idx:FILE[:N], folder:DIR[:N], or a folder
  (images of one size; --measured at the measurement's size).

Options:
  --clean SET         clean images (required)
  --measured SET      degraded images, unpaired with the clean ones (required)
  --operator SPEC     the forward operator with the parameters you know, e.g. gaussian_blur:size=13
                      or downsample (required)
  --estimate NAME     the parameter to estimate (default: sigma for gaussian_blur; for downsample
                      the factor, which is the ratio of the image sizes); none: the operator is
                      known, estimate the noise level only
  --range LO,HI       where to search for it (default 0.3,6 for a blur's sigma)
  --images N          images of each set used (default 2000)
  --iterations N      golden-section steps (default 24: the range shrinks to 1e-5 of itself)
  --degrade SPEC      degrade the --measured images first with this operator: a self-check with a
                      known answer, e.g. --degrade gaussian_blur:size=13,sigma=1.5
  --noise SPEC        with --degrade: noise added after it, e.g. gaussian:sigma=0.05
  --seed N            with --noise: its seed (default 0)
  --json FILE         also write the estimate, its search and the inputs as JSON
  --threads N         LibTorch threads (default: the global --threads, or all cores)

Prints the estimate and the operator and noise specs to train with. Exit codes: 0 done, 1 bad
input (unreadable set, sizes the operator cannot relate), 2 bad command line.
Lua: monge.calibrate{...} (docs/lua.md).
)";

// `monge calibrate` is monge.calibrate behind a command-line parser (calibrate_cli.lua).
int run(const Options& opt, const std::vector<std::string>& args) {
  return run_lua_command(opt, args, kCalibrateHelp, "calibrate_cli.lua");
}

std::string help() { return kCalibrateHelp; }

}  // namespace

Command calibrate_command() {
  return {"calibrate",
          {{"[OPTIONS] calibrate --clean SET --measured SET --operator NAME[:key=value,...]",
            "estimate a degradation's unknown parameter (a blur's\nsigma, a downsampling factor) and the noise level\nfrom unpaired clean and degraded images"}},
          &help, &run};
}

}  // namespace monge::cli
