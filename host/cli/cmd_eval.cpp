// `monge eval MAP --data SPEC --out DIR`: a map scored on a frozen degraded test set.

#include "host/cli/commands.hpp"
#include "host/lua/script_options.hpp"

namespace monge::cli {
namespace {

constexpr const char* kEvalHelpHead = R"(Usage: monge eval MAP --data SPEC --out DIR [OPTIONS]

Scores the map in MAP on a frozen test set of degraded images with known clean originals, next to
the degraded input itself (lifted by the map's operator, e.g. bicubic upsampling for a
super-resolution map) as the baseline, and writes DIR/results.json, DIR/grid.png and a
self-contained DIR/report.html. Nothing is written unless every score was computed.

Test sets (--data):
  fashion-mnist:test[:N]   the first N (default all 10,000) Fashion-MNIST test images (also
                           fashion-mnist:train[:N]); degraded here by the map's own operator and
                           the noise model of --noise, drawn from --seed: the same seed gives the
                           same degraded set, bit for bit (seed 0 is the set monge.train evaluates on)
  idx:IMAGES[:N]           the same from any IDX image file (plain or .gz)
  folder:DIR[:N]           clean images of one size in DIR (any format libvips reads), degraded
                           like the above
  DIR --reference CLEAN    degraded images in DIR (the measurements, at the measurement's size),
                           each matched to the clean image of the same file name (extension aside)
                           in CLEAN; --noise and --seed do not apply

Options:
)";

constexpr const char* kEvalHelpTail = R"(
Exit codes: 0 done, 1 bad input or a failed computation (missing map file, unknown metric,
mismatched shapes, empty set), 2 bad command line. Lua: monge.evaluate{...} (docs/lua.md).
)";

// The options come from their declaration (host/lua/script_options.cpp), which eval_cli.lua
// parses the command line with.
std::string help() { return kEvalHelpHead + host::eval_options().help() + kEvalHelpTail; }

// `monge eval` is the Lua function monge.evaluate behind a command-line parser, both in
// share/monge/lua/monge/evaluate.lua: one implementation for the CLI and for pipelines.
int run(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> lua_args = args;
  if (opt.quiet) lua_args.insert(lua_args.begin(), "--no-progress");
  return run_lua_command(opt, lua_args, help(), "eval_cli.lua");
}

}  // namespace

Command eval_command() {
  return {"eval",
          {{"[OPTIONS] eval MAP --data SPEC --out DIR [--metrics psnr,ssim ...]",
            "score a map on a frozen degraded test set against the\ndegraded input; results.json, grid.png, report.html"}},
          &help, &run, &host::eval_options};
}

}  // namespace monge::cli
