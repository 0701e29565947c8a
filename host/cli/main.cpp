// The `monge` command line.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <boost/dll/runtime_symbol_info.hpp>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "host/apply/apply.hpp"
#include "host/apply/options.hpp"
#include "host/apply/batch.hpp"
#include "host/apply/stream.hpp"
#include "host/cli/launch.hpp"
#include "host/core/cpu_cache.hpp"
#include "host/core/device.hpp"
#include "host/core/registry.hpp"
#include "host/core/threads.hpp"
#include "host/image/vips_io.hpp"
#include "host/lua/runtime.hpp"
#include "host/map/map_file.hpp"
#include "monge/version.hpp"
#include "monge_config.hpp"
#include <luajit.h>

namespace {

using namespace monge::lua;
namespace fs = std::filesystem;

constexpr const char* kHelp = R"(monge - unpaired image restoration with learned unbalanced optimal-transport maps

Usage:
  monge [OPTIONS] run SCRIPT.lua [ARGS...]   run a Lua pipeline; ARGS are visible to it as arg[1..]
  monge [OPTIONS] run -e CODE                 run a chunk of Lua code
  monge [OPTIONS] run --nproc N [--max-restarts K] SCRIPT.lua [ARGS...]
                                              run N processes of a data-parallel training job
  monge [OPTIONS] plugins [--kind KIND]       list plugins by kind, with versions and files
  monge [OPTIONS] plugins --describe NAME     show a plugin's parameters (type, default, range, doc)
  monge [OPTIONS] info MAP [--trust-code]     show what a map file holds (network, operator, metrics)
  monge [OPTIONS] map upgrade OLD NEW --trust-code
                                              convert a map of format 1 or 2 (a program) into the
                                              data-only format 3 (map downgrade: the reverse)
  monge [OPTIONS] apply MAP IN OUT [--tile N --halo N --device D ...]
                                              restore an image of any size with a map file (or a
                                              TorchScript module), streamed in exact tiles; OUT is
                                              written atomically
  monge [OPTIONS] batch MAP INPUT... --out DIR [--shard I/N ...]
                                              restore folders, lists and tar archives; resumable
                                              (JSONL manifest), sharded across processes
  monge [OPTIONS] bench [NAME [ARGS...]]      run a benchmark pipeline (train-step, apply, ...);
                                              without NAME, list them
  monge [OPTIONS] eval MAP --data SPEC --out DIR [--metrics psnr,ssim ...]
                                              score a map on a frozen degraded test set against the
                                              degraded input; results.json, grid.png, report.html
  monge [OPTIONS] calibrate --clean SET --measured SET --operator NAME[:key=value,...]
                                              estimate a degradation's unknown parameter (a blur's
                                              sigma, a downsampling factor) and the noise level
                                              from unpaired clean and degraded images
  monge --version                             print versions (monge, SDK, LibTorch)
  monge --help | monge COMMAND --help
  monge help --markdown apply|batch           print the command's options as docs/cli.md's table

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

constexpr const char* kRunHelp = R"(Usage: monge run [--nproc N [--max-restarts K]] SCRIPT.lua [ARGS...]
       monge run [--nproc N [--max-restarts K]] -e CODE

Runs a Lua pipeline with LuaJIT. Inside the script `require "monge"` gives the monge module,
`arg[0]` is the script path and `arg[1..n]` (also `...`) are ARGS. An uncaught error prints the
message (with the script's file:line) and a traceback, and exits with code 1. os.exit(n) exits
with n. See docs/lua.md for the API.

Data-parallel training on this machine (see docs/cluster.md for clusters and torchrun):
  --nproc N          start N processes of the pipeline as one job (RANK, LOCAL_RANK, WORLD_SIZE,
                     MASTER_ADDR, MASTER_PORT are set for each); monge.train{} averages gradients
                     across them, each takes its share of every batch (global batch N x batch),
                     and only rank 0 writes the run directory. Threads per process default to
                     cores / N. If a process fails the others are stopped and the job fails.
  --max-restarts K   restart the whole job up to K times after a failure; monge.train{} then
                     resumes from its last checkpoint (default 0)
)";

constexpr const char* kPluginsHelp = R"(Usage: monge plugins [--kind KIND]
       monge plugins --describe NAME

Lists the plugins found in the built-in plugin directory, MONGE_PLUGIN_PATH and --plugin-path,
grouped by kind (operator, noise, cost, network, solver, metric), with version, summary and file.
Files that could not be loaded are reported as warnings on stderr. --describe prints one plugin's
parameters. Exit code 3 if NAME is unknown or cannot be loaded.
)";

struct Options {
  std::vector<std::string> argv;  ///< the command line up to and including the command
  std::vector<fs::path> plugin_paths;
  bool use_env = true;
  bool quiet = false;
  int threads = 0;
};

int usage_error(const std::string& msg) {
  std::cerr << "monge: " << msg << "\nRun 'monge --help' for usage." << std::endl;
  return kExitUsage;
}

int parse_threads(const std::string& text) {
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n < 1 || n > 4096) return -1;
  return static_cast<int>(n);
}

void print_warnings(const monge::host::Registry& reg, const Options& opt) {
  if (opt.quiet) return;
  for (const auto& w : reg.warnings()) std::cerr << "monge: warning: " << w << std::endl;
}

monge::host::Registry& registry(const Options& opt) {
  auto dirs = monge::host::Registry::default_dirs(opt.use_env);
  monge::host::Registry::configure_global(dirs);
  auto& reg = monge::host::Registry::global();
  for (const auto& p : opt.plugin_paths) reg.add_path(p);
  return reg;
}

int cmd_version() {
  std::cout << "monge " << monge::kVersion << " (" << MONGE_GIT_REVISION << ")\n"
            << "plugin SDK " << monge::kSdkMajor << "." << monge::kSdkMinor << "\n"
            << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << "\n"
            << LUAJIT_VERSION << "\n";
  return kExitOk;
}

int cmd_plugins(const Options& opt, const std::vector<std::string>& args) {
  std::string describe, kind;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kPluginsHelp;
      return kExitOk;
    } else if (args[i] == "--describe" && i + 1 < args.size()) {
      describe = args[++i];
    } else if (args[i] == "--kind" && i + 1 < args.size()) {
      kind = args[++i];
      if (!monge::host::parse_kind(kind))
        return usage_error("unknown kind '" + kind + "' (operator, noise, cost, network, solver, metric)");
    } else {
      return usage_error("plugins: unexpected argument '" + args[i] + "'");
    }
  }
  auto& reg = registry(opt);
  print_warnings(reg, opt);
  if (!describe.empty()) {
    const auto& r = reg.find(describe);
    std::cout << r.name << " " << r.version << " (" << monge::kind_name(r.kind) << ")\n"
              << "  " << r.summary << "\n"
              << "  file: " << r.file.string() << "\n"
              << "  built for: SDK " << r.sdk_major << "." << r.sdk_minor << ", LibTorch " << r.torch_version << ", "
              << r.compiler << "\n"
              << "parameters:\n";
    const std::string params = r.schema->describe();
    std::cout << (params.empty() ? "  (none)\n" : params);
    return kExitOk;
  }
  const auto list = reg.list();
  std::optional<monge::Kind> current;
  size_t width = 0;
  for (const auto* r : list) width = std::max(width, r->name.size());
  for (const auto* r : list) {
    if (!kind.empty() && kind != monge::kind_name(r->kind)) continue;
    if (!current || *current != r->kind) {
      current = r->kind;
      std::cout << monge::kind_name(r->kind) << "\n";
    }
    std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << r->name << "  " << std::setw(7) << r->version
              << "  " << r->summary << "\n      " << r->file.string() << "\n";
  }
  if (list.empty()) std::cout << "(no plugins found; searched the built-in directory and MONGE_PLUGIN_PATH)\n";
  return kExitOk;
}


constexpr const char* kInfoHelp = R"(Usage: monge info MAP [--trust-code]

Prints the network, shape, operator, training notes and metrics recorded in a map file. Map files
of format 3 are data and are read without running anything; --trust-code also reads the old
formats 1 and 2 and TorchScript modules, which are programs (see monge apply --help).
)";

// " 1.0.0": the version of the plugin that read a map's record (nothing for a TorchScript map).
std::string version_text(const monge::host::PluginSpec& spec) { return spec.version.empty() ? "" : " " + spec.version; }

int cmd_info(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> files;
  bool trust = false;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kInfoHelp;
      return kExitOk;
    }
    if (a == "--trust-code") trust = true;
    else if (!a.empty() && a[0] == '-') return usage_error("info: unknown option '" + a + "' (monge info MAP [--trust-code])");
    else files.push_back(a);
  }
  if (files.size() != 1) return usage_error("info: give one map file (monge info runs/gb/map.pt)");
  auto& reg = registry(opt);
  const auto m = monge::host::load_map(files[0], reg, {trust});
  const auto& i = m.info;
  int64_t params = 0;
  for (const auto& p : m.module->parameters()) params += p.numel();
  std::cout << "map " << files[0] << "\n"
            << "  written by monge " << i.monge_version << " (map format " << i.format
            << (i.format >= 3   ? ": data only"
                : i.format == 0 ? ": none, a TorchScript module (a program), read because of --trust-code"
                                : ": a PyTorch archive (a program), read because of --trust-code") << ")\n"
            << "  network " << i.network.name << version_text(i.network) << " (" << params << " parameters)";
  for (const auto& [k, v] : i.network.params.values()) std::cout << " " << k << "=" << monge::detail::value_text(v);
  if (i.shape.in_channels > 0)
    std::cout << "\n  channels " << i.shape.in_channels << " -> " << i.shape.out_channels << ", trained on "
              << i.shape.height << "x" << i.shape.width
              << (i.latent_channels > 0 ? ", stochastic: " + std::to_string(i.latent_channels) +
                                              " latent channel(s) of N(0, 1) noise drawn at each call"
                                        : std::string())
              << (i.input_noise > 0 ? ", stochastic: measurements smoothed with N(0, " + monge::detail::format_number(i.input_noise) +
                                          "^2) noise at each call"
                                    : std::string())
              << "\n";
  else
    std::cout << "\n";
  if (i.op) {
    std::cout << "  operator " << i.op->name << version_text(*i.op);
    for (const auto& [k, v] : i.op->params.values()) std::cout << " " << k << "=" << monge::detail::value_text(v);
    if (i.lift)
      std::cout << " with the Wiener lift (noise variance " << monge::detail::format_number(i.lift->noise_variance)
                << ", prior from the clean set, filter radius " << i.lift->filter.radius
                << " measurement pixels: inputs are restored by it before the network)\n";
    else
      std::cout << " (its lift is applied to inputs)\n";
  }
  if (i.noise) std::cout << "  trained with noise " << monge::host::plugin_spec_text(*i.noise) << " (monge eval's default --noise)\n";
  for (const auto& [k, v] : i.notes) std::cout << "  " << k << " " << v << "\n";
  for (const auto& [k, v] : i.metrics) std::cout << "  " << k << " " << v << "\n";
  return kExitOk;
}

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

std::string apply_help() { return kApplyHelpHead + monge::host::apply_options().help() + kApplyHelpTail; }

// Peak resident memory of this process so far, in MiB.
long peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;  // KiB on Linux
}

// The options of `set` on the command line, validated, with the command line's defaults (a
// progress line unless -q). Throws ParamError, naming the flag, for a bad command line.
struct CliOptions {
  monge::Params params;
  std::vector<std::string> positional;
  bool help = false;
};
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
CliOptions parse_options(const monge::host::OptionSet& set, const Options& opt, const std::vector<std::string>& args) {
  try {
    auto parsed = set.parse(args);
    if (parsed.help) return {{}, {}, true};
    if (opt.quiet && !parsed.given.count("progress")) parsed.given["progress"] = false;
    return {set.resolve_cli(parsed.given), std::move(parsed.positional), false};
  } catch (const monge::ParamError& e) {
    throw UsageError(e.what());
  }
}

// A stochastic map's noise seeded from --seed.
void seed_map(monge::host::LoadedMap& map, const monge::Params& p) {
  if (auto* stochastic = dynamic_cast<monge::host::StochasticMap*>(map.module.get()))
    stochastic->reseed(static_cast<uint64_t>(p.integer("seed")));
}

// OUTPUT (with optional [save options]) with ".sK" before the extension: out.s3.png[compression=9].
std::string sample_output_name(const std::string& spec, int64_t k) {
  const auto [file, options] = monge::image::split_save_options(spec);
  const std::filesystem::path p(file);
  const std::string name = (p.parent_path() / p.stem()).string() + ".s" + std::to_string(k) + p.extension().string();
  return name + options;
}

int cmd_apply(const Options& opt, const std::vector<std::string>& args) {
  const CliOptions o = parse_options(monge::host::apply_options(), opt, args);
  if (o.help) {
    std::cout << apply_help();
    return kExitOk;
  }
  const auto& files = o.positional;
  if (files.size() != 3) return usage_error("apply: give MAP INPUT OUTPUT (monge apply runs/gb/map.pt blurry.png restored.png)");
  const bool auto_precision = o.params.string("precision") == "auto";
  auto so = monge::host::stream_options(o.params, "apply");  // the device and precision resolved before any work
  monge::host::set_threads(so.threads);
  auto map = monge::host::load_map(files[0], registry(opt), {o.params.boolean("trust_code")});
  seed_map(map, o.params);
  auto* stochastic = dynamic_cast<monge::host::StochasticMap*>(map.module.get());
  if (so.tiles.reduce == "all") {
    // K whole restorations, one file each: OUTPUT with .sK before the extension.
    const int64_t k = so.tiles.samples;
    so.tiles.samples = 1;
    so.tiles.reduce = "mean";
    if (!stochastic) return usage_error("apply: --reduce all needs a stochastic map; this map is deterministic");
    for (int64_t s = 1; s <= k; ++s) {
      const std::string out = sample_output_name(files[2], s);
      const auto r = monge::host::apply_stream(map, files[1], out, so);
      if (!opt.quiet) std::cerr << "apply: sample " << s << " of " << k << " -> " << out << " in " << std::fixed
                                << std::setprecision(2) << r.seconds << " s\n";
    }
    return kExitOk;
  }
  const auto r = monge::host::apply_stream(map, files[1], files[2], so);
  if (!opt.quiet)
    std::cerr << "apply: " << files[1] << " (" << r.in_width << "x" << r.in_height << ") -> " << files[2] << " ("
              << r.out_width << "x" << r.out_height << ", " << r.bands << " band" << (r.bands == 1 ? "" : "s")
              << (r.alpha ? " with alpha" : "") << ") in " << std::fixed << std::setprecision(2) << r.seconds << " s on "
              << so.device.str() << ", " << monge::host::precision_name(r.plan.precision)
              << (auto_precision ? " (auto)" : "")
              << (r.plan.layout == monge::host::Layout::ChannelsLast ? " channels-last" : "") << ", " << std::setprecision(1)
              << double(r.out_width) * double(r.out_height) / 1e6 / r.seconds
              << " MPix/s, peak RSS " << peak_rss_mib() << " MiB; " << r.plan.why
              << (r.nonfinite ? "; " + std::to_string(r.nonfinite) + " NaN/infinite input samples replaced (--nan replace)" : "")
              << "\n";
  return kExitOk;
}

constexpr const char* kBatchHelpHead = R"(Usage: monge batch MAP INPUT... --out DIR [OPTIONS]

Restores every image of the inputs with the map in MAP, one `monge apply` each (streamed, exact
tiles; every apply option below works the same), into DIR, whose tree mirrors the inputs.

INPUT: a folder (walked recursively), a list file (@FILE, or a .txt/.lst file: one path per line,
relative to the list, # comments), an archive (.tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.zst/.tzst,
.tar.bz2/.tbz2/.tbz, .zip: tar of any dialect or zip, read by libarchive in one pass) or an image.
With several inputs each one's outputs go under DIR/<its name>/. Without --include, files with
the extensions libvips commonly reads are taken (png, jpg, jpeg, tif, tiff, webp, ...).

DIR/manifest.jsonl (DIR/manifest.shard-I-of-N.jsonl per shard) gets one line per file: key,
input, output, status (ok or error), error, seconds, sizes, precision, shard, host, pid, time. A re-run reads
every manifest in DIR and skips what is done (status ok and the output present); inputs that
failed are skipped too unless --retry-failed. A corrupt or unreadable input is recorded and
skipped, never fatal. Outputs are written atomically, so a killed run loses only the file in hand.

Recorded as errors before any work, the rest going on: symbolic links inside an input folder
and link members of archives (not followed); a later input with the same path as an earlier one
("duplicate of ..."; the first is restored); two inputs that --format maps to one output
(neither is restored); an output that would overwrite an input; archive members over 2 GiB or
with names over 4096 bytes; a damaged archive (its members before the damage are restored).

Options:
)";

constexpr const char* kBatchHelpTail = R"(
The precision that ran is in every manifest record and in the last line. --reduce all is for
monge apply only (several files per input).

Exit code 0 when every file of the shard is done, 1 when some failed (see the manifest).
)";

std::string batch_help() { return kBatchHelpHead + monge::host::batch_options().help() + kBatchHelpTail; }

int cmd_batch(const Options& opt, const std::vector<std::string>& args) {
  const CliOptions o = parse_options(monge::host::batch_options(), opt, args);
  if (o.help) {
    std::cout << batch_help();
    return kExitOk;
  }
  if (o.positional.size() < 2) return usage_error("batch: give MAP and at least one INPUT (monge batch map.pt scans/ --out restored/)");
  monge::host::BatchOptions bo;
  try {
    bo = monge::host::batch_options(o.params, "batch");
  } catch (const monge::ParamError& e) {
    return usage_error(e.what());
  }
  monge::host::set_threads(bo.apply.threads);
  auto map = monge::host::load_map(o.positional[0], registry(opt), {o.params.boolean("trust_code")});
  seed_map(map, o.params);
  const std::vector<std::string> inputs(o.positional.begin() + 1, o.positional.end());
  const auto r = monge::host::run_batch(map, inputs, bo);
  if (!opt.quiet)
    std::cerr << "batch: shard " << bo.shard.index << "/" << bo.shard.count << ": " << r.ok << " restored, " << r.failed
              << " failed, " << r.already << " done before, " << r.failed_before << " failed before, in " << std::fixed
              << std::setprecision(1) << r.seconds << " s (" << r.mpix << " MPix written, "
              << monge::host::precision_name(r.precision) << "); manifest " << r.manifest.string()
              << "\n";
  return r.failed > 0 ? kExitError : kExitOk;
}

constexpr const char* kBenchHelp = R"(Usage: monge bench NAME [ARGS...]
       monge bench

Runs the benchmark pipeline NAME with ARGS visible to it as arg[1..] (like monge run). NAME is a
script of share/monge/bench beside the monge executable (scripts/bench/ in the source tree),
with '-' read as '_': `monge bench train-step` runs train_step.lua. Without NAME, lists the
benchmarks with the first line of their leading comment. See docs/performance.md.
)";

// The benchmark scripts of this executable: share/monge/bench, in the build tree as installed.
fs::path bench_dir() {
  const fs::path exe = boost::dll::program_location().string();
  return exe.parent_path().parent_path() / MONGE_BENCH_SUBDIR;
}

// Benchmark names ('_' shown as '-') and the first line of each script's leading comment.
std::map<std::string, std::string> list_benchmarks() {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(bench_dir(), ec)) {
    if (entry.path().extension() != ".lua") continue;
    std::string name = entry.path().stem().string(), line;
    std::replace(name.begin(), name.end(), '_', '-');
    std::ifstream f(entry.path());
    std::getline(f, line);
    const size_t text = line.find_first_not_of("- ");
    out[name] = line.rfind("--", 0) == 0 && text != std::string::npos ? line.substr(text) : "";
  }
  return out;
}

int cmd_bench(const Options& opt, const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kBenchHelp;
    return kExitOk;
  }
  const auto benchmarks = list_benchmarks();
  if (args.empty()) {
    size_t width = 0;
    for (const auto& [name, summary] : benchmarks) width = std::max(width, name.size());
    for (const auto& [name, summary] : benchmarks)
      std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << name << "  " << summary << "\n";
    if (benchmarks.empty()) std::cout << "(no benchmarks in " << bench_dir().string() << ")\n";
    return kExitOk;
  }
  std::string name = args[0];
  std::replace(name.begin(), name.end(), '_', '-');
  if (!benchmarks.count(name)) {
    std::vector<std::string> names;
    for (const auto& [n, summary] : benchmarks) names.push_back(n);
    const std::string hint = monge::did_you_mean(name, names);
    return usage_error("bench: unknown benchmark '" + args[0] + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                       "; 'monge bench' lists them");
  }
  std::replace(name.begin(), name.end(), '-', '_');
  print_warnings(registry(opt), opt);
  Runtime rt;
  return rt.run_file(bench_dir() / (name + ".lua"), std::vector<std::string>(args.begin() + 1, args.end()));
}

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

// A subcommand written in Lua: `--help` prints `help`; otherwise share/monge/lua/monge/`script`
// runs with the arguments (it parses them and sets the exit code).
int run_lua_command(const Options& opt, const std::vector<std::string>& args, const char* help, const char* script) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::cout << help;
      return kExitOk;
    }
  print_warnings(registry(opt), opt);
  Runtime rt;
  return rt.run_file(Runtime::lua_dir() / "monge" / script, args);
}

// `monge eval` is the Lua function monge.evaluate behind a command-line parser, both in
// share/monge/lua/monge/evaluate.lua: one implementation for the CLI and for pipelines.
int cmd_eval(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> lua_args = args;
  if (opt.quiet) lua_args.insert(lua_args.begin(), "--no-progress");
  return run_lua_command(opt, lua_args, kEvalHelp, "eval_cli.lua");
}

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
int cmd_calibrate(const Options& opt, const std::vector<std::string>& args) {
  return run_lua_command(opt, args, kCalibrateHelp, "calibrate_cli.lua");
}

int cmd_run(const Options& opt, const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("run: give a script (monge run pipeline.lua [args]) or -e CODE");
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << kRunHelp;
    return kExitOk;
  }
  monge::cli::LaunchOptions launch;
  size_t first = 0;
  for (; first + 1 < args.size(); first += 2) {
    int* target = args[first] == "--nproc" ? &launch.nproc : args[first] == "--max-restarts" ? &launch.max_restarts : nullptr;
    if (!target) break;
    char* end = nullptr;
    const long n = std::strtol(args[first + 1].c_str(), &end, 10);
    if (*end != '\0' || n < (target == &launch.nproc ? 1 : 0) || n > 1024)
      return usage_error("run: " + args[first] + " needs " +
                         (target == &launch.nproc ? "a number of processes (1 to 1024)" : "a count (0 to 1024)") +
                         ", got '" + args[first + 1] + "'");
    *target = static_cast<int>(n);
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(first), args.end());
  if (rest.empty() || rest[0] == "--nproc" || rest[0] == "--max-restarts")
    return usage_error("run: give a script after the options (monge run --nproc 2 train.lua)");
  if (first > 0) {
    if (std::getenv("WORLD_SIZE"))
      return usage_error("run: --nproc inside a job that is already distributed (WORLD_SIZE is set); drop --nproc");
    launch.argv = opt.argv;
    launch.argv.insert(launch.argv.end(), rest.begin(), rest.end());
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (opt.threads == 0) launch.threads_per_rank = std::max(1, hw / launch.nproc);
    return monge::cli::launch_local(launch);
  }
  // Scan now so that skipped plugin files are reported before the pipeline starts.
  print_warnings(registry(opt), opt);
  Runtime rt;
  if (rest[0] == "-e") {
    if (rest.size() != 2) return usage_error("run -e: give exactly one chunk of code");
    return rt.run_string(rest[1]);
  }
  return rt.run_file(rest[0], std::vector<std::string>(rest.begin() + 1, rest.end()));
}

constexpr const char* kMapHelp = R"(Usage: monge map upgrade OLD NEW --trust-code
       monge map downgrade NEW OLD

Converts a map file of format 1 or 2 (monge 0.1: a PyTorch archive, which is read by running the
program stored in it) into format 3 (data only: a JSON header and raw tensors, read without
running anything; see docs/map-format.md). Reading OLD runs its code, so --trust-code is required:
give it only for a file whose origin you trust. NEW is written atomically; OLD is left as it is.
The new file is read back without trust and checked to give the same output as OLD on a probe
input. A TorchScript module cannot be converted (its forward() is a program): keep using it with
--trust-code.

`monge map downgrade NEW OLD` writes a map of format 3 in the old format (1, or 2 with a Wiener
lift) for a monge 0.1 that cannot read format 3. Reading NEW runs nothing.
)";

int cmd_map(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> files;
  bool trust = false;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      std::cout << kMapHelp;
      return kExitOk;
    }
    if (a == "--trust-code") trust = true;
    else if (!a.empty() && a[0] == '-') return usage_error("map: unknown option '" + a + "' (see monge map --help)");
    else files.push_back(a);
  }
  if (files.empty() || (files[0] != "upgrade" && files[0] != "downgrade"))
    return usage_error("map: give a subcommand: monge map upgrade OLD NEW --trust-code, or monge map downgrade NEW OLD");
  if (files[0] == "downgrade") {
    if (files.size() != 3) return usage_error("map downgrade: give NEW and OLD (monge map downgrade map.pt old.pt)");
    auto m = monge::host::load_map(files[1], registry(opt));
    monge::host::save_map_legacy(files[2], *m.module, m.info);
    std::cout << "map downgrade: " << files[1] << " -> " << files[2] << " (format " << (m.info.lift ? 2 : 1)
              << ", a PyTorch archive for monge 0.1)\n";
    return kExitOk;
  }
  if (files.size() != 3) return usage_error("map upgrade: give OLD and NEW (monge map upgrade old.pt new.pt --trust-code)");
  if (!trust)
    return usage_error("map upgrade: reading " + files[1] + " runs the program stored in it; add --trust-code if you trust "
                       "where the file came from");
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(files[1], files[2], ec)) return usage_error("map upgrade: NEW must not be OLD (OLD is kept as it is)");
  auto& reg = registry(opt);
  auto old_map = monge::host::load_map(files[1], reg, {true});
  if (old_map.info.format == 0)
    throw monge::Error(files[1] + ": a TorchScript module is a program and cannot be converted to a data-only map; "
                       "use it with --trust-code");
  if (old_map.info.format >= 3) throw monge::Error(files[1] + ": already a map of format " + std::to_string(old_map.info.format));
  monge::host::save_map(files[2], *old_map.module, old_map.info);
  auto new_map = monge::host::load_map(files[2], reg);
  // The same output on a probe input: the weights went across whole.
  const auto& shape = old_map.info.shape;
  const int64_t align = std::max<int64_t>(1, old_map.tile_alignment);
  const int64_t h = shape.height > 0 ? shape.height : 4 * align, w = shape.width > 0 ? shape.width : 4 * align;
  at::Tensor q = at::rand({1, shape.in_channels, h, w}, at::TensorOptions().dtype(at::kFloat)) * 2 - 1;
  auto run = [&](monge::host::LoadedMap& m) {
    if (auto* st = dynamic_cast<monge::host::StochasticMap*>(m.module.get())) st->reseed(0);
    at::NoGradGuard no_grad;
    return m.module->forward(q);
  };
  const double diff = (run(old_map) - run(new_map)).abs().max().item<double>();
  if (!(diff == 0)) {
    fs::remove(files[2], ec);
    throw monge::Error(files[1] + ": the converted map differs from the old one by " + std::to_string(diff) +
                       " on a probe input; nothing was written");
  }
  std::cout << "map upgrade: " << files[1] << " (format " << old_map.info.format << ") -> " << files[2]
            << " (format " << new_map.info.format << ", data only); the same output on a probe input\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const char* env = std::getenv("MONGE_THREADS")) {
    opt.threads = parse_threads(env);
    if (opt.threads < 0) return usage_error(std::string("MONGE_THREADS must be a positive integer, got '") + env + "'");
  }
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kHelp;
      return kExitOk;
    } else if (a == "--version" || a == "-V") {
      return cmd_version();
    } else if (a == "--plugin-path") {
      if (i + 1 >= argc) return usage_error("--plugin-path needs a directory or file");
      opt.plugin_paths.emplace_back(argv[++i]);
    } else if (a == "--no-env-plugins") {
      opt.use_env = false;
    } else if (a == "--threads") {
      if (i + 1 >= argc || (opt.threads = parse_threads(argv[i + 1])) < 0)
        return usage_error("--threads needs a positive integer");
      ++i;
    } else if (a == "-q" || a == "--quiet") {
      opt.quiet = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option '" + a + "'");
    } else {
      break;
    }
  }
  if (i >= argc) {
    std::cerr << kHelp;
    return kExitUsage;
  }
  const std::string cmd = argv[i];
  opt.argv.assign(argv, argv + i + 1);
  const std::vector<std::string> args(argv + i + 1, argv + argc);
  // LibTorch defaults to one thread; use every core unless told otherwise.
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  monge::host::set_threads(opt.threads > 0 ? opt.threads : hw);
  try {
    monge::host::install_cpu_cache(monge::host::cpu_cache_limit_from_env(monge::host::kDefaultCpuCacheLimit));
    if (cmd == "run") return cmd_run(opt, args);
    if (cmd == "plugins") return cmd_plugins(opt, args);
    if (cmd == "info") return cmd_info(opt, args);
    if (cmd == "apply") return cmd_apply(opt, args);
    if (cmd == "batch") return cmd_batch(opt, args);
    if (cmd == "bench") return cmd_bench(opt, args);
    if (cmd == "eval") return cmd_eval(opt, args);
    if (cmd == "calibrate") return cmd_calibrate(opt, args);
    if (cmd == "map") return cmd_map(opt, args);
    if (cmd == "version") return cmd_version();
    if (cmd == "help") {
      if (args.size() == 2 && args[0] == "--markdown" && (args[1] == "apply" || args[1] == "batch")) {
        // The option table of docs/cli.md (tests/host/options_test.cpp compares them).
        std::cout << (args[1] == "apply" ? monge::host::apply_options() : monge::host::batch_options()).markdown();
        return kExitOk;
      }
      if (!args.empty() && args[0] == "run") std::cout << kRunHelp;
      else if (!args.empty() && args[0] == "plugins") std::cout << kPluginsHelp;
      else if (!args.empty() && args[0] == "apply") std::cout << apply_help();
      else if (!args.empty() && args[0] == "batch") std::cout << batch_help();
      else if (!args.empty() && args[0] == "bench") std::cout << kBenchHelp;
      else if (!args.empty() && args[0] == "eval") std::cout << kEvalHelp;
      else if (!args.empty() && args[0] == "calibrate") std::cout << kCalibrateHelp;
      else if (!args.empty() && args[0] == "map") std::cout << kMapHelp;
      else if (!args.empty() && args[0] == "info") std::cout << kInfoHelp;
      else std::cout << kHelp;
      return kExitOk;
    }
    const std::string hint = monge::did_you_mean(cmd, {"run", "plugins", "info", "apply", "batch", "bench", "eval", "calibrate", "map", "version", "help"});
    return usage_error("unknown command '" + cmd + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const monge::host::PluginError& e) {
    std::cerr << "monge: error: " << e.what() << std::endl;
    return kExitPlugin;
  } catch (const std::exception& e) {
    std::cerr << "monge: error: " << e.what() << std::endl;
    return kExitError;
  }
}
