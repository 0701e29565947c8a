// `monge apply MAP IN OUT`: one image restored, streamed in exact tiles (host/apply/stream.hpp).

#include <filesystem>
#include <iomanip>
#include <iostream>

#include <sys/resource.h>

#include "host/apply/options.hpp"
#include "host/apply/stream.hpp"
#include "host/cli/commands.hpp"
#include "host/core/threads.hpp"
#include "host/image/vips_io.hpp"
#include "host/map/map_file.hpp"
#include "host/map/map_module.hpp"

namespace monge::cli {
namespace {

constexpr const char* kApplyHelpHead = R"(Usage: monge apply MAP INPUT OUTPUT [OPTIONS]

Restores INPUT with the map in MAP (a map file written by training, or, with --trust-code, a
TorchScript module whose forward takes and returns N x C x H x W values in [-1, 1]) and writes
OUTPUT. Images of any size:
the input is streamed through libvips top to bottom, the network runs on tiles with a margin
(halo) of at least its receptive radius, so the result equals whole-image inference, and the
output is written progressively, never held whole. The map's operator lift runs first (bicubic
upsampling for a super-resolution map, whose output is k times larger).

INPUT: any format libvips reads (TIFF/BigTIFF, tiled and pyramidal TIFF, PNG, JPEG, WebP, ...),
8-bit, 16-bit or float (values in [0, 1]), grey or RGB, with or without alpha. libvips' untrusted
loaders are blocked; a truncated or corrupt file is an error.
OUTPUT: the format follows the extension; libvips save options go in brackets:
  out.tif[tile,pyramid,compression=deflate,bigtiff]   out.jpg[Q=90]   out.png[compression=9]
It is written to a temporary file beside it and renamed on success: a failure leaves no file.
The alpha channel is copied through untouched (repeated k x k by a map that enlarges k times).

Options:
)";

constexpr const char* kApplyHelpTail = R"(
Stochastic maps (trained by not, knot or otp; `monge info MAP` says so) draw new noise at each
call, by pixel position (tiles agree, whatever their size); --samples, --reduce and --seed are
for them.
)";

std::string apply_help() { return kApplyHelpHead + host::apply_options().help() + kApplyHelpTail; }

// Peak resident memory of this process so far, in MiB.
long peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;  // KiB on Linux
}

// OUTPUT (with optional [save options]) with ".sK" before the extension: out.s3.png[compression=9].
std::string sample_output_name(const std::string& spec, int64_t k) {
  const auto [file, options] = monge::image::split_save_options(spec);
  const std::filesystem::path p(file);
  const std::string name = (p.parent_path() / p.stem()).string() + ".s" + std::to_string(k) + p.extension().string();
  return name + options;
}

int run(const Options& opt, const std::vector<std::string>& args) {
  const CliOptions o = parse_options(host::apply_options(), opt, args);
  if (o.help) {
    std::cout << apply_help();
    return kExitOk;
  }
  const auto& files = o.positional;
  if (files.size() != 3) return usage_error("apply: give MAP INPUT OUTPUT (monge apply runs/gb/map.pt blurry.png restored.png)");
  const bool auto_precision = o.params.string("precision") == "auto";
  auto so = host::stream_options(o.params, "apply", host::OptionSpelling{true});  // the device and precision resolved before any work
  monge::host::set_threads(so.threads);
  auto map = host::load_map(files[0], registry(opt), {o.params.boolean("trust_code")});
  seed_map(map, o.params);
  auto* stochastic = dynamic_cast<host::StochasticMap*>(map.module.get());
  if (so.tiles.reduce == "all") {
    // K whole restorations, one file each: OUTPUT with .sK before the extension.
    const int64_t k = so.tiles.samples;
    so.tiles.samples = 1;
    so.tiles.reduce = "mean";
    if (!stochastic) return usage_error("apply: --reduce all needs a stochastic map; this map is deterministic");
    for (int64_t s = 1; s <= k; ++s) {
      const std::string out = sample_output_name(files[2], s);
      const auto r = host::apply_stream(map, files[1], out, so);
      if (!opt.quiet) std::cerr << "apply: sample " << s << " of " << k << " -> " << out << " in " << std::fixed
                                << std::setprecision(2) << r.seconds << " s\n";
    }
    return kExitOk;
  }
  const auto r = host::apply_stream(map, files[1], files[2], so);
  if (!opt.quiet)
    std::cerr << "apply: " << files[1] << " (" << r.in_width << "x" << r.in_height << ") -> " << files[2] << " ("
              << r.out_width << "x" << r.out_height << ", " << r.bands << " band" << (r.bands == 1 ? "" : "s")
              << (r.alpha ? " with alpha" : "") << ") in " << std::fixed << std::setprecision(2) << r.seconds << " s on "
              << so.device.str() << ", " << host::precision_name(r.plan.precision)
              << (auto_precision ? " (auto)" : "")
              << (r.plan.layout == monge::host::Layout::ChannelsLast ? " channels-last" : "") << ", " << std::setprecision(1)
              << double(r.out_width) * double(r.out_height) / 1e6 / r.seconds
              << " MPix/s, peak RSS " << peak_rss_mib() << " MiB; " << r.plan.why
              << (r.nonfinite ? "; " + std::to_string(r.nonfinite) + " NaN/infinite input samples replaced (--nan replace)" : "")
              << "\n";
  return kExitOk;
}

}  // namespace

Command apply_command() {
  return {"apply",
          {{"[OPTIONS] apply MAP IN OUT [--tile N --halo N --device D ...]",
            "restore an image of any size with a map file (or a\nTorchScript module), streamed in exact tiles; OUT is\nwritten atomically"}},
          &apply_help, &run, &host::apply_options};
}

}  // namespace monge::cli
