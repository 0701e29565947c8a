// `monge eval MAP --data SPEC --out DIR`: a map scored on a frozen degraded test set.

#include "host/cli/commands.hpp"

namespace monge::cli {
namespace {

constexpr const char* kEvalHelp = R"(Usage: monge eval MAP --data SPEC --out DIR [OPTIONS]

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
  --data SPEC        the test set (see above); required
  --reference DIR    clean originals of a folder of degraded images
  --noise SPEC       noise model NAME:key=value,... (e.g. gaussian:sigma=0.05) or none; default:
                     the noise the map was trained with, as its file records it (monge info
                     shows it; TorchScript maps and older map files record none: give --noise)
  --seed S           seed of the degradation noise (default 0)
  --metrics LIST     metric plugins with optional parameters, comma-separated (default psnr,ssim),
                     e.g. psnr,ssim,fid:classifier=fmnist.pt; set-level metrics (FID) have no
                     per-image values
  --out DIR          output folder, created if missing; required
  --grid K           images in grid.png (rows clean, degraded, restored; default 8, 0: none)
  --batch N          images per network call (default 256)
  --threads N        LibTorch threads (default: the global --threads, or all cores)
  --device D         auto | cpu | cuda (default auto)
  --no-progress      no progress lines on stderr
  --trust-code       also read map files that are programs (formats 1 and 2, TorchScript; see
                     monge apply --help)

Exit codes: 0 done, 1 bad input or a failed computation (missing map file, unknown metric,
mismatched shapes, empty set), 2 bad command line. Lua: monge.evaluate{...} (docs/lua.md).
)";

// `monge eval` is the Lua function monge.evaluate behind a command-line parser, both in
// share/monge/lua/monge/evaluate.lua: one implementation for the CLI and for pipelines.
int run(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> lua_args = args;
  if (opt.quiet) lua_args.insert(lua_args.begin(), "--no-progress");
  return run_lua_command(opt, lua_args, kEvalHelp, "eval_cli.lua");
}

std::string help() { return kEvalHelp; }

}  // namespace

Command eval_command() {
  return {"eval",
          {{"[OPTIONS] eval MAP --data SPEC --out DIR [--metrics psnr,ssim ...]",
            "score a map on a frozen degraded test set against the\ndegraded input; results.json, grid.png, report.html"}},
          &help, &run};
}

}  // namespace monge::cli
