#include "host/apply/options.hpp"

#include <ATen/Parallel.h>

#include "host/core/device.hpp"
#include "host/core/precision.hpp"

namespace monge::host {
namespace {

constexpr int64_t kMaxSide = int64_t{1} << 20;

// --no-progress: on unless turned off on the command line (off by default in Lua).
OptionCli progress_flag() {
  OptionCli c;
  c.negated = true;
  c.cli_default = Value(true);
  return c;
}

OptionSet make_apply_options() {
  Schema s;
  s.integer("tile", 1024, 1, kMaxSide, "tile side in pixels of the network's input grid; a multiple of the network's alignment")
      .integer("halo", -1, 0, kMaxSide, "margin around each tile, in pixels; below the receptive radius tiles are no longer exact; for blended tiles, half the overlap")
      .integer("batch", 0, 1, kMaxSide, "windows (tiles with their margin) per network call")
      .integer("threads", 0, 1, 4096, "LibTorch threads")
      .choice("device", "auto", {"auto", "cpu", "cuda"}, "where the network runs: auto (CUDA when there is a GPU), cpu or cuda")
      .choice("precision", "auto", {"auto", "fp32", "bf16"},
              "the network's arithmetic: auto (bf16 where the hardware has it, i.e. CUDA or a CPU with AVX-512 BF16 or "
              "AMX, else fp32), fp32, or bf16 (an error on a CPU without it). bf16 ran the 8-channel unet 2.4-2.5x as fast "
              "as fp32 on an AVX-512 BF16 CPU (through the unet's fused oneDNN graph; MONGE_ONEDNN=0: LibTorch's ops) and "
              "differs from fp32 by a level or two in 8-bit output (docs/performance.md); "
              "the lift, the residual sum, strength and the output conversion stay fp32. The last line says which ran")
      .choice("layout", "auto", {"auto", "nchw", "channels-last"},
              "the network's feature-map layout: auto (channels-last where it runs in bf16 on a CPU on images of 65536 "
              "(256 x 256) network-input pixels or more, nchw otherwise), "
              "nchw, or channels-last (NHWC: oneDNN's convolutions skip reordering each layer; 1.3-1.7x the unets' speed "
              "on the CPUs we measured, in fp32 too, where results then differ from nchw's by float rounding, a unit in "
              "the last place; docs/performance.md). A unet in bf16 on a CPU runs its own fused oneDNN graph, channels-last "
              "whatever this says")
      .integer("shape_step", -1, 0, 4096,
               "round each window's sides up to a multiple of this many pixels, with zeros the network ignores, so that "
               "images of many sizes share the kernels oneDNN compiles per shape (4-6 ms for each new one, more than "
               "the network takes on a thumbnail; 11 ms for the unet's fused bf16 graph); the output is unchanged (fp32: bit "
               "for bit in the runs we made; bf16: within float rounding). 0: off; networks without monge::PaddedInput "
               "(TorchScript) run every window at its own size")
      .choice("depth", "input", {"input", "8", "16", "float"}, "output samples: input (the input's depth), 8, 16 or float")
      .choice("colour", "per-channel", {"per-channel", "luminance"},
              "a grey map on an RGB image: per-channel, or luminance (restore Y' of Y'CbCr, keep the chroma)")
      .integer("max_pixels", int64_t{1} << 30, 0, int64_t{1} << 62,
               "refuse inputs or outputs larger than this many pixels, checked on the header before anything is decoded (0: no "
               "limit); bounds the work a small file claiming a huge image can ask for")
      .choice("nan", "error", {"error", "replace"},
              "NaN or infinite samples in a float input: error (refused before any work, naming how many) or replace "
              "(NaN and -Inf read as 0, +Inf as full scale, as numpy's nan_to_num on [0, 1]; the last line says how many "
              "were replaced). Integer images cannot hold any")
      .boolean("progress", false, "progress line on stderr (rate, ETA)")
      .real("strength", 1, 0, 1,
            "realism knob from 0 to 1: Q(y) + S (T(Q(y)) - Q(y)), the map's lift (e.g. the Wiener restoration) at 0, "
            "the trained map at 1; lower keeps closer to the measurement's best linear estimate (PSNR), higher looks "
            "more real. The mean squared error grows about as S^2 while most of the realism comes early "
            "(docs/results.md). Tiles stay exact. Deterministic maps whose output has their input's size and channels "
            "only")
      .boolean("trust_code", false,
               "also read map files that are programs: maps of format 1 or 2 (monge 0.1) and TorchScript modules, which "
               "LibTorch reads by running code stored in them. Only for files whose origin you trust (docs/security.md); "
               "convert old maps once with `monge map upgrade MAP --trust-code`")
      .integer("samples", 1, 1, 100000, "a stochastic map: restorations drawn of each tile, reduced by reduce")
      .choice("reduce", "mean", {"mean", "std", "all"},
              "a stochastic map's samples: mean (their mean, the estimate of E[T(y)]), std (their pixel-wise standard "
              "deviation as an image, black 0, white 1 on the [0, 1] intensity scale) or all (apply only: K files "
              "OUTPUT with .s1, .s2, ... before the extension)")
      .integer("seed", 0, 0, int64_t{1} << 53,
               "seed of a stochastic map's noise: the same seed gives the same output (Lua: only when given, and an "
               "error for a deterministic map)");
  OptionSet set("apply");
  set.add(s, {
                 {"tile", with("N")},
                 {"halo", with("N", "the network's receptive radius; maps that declare none (TorchScript) overlap tiles by 2N and blend them")},
                 {"batch", with("N", "about 1 MPix of input on CPU, 16 tiles on GPU")},
                 {"threads", with("N", "the global --threads, or all cores")},
                 {"device", with("D")},
                 {"precision", with("P")},
                 {"layout", with("L")},
                 {"shape_step", with("N", "on a CPU: bf16, every window to multiples of 64; fp32, windows of at most 128 pixels a side to multiples of 32; on CUDA 0")},
                 {"depth", with("D")},
                 {"colour", with("M", "", {"--color"})},
                 {"max_pixels", with("N", "1073741824 (2^30)")},
                 {"nan", with("P")},
                 {"progress", progress_flag()},
                 {"strength", with("S")},
                 {"samples", with("K")},
                 {"reduce", with("R")},
                 {"seed", with("S")},
             });
  return set;
}

OptionSet make_batch_options() {
  Schema s;
  s.add({"out", ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false, "output folder (created if missing)"})
      .strings("include", "take only files whose path or name matches this glob (repeatable)")
      .strings("exclude", "skip files whose path or name matches this glob (repeatable)")
      .string("format", "",
              "output format for every file, with optional libvips options in brackets, e.g. tif[compression=deflate]")
      .string("shard", "",
              "handle shard I (0-based) of N; each file belongs to exactly one shard (a hash of its path)")
      .boolean("retry_failed", false, "redo inputs an earlier run recorded as failed");
  OptionSet set("batch");
  set.add(s, {
                 {"out", with("DIR")},
                 {"include", with("GLOB")},
                 {"exclude", with("GLOB")},
                 {"format", with("EXT", "each input's own extension")},
                 {"shard", with("I/N", "from SLURM_ARRAY_TASK_ID/COUNT, SLURM_PROCID/NTASKS, OMPI_COMM_WORLD_RANK/SIZE or RANK/WORLD_SIZE, else 0/1")},
             });
  set.add(apply_options());
  return set;
}

}  // namespace

const OptionSet& apply_options() {
  static const OptionSet set = make_apply_options();
  return set;
}

const OptionSet& batch_options() {
  static const OptionSet set = make_batch_options();
  return set;
}

StreamOptions stream_options(const Params& p, const std::string& who, const OptionSpelling& spell) {
  StreamOptions o;
  o.spell = spell;
  o.tiles.tile = p.integer("tile");
  o.tiles.halo = p.integer("halo");
  o.tiles.batch = p.integer("batch");
  o.tiles.samples = p.integer("samples");
  o.tiles.reduce = p.string("reduce");
  o.tiles.strength = p.real("strength");
  o.tiles.shape_step = p.integer("shape_step");
  o.threads = p.integer("threads") > 0 ? static_cast<int>(p.integer("threads")) : at::get_num_threads();
  o.max_pixels = p.integer("max_pixels");
  o.colour = p.string("colour");
  o.depth = p.string("depth");
  o.progress = p.boolean("progress");
  o.nonfinite = image::parse_nonfinite(p.string("nan"), who + ": nan");
  o.device = resolve_device(p.string("device"), who);
  o.tiles.precision = resolve_precision(parse_precision(p.string("precision"), who + ": precision"), o.device, who);
  o.tiles.layout = parse_layout(p.string("layout"), who + ": layout");  // resolved per image by the tiling
  return o;
}

BatchOptions batch_options(const Params& p, const std::string& who, const OptionSpelling& spell) {
  BatchOptions o;
  o.apply = stream_options(p, who, spell);
  o.progress = o.apply.progress;
  o.out = p.string("out");
  o.include = p.strings("include");
  o.exclude = p.strings("exclude");
  o.format = p.string("format");
  o.shard = resolve_shard(p.string("shard"));
  o.retry_failed = p.boolean("retry_failed");
  if (o.apply.tiles.reduce == "all")
    throw ParamError(who + ": " + spell.setting("reduce", "all", true) +
                     " writes several files per input; use mean or std (or monge apply)");
  return o;
}

}  // namespace monge::host
