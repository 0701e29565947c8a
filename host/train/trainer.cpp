#include "host/train/trainer.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "host/core/cpu_features.hpp"
#include "host/core/device.hpp"
#include "host/core/json_text.hpp"
#include "host/core/precision.hpp"
#include "host/core/sum_cost.hpp"
#include "host/core/temp_files.hpp"
#include "host/core/text.hpp"
#include "host/map/map_module.hpp"
#include "host/train/distributed.hpp"
#include "monge/image_metrics.hpp"

namespace fs = std::filesystem;

namespace monge::host {

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted = true; }

// Installs the Ctrl-C handler for the duration of training and restores the previous one.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = false;
    previous_ = std::signal(SIGINT, on_sigint);
  }
  ~InterruptGuard() { std::signal(SIGINT, previous_); }

 private:
  void (*previous_)(int);
};


void check_images(const at::Tensor& t, const char* what, bool required) {
  if (!t.defined()) {
    if (required) throw Error(std::string("train: '") + what + "' (a tensor N x C x H x W) is required");
    return;
  }
  if (t.dim() != 4 || t.size(0) == 0)
    throw Error(std::string("train: '") + what + "' must be a non-empty N x C x H x W tensor, got " +
                std::to_string(t.dim()) + " dimensions");
  if (!t.is_floating_point()) throw Error(std::string("train: '") + what + "' must hold floating-point values in [-1, 1]");
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string format_count(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream o;
  if (s >= 3600) o << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60 << ":" << std::setw(2) << s % 60;
  else o << std::setw(2) << std::setfill('0') << s / 60 << ":" << std::setw(2) << s % 60;
  return o.str();
}

// A number in a message, at the 8 significant digits of log.jsonl ("null" when not finite, as
// the log writes it: a rollback's reason quotes it).
std::string number_text(double v, int digits = 8) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o << std::setprecision(digits) << v;
  return o.str();
}

// Progress on a terminal: one line redrawn in place; elsewhere: a plain line every 5%.
class Progress {
 public:
  Progress(int64_t start, int64_t total, bool enabled)
      : start_(start), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0),
        t0_(std::chrono::steady_clock::now()) {}

  void update(int64_t done, const std::map<std::string, double>& stats, const EvalPoint* eval) {
    if (!enabled_) return;
    const int64_t step = std::max<int64_t>(1, total_ / 20);
    if (!tty_ && done != total_ && done % step != 0) return;
    const double elapsed = seconds();
    const double rate = (done - start_) / std::max(elapsed, 1e-9);
    const double eta = rate > 0 ? (total_ - done) / rate : NAN;
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << std::setw(5) << 100.0 * done / std::max<int64_t>(total_, 1)
         << "% " << done << "/" << total_ << "  " << std::setprecision(2) << rate << " it/s  ETA "
         << format_duration(eta) << std::setprecision(4);
    for (const char* k : {"loss_map", "loss_potential"})
      if (auto it = stats.find(k); it != stats.end()) line << "  " << k << " " << it->second;
    if (eval) line << std::setprecision(2) << "  PSNR " << eval->psnr_restored << " dB (degraded " << eval->psnr_degraded << ")";
    if (tty_) std::cerr << "\r\033[K" << line.str() << (done == total_ ? "\n" : "") << std::flush;
    else std::cerr << line.str() << "\n";
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  int64_t start_, total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point t0_;
};

// The training state (iteration, generator, networks, solver) as one archive: a file on disk, and
// the bytes rank 0 broadcasts so that every process of a data-parallel job starts from its state.
struct Checkpoint {
  static std::string to_bytes(int64_t iteration, const at::Generator& gen, Module& map, Module* ema,
                              Module& potential, const Solver& solver) {
    torch::serialize::OutputArchive a;
    a.write("iteration", c10::IValue(iteration));
    a.write("generator", gen.get_state());
    torch::serialize::OutputArchive m, e, p, s;
    map.save(m);
    a.write("map", m);
    if (ema) {
      ema->save(e);
      a.write("map_ema", e);
    }
    potential.save(p);
    a.write("potential", p);
    solver.save(s);
    a.write("solver", s);
    std::ostringstream bytes;
    a.save_to(bytes);
    return bytes.str();
  }

  static void save(const fs::path& file, const std::string& bytes) {
    write_atomically(file, [&](const std::string& tmp) {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      f.close();
      if (!f) throw Error("cannot write " + tmp + " (disk full or not writable?)");
    });
  }

  static std::string read(const fs::path& file) {
    std::ifstream f(file, std::ios::binary);
    std::ostringstream bytes;
    bytes << f.rdbuf();
    if (!f) throw Error(file.string() + ": cannot read the checkpoint");
    return bytes.str();
  }

  // `what` names the source in errors (the checkpoint file).
  static int64_t load(const std::string& bytes, const std::string& what, at::Generator& gen, Module& map, Module* ema,
                      Module& potential, Solver& solver) {
    torch::serialize::InputArchive a;
    try {
      a.load_from(bytes.data(), bytes.size());
      c10::IValue it;
      a.read("iteration", it);
      at::Tensor state;
      a.read("generator", state);
      gen.set_state(state);
      torch::serialize::InputArchive m, e, p, s;
      a.read("map", m);
      map.load(m);
      if (ema) {
        a.read("map_ema", e);
        ema->load(e);
      }
      a.read("potential", p);
      potential.load(p);
      a.read("solver", s);
      solver.load(s);
      return it.toInt();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& ex) {
      throw Error(what + ": cannot resume from this checkpoint (" + without_trace(ex) +
                  "); it was written by another configuration or is corrupt; start without resume or use another out directory");
    }
  }
};

// Degrades signals: y = noise(A(x)), seeded by `gen` (the frozen evaluation set).
at::Tensor degrade(const TrainConfig& c, const at::Tensor& x, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  at::Tensor ax = c.op->forward(x);
  return c.noise ? c.noise->sample(ax, gen) : ax;
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Degrades the training samples first, first + 1, ... of a step's global batch. Each sample's noise
// comes from its own generator, seeded by the step's seed and its place in the global batch, so
// the measurements do not depend on how the global batch is split across processes.
at::Tensor degrade_samples(const TrainConfig& c, const at::Tensor& x, uint64_t step_seed, int64_t first) {
  torch::NoGradGuard no_grad;
  at::Tensor ax = c.op->forward(x);
  if (!c.noise) return ax;
  std::vector<at::Tensor> samples;
  samples.reserve(static_cast<size_t>(ax.size(0)));
  for (int64_t j = 0; j < ax.size(0); ++j) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(splitmix64(step_seed ^ static_cast<uint64_t>(first + j)));
    samples.push_back(c.noise->sample(ax.narrow(0, j, 1), g));
  }
  return at::cat(samples);
}

// A launcher restarting a failed job: monge run --nproc (MONGE_RESTART_COUNT) or torchrun.
int64_t restart_count() {
  for (const char* name : {"MONGE_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"})
    if (const char* v = std::getenv(name)) return std::atoll(v);
  return 0;
}

// Sums and sums of squares of a module's parameters: equal on every replica of a data-parallel job.
void fingerprint(Module& m, std::vector<double>& out) {
  torch::NoGradGuard no_grad;
  double sum = 0, squares = 0;
  for (const auto& p : m.parameters()) {
    const at::Tensor d = p.detach().to(at::kCPU, at::kDouble);
    sum += d.sum().item<double>();
    squares += d.square().sum().item<double>();
  }
  out.push_back(sum);
  out.push_back(squares);
}

// SSIM when the images are large enough for its window, else 0 (documented in EvalPoint).
double ssim_or_zero(const at::Tensor& a, const at::Tensor& b) {
  using image_metrics::kSsimWindow;
  return a.size(2) >= kSsimWindow && a.size(3) >= kSsimWindow ? image_metrics::ssim(a, b) : 0.0;
}

std::string format_number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Copies of the parameters of `module`, named prefix + their LibTorch names.
void add_parameters(NamedTensors& into, const std::string& prefix, Module& module) {
  for (const auto& p : module.named_parameters()) into.emplace_back(prefix + p.key(), p.value().detach().clone());
}

// The first step's dump (TrainConfig::dump_first_step), in a form any language reads without
// LibTorch: dir/tensors.bin holds the tensors' values one after the other as raw little-endian
// float32 in C order; dir/index.json names them ({"tensors": [{"name", "shape", "offset"}, ...],
// "stats": {...}}, offsets counted in floats) and holds the step's statistics.
void write_step_dump(const fs::path& dir, const NamedTensors& tensors, const std::map<std::string, double>& stats) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tensors.bin is documented as little-endian");
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream bin(dir / "tensors.bin", std::ios::binary | std::ios::trunc);
  nlohmann::ordered_json table = nlohmann::ordered_json::array();
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    bin.write(reinterpret_cast<const char*>(t.data_ptr<float>()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
    table.push_back({{"name", name}, {"shape", t.sizes().vec()}, {"offset", offset}});
    offset += t.numel();
  }
  nlohmann::ordered_json step_stats = nlohmann::ordered_json::object();
  for (const auto& [k, v] : stats) step_stats[k] = json_text::number(v, 17);
  const nlohmann::ordered_json index = {{"format", "float32, little-endian, C order"}, {"tensors", table}, {"stats", step_stats}};
  std::ofstream json(dir / "index.json", std::ios::trunc);
  json << json_text::dump(index) << "\n";
  if (!bin.flush() || !json.flush())
    throw Error("train: cannot write the first step's dump into " + dir.string() + " (dump_first_step)");
}

}  // namespace

std::optional<std::string> twist_warning(const Cost& cost, const ForwardOperator& op) {
  double likelihood = 0, quadratic = 0;
  auto add = [&](double w, const Cost& term) {
    if (term.role() == Cost::Role::Likelihood) likelihood += w;
    if (term.role() == Cost::Role::Quadratic) quadratic += w;
  };
  if (const auto* sum = dynamic_cast<const SumCost*>(&cost)) {
    for (const auto& [w, term] : sum->terms) add(w, *term);
  } else {
    add(1.0, cost);
  }
  if (likelihood <= 0) return std::nullopt;
  const std::optional<double> L = op.lipschitz();
  const std::string need = L ? "a weight above the operator's Lipschitz bound L = " + format_number(*L)
                             : "a weight above the operator's Lipschitz constant";
  if (quadratic <= 0)
    return "the cost has a likelihood term but no quadratic term, so the twist condition of the paper's Remark 1 "
           "is not guaranteed and an optimal map may not exist; add monge.cost(\"quadratic\", { operator = A }) with " +
           need + " relative to the likelihood term";
  const double lambda = quadratic / likelihood;
  if (L && !op.monotone() && lambda < *L)
    return "the quadratic cost's weight relative to the likelihood term is lambda = " + format_number(lambda) +
           ", below the operator's Lipschitz bound L = " + format_number(*L) +
           ": the twist condition of the paper's Remark 1 is only guaranteed for lambda > L; raise the quadratic weight "
           "(e.g. lik + " + format_number(std::floor(*L * 10 + 1) / 10) + " * quad)";
  return std::nullopt;
}

TrainResult train(const TrainConfig& c) {
  if (!c.op) throw Error("train: 'operator' is required (e.g. monge.operator(\"gaussian_blur\"))");
  if (!c.map_net || !c.potential_net) throw Error("train: 'map' and 'potential' networks are required");
  if (!c.solver) throw Error("train: 'solver' is required (e.g. monge.solver(\"uotip\"))");
  if (!c.cost) throw Error("train: 'cost' is required (e.g. monge.cost(\"quadratic\", { operator = A }))");
  check_images(c.clean, "clean", true);
  check_images(c.measured, "measured", true);
  check_images(c.eval_clean, "eval", false);
  if (c.clean.sizes().slice(1) != c.measured.sizes().slice(1))
    throw Error("train: 'clean' and 'measured' images differ in shape (C x H x W)");
  if (c.eval_clean.defined() && c.eval_clean.sizes().slice(1) != c.clean.sizes().slice(1))
    throw Error("train: 'eval' images differ in shape (C x H x W) from the training images");
  if (c.iters < 1 || c.batch < 1) throw Error("train: 'iters' and 'batch' must be at least 1");
  if (c.precision != "fp32" && c.precision != "bf16")
    throw Error("train: precision must be 'fp32' or 'bf16', got '" + c.precision + "'");
  if (c.max_rollbacks < 0 || !(c.rollback_lr_factor > 0 && c.rollback_lr_factor < 1))
    throw Error("train: max_rollbacks must be >= 0 and rollback_lr_factor in (0, 1)");
  if (!(c.max_loss >= 0) || !std::isfinite(c.max_loss))
    throw Error("train: max_loss must be a finite number >= 0 (0: only NaN/Inf count as divergence), got " +
                number_text(c.max_loss));
  if (c.out.empty()) throw Error("train: 'out' (a run directory) is required");
  std::error_code ec;
  fs::create_directories(c.out, ec);
  if (!fs::is_directory(c.out)) throw Error("train: cannot create the run directory " + c.out.string() + " (" + ec.message() + ")");

  const c10::Device device = resolve_device(c.device, "train");
  if (c.precision == "bf16" && device.is_cpu() && !cpu_bf16_kernels())
    throw Error("train: precision 'bf16' needs LibTorch's bfloat16 convolutions, which oneDNN has only on CPUs with "
                "AVX-512; this CPU (or its DNNL_MAX_CPU_ISA / ATEN_CPU_CAPABILITY limit) has none. Train with "
                "precision 'fp32', or on a GPU");
  const int64_t channels = c.clean.size(1), height = c.clean.size(2), width = c.clean.size(3);
  // The operator must accept the images: fail here, before any network is built.
  try {
    torch::NoGradGuard no_grad;
    (void)c.op->forward(c.clean.narrow(0, 0, 1).to(at::kFloat));
  } catch (const std::exception& e) {
    throw Error(std::string("train: the operator cannot take the training images (1 x ") + std::to_string(channels) +
                " x " + std::to_string(height) + " x " + std::to_string(width) + "): " + e.what());
  }
  TrainResult result;
  auto warn = [&](const std::string& w) {
    result.warnings.push_back(w);
    std::cerr << "train: warning: " << w << "\n";
  };
  if (auto w = twist_warning(*c.cost, *c.op)) warn(*w);

  // Data parallel: one replica per process; rank 0 alone writes the run directory.
  const auto dist = Distributed::get(std::chrono::milliseconds(static_cast<int64_t>(c.dist_timeout * 1000)));
  const int rank = dist ? dist->rank() : 0, world = dist ? dist->world() : 1;
  const bool main_rank = rank == 0, progress_on = c.progress && main_rank;

  torch::manual_seed(c.seed);
  const NetworkShape map_shape{channels, channels, 1, height, width};
  result.shape = map_shape;
  // A stochastic map T(y, z) takes the solver's latent channels after those of Q(y).
  const int64_t latent = c.solver->latent_channels();
  if (latent < 0 || latent > 4096)
    throw Error("train: the solver asks for " + std::to_string(latent) + " latent channels; 0 to 4096 are possible");
  result.latent_channels = latent;
  const double input_noise = c.solver->input_noise();
  if (!(input_noise >= 0 && input_noise <= 100))
    throw Error("train: the solver asks for input noise " + number_text(input_noise) + "; 0 to 100 are possible");
  result.input_noise = input_noise;
  NetworkShape built_shape = map_shape;
  built_shape.in_channels += latent;
  auto map = build_module(c.map_net, built_shape);
  auto ema = build_module(c.map_net, built_shape);
  auto potential = build_module(c.potential_net, NetworkShape{channels, 1, 1, height, width});
  map->to(device);
  ema->to(device);
  potential->to(device);
  if (progress_on) {
    std::cerr << "train: map " << c.map_spec.name << " " << format_count(parameter_count(*map)) << " parameters, potential "
              << format_count(parameter_count(*potential)) << " parameters, device " << device.str() << ", "
              << at::get_num_threads() << " threads" << (c.precision == "bf16" ? ", bf16 autocast" : "");
    if (dist) std::cerr << "; " << world << " processes x batch " << c.batch << " = global batch " << world * c.batch;
    std::cerr << "\n";
  }

  SolverContext ctx;
  ctx.map = map;
  ctx.map_ema = ema;
  ctx.potential = potential;
  ctx.cost = c.cost;
  ctx.op = c.op;
  ctx.device = device;
  ctx.total_steps = c.iters;
  ctx.build_map = [net = c.map_net, built_shape, device]() {
    auto module = build_module(net, built_shape);
    module->to(device);
    return module;
  };
  int64_t gradient_syncs = 0;  // a data-parallel step that never averaged gradients is an error
  if (dist)
    ctx.gradient_sync = [&](Module& m) {
      dist->average_gradients(m);
      ++gradient_syncs;
    };
  c.solver->setup(ctx);

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const fs::path checkpoint = c.out / "checkpoint.pt";
  auto snapshot = [&](int64_t iteration) {
    return Checkpoint::to_bytes(iteration, gen, *map, ema.get(), *potential, *c.solver);
  };
  auto save_checkpoint = [&](int64_t iteration) {
    if (main_rank) Checkpoint::save(checkpoint, snapshot(iteration));
  };
  // Every process takes rank 0's state: its checkpoint when resuming, its fresh start otherwise.
  auto adopt = [&](std::string& state, int64_t iteration) {
    if (dist) dist->broadcast(state);
    return main_rank ? iteration : Checkpoint::load(state, "rank 0's training state", gen, *map, ema.get(), *potential, *c.solver);
  };
  auto load_checkpoint = [&]() {
    std::string state = main_rank ? Checkpoint::read(checkpoint) : std::string();
    const int64_t iteration =
        main_rank ? Checkpoint::load(state, checkpoint.string(), gen, *map, ema.get(), *potential, *c.solver) : 0;
    return adopt(state, iteration);
  };
  // Replicas must stay equal; a solver that skips sync_gradients() or a faulty machine breaks it.
  auto check_replicas = [&](int64_t iteration) {
    if (!dist) return;
    std::vector<double> lo;
    fingerprint(*map, lo);
    fingerprint(*potential, lo);
    std::vector<double> hi = lo;
    dist->min_max(lo, hi);
    for (size_t i = 0; i < lo.size(); ++i)
      if (std::abs(hi[i] - lo[i]) > 1e-5 * std::max(1.0, std::abs(hi[i])))
        throw Error("train: the " + std::to_string(world) + " replicas of the networks differ at iteration " +
                    std::to_string(iteration) + " (parameter sums " + number_text(lo[i]) + " to " + number_text(hi[i]) +
                    "); the solver does not average its gradients correctly; the last checkpoint " +
                    checkpoint.string() + " is intact");
  };
  const int64_t restarts = restart_count();
  const bool resume = c.resume || restarts > 0;
  int64_t start = 0;
  if (main_rank && resume && fs::exists(checkpoint)) {
    start = load_checkpoint();
    // Always said, progress or not: a run that silently continued an old one would mislead.
    std::cerr << "train: resumed from " << checkpoint.string() << " at iteration " << start
              << (restarts > 0 ? " (restart " + std::to_string(restarts) + " of the job)" : "") << "\n";
  } else {
    // A good state to roll back to from the very first iteration. The other ranks take rank 0's
    // state here, whether rank 0 resumed from its checkpoint or starts afresh.
    std::string state = main_rank ? snapshot(0) : std::string();
    if (main_rank) Checkpoint::save(checkpoint, state);
    start = adopt(state, 0);
  }

  // The frozen evaluation set: degraded once with seed 0.
  at::Tensor eval_y, eval_degraded;
  double eval_psnr_degraded = 0, eval_ssim_degraded = 0;
  if (c.eval_clean.defined() && main_rank) {
    at::Generator eval_gen = at::make_generator<at::CPUGeneratorImpl>(0);
    eval_y = degrade(c, c.eval_clean, eval_gen);
    torch::NoGradGuard no_grad;
    eval_degraded = c.op->lift(eval_y).clamp(-1, 1);
    eval_psnr_degraded = image_metrics::psnr(eval_degraded, c.eval_clean);
    eval_ssim_degraded = ssim_or_zero(eval_degraded, c.eval_clean);
  }
  // The map that is evaluated and saved: the solver's export (its moving average when it keeps one).
  auto evaluate = [&](int64_t iteration) {
    // The same z for every evaluation of a stochastic map, so that its curve shows the training.
    auto exported_map =
        stochastic_map(keep_library(c.solver->export_map(), library_of(c.solver)), latent, input_noise, c.seed);
    Module& exported = *exported_map;
    EvalPoint p;
    p.iteration = iteration;
    p.psnr_degraded = eval_psnr_degraded;
    p.ssim_degraded = eval_ssim_degraded;
    const at::Tensor restored = restore(exported, c.op.get(), eval_y, device);
    p.psnr_restored = image_metrics::psnr(restored, c.eval_clean);
    p.ssim_restored = ssim_or_zero(restored, c.eval_clean);
    result.evals.push_back(p);
    return p;
  };
  // log.jsonl: one line per record, numbers at 8 significant digits.
  auto log_number = [](double v) { return json_text::number(v, 8); };
  auto add_eval = [&](nlohmann::ordered_json& record, const EvalPoint& e) {
    record["psnr_degraded"] = log_number(e.psnr_degraded);
    record["psnr"] = log_number(e.psnr_restored);
    record["ssim_degraded"] = log_number(e.ssim_degraded);
    record["ssim"] = log_number(e.ssim_restored);
  };
  std::ofstream log;  // rank 0's; elsewhere it stays closed and writes go nowhere
  if (main_rank) log.open(c.out / "log.jsonl", resume ? std::ios::app : std::ios::trunc);
  Progress progress(start, c.iters, progress_on);
  InterruptGuard interrupt_guard;
  const at::Tensor clean = c.clean.to(at::kFloat), measured = c.measured.to(at::kFloat);
  std::map<std::string, double> stats;
  int64_t consecutive_rollbacks = 0;  // rollbacks to the same checkpoint: the rate drops each time
  int64_t it = start;
  bool stop = false;  // Ctrl-C: in a data-parallel job every rank learns of it in the same step
  const int64_t global_batch = c.batch * world, first = c.batch * rank;
  const bool paired = c.solver->wants_pairs();
  while (it < c.iters) {
    if (stop || (!dist && g_interrupted)) {
      save_checkpoint(it);
      throw Error("train: interrupted at iteration " + std::to_string(it) + "; checkpoint saved to " +
                  checkpoint.string() + " (run again with resume = true to continue)");
    }
    // Independent batches: indices into X and into the measured set, and the noise seeds, all
    // from `gen`, for the global batch; this process takes its slice [first, first + batch).
    // A solver that wants pairs gets measurements of the very signals x (from the clean set).
    at::Tensor ix = at::randint(clean.size(0), {global_batch}, gen, at::kLong).narrow(0, first, c.batch);
    at::Tensor iy = at::randint(measured.size(0), {global_batch}, gen, at::kLong).narrow(0, first, c.batch);
    const auto step_seed = static_cast<uint64_t>(at::randint(int64_t{1} << 62, {1}, gen, at::kLong).item<int64_t>());
    at::Tensor x = clean.index_select(0, ix);
    at::Tensor y = degrade_samples(c, paired ? x : measured.index_select(0, iy), step_seed, first).to(device);
    x = x.to(device);
    const int64_t syncs_before = gradient_syncs;
    NamedTensors dump;
    if (!c.dump_first_step.empty() && it == 0 && main_rank) {
      add_parameters(dump, "map/", *map);
      add_parameters(dump, "potential/", *potential);
      dump.insert(dump.end(), {{"batch/y", y}, {"batch/x", x}});
    }
    {
      // Mixed precision for the duration of a solver step: autocast to bfloat16 on the device.
      PrecisionGuard autocast(c.precision == "bf16" ? Precision::BF16 : Precision::FP32, device);
      stats = c.solver->step(y, x);
    }
    if (dist) {
      if (gradient_syncs == syncs_before)
        throw Error("train: the solver '" + c.solver_name +
                    "' cannot train data-parallel: its step never averaged gradients (SolverContext::sync_gradients, "
                    "SDK 4); train it in one process");
      // Statistics are averaged over the processes (as one process with the global batch would
      // see them), so every rank takes the same rollback and stop decisions.
      std::vector<double> values;
      for (const auto& kv : stats) values.push_back(kv.second);
      values.push_back(g_interrupted ? 1.0 : 0.0);
      dist->sum(values);
      size_t i = 0;
      for (auto& kv : stats) kv.second = values[i++] / world;
      stop = values.back() > 0;
    }
    if (!dump.empty()) write_step_dump(c.dump_first_step, dump, stats);
    std::string bad;
    for (const auto& [k, v] : stats) {
      if (!bad.empty()) break;
      if (!std::isfinite(v)) bad = k + " = " + number_text(v);
      else if (c.max_loss > 0 && k.rfind("loss", 0) == 0 && std::abs(v) > c.max_loss)
        bad = k + " = " + number_text(v) + ", above max_loss " + number_text(c.max_loss);
    }
    if (!bad.empty()) {
      const std::string where = "train: iteration " + std::to_string(it + 1) + " diverged (" + bad + ")";
      if (result.rollbacks >= c.max_rollbacks)
        throw Error(where + " after " + std::to_string(result.rollbacks) + " rollback(s); the last checkpoint " +
                    checkpoint.string() + " is intact: lower the learning rates or tau and resume from it");
      const int64_t diverged_at = it + 1;
      it = load_checkpoint();
      ++consecutive_rollbacks;
      const double factor = std::pow(c.rollback_lr_factor, static_cast<double>(consecutive_rollbacks));
      if (!c.solver->scale_learning_rates(factor))
        throw Error(where + "; the solver cannot lower its learning rates, so training stops; the last checkpoint " +
                    checkpoint.string() + " is intact: lower the learning rates and resume from it");
      ++result.rollbacks;
      while (!result.evals.empty() && result.evals.back().iteration > it) result.evals.pop_back();
      std::ostringstream note;
      note << "rolled back to the checkpoint of iteration " << it << " and multiplied the learning rates by "
           << factor << " (rollback " << result.rollbacks << " of at most " << c.max_rollbacks << ")";
      if (main_rank) std::cerr << (c.progress ? "\n" : "") << where << ": " << note.str() << "\n";
      log << json_text::dump({{"iter", it}, {"event", "rollback"}, {"diverged_at", diverged_at}, {"reason", bad},
                              {"lr_factor", log_number(factor)}})
          << "\n" << std::flush;
      continue;
    }
    ++it;
    const int64_t done = it;
    const bool eval_now = main_rank && eval_y.defined() && c.eval_every > 0 && done % c.eval_every == 0 && done != c.iters;
    if (eval_now) evaluate(done);
    const EvalPoint* latest = eval_now ? &result.evals.back() : nullptr;
    if (c.log_every > 0 && (done % c.log_every == 0 || latest)) {
      nlohmann::ordered_json record = {{"iter", done}, {"time", log_number(progress.seconds())}};
      for (const auto& [k, v] : stats) record[k] = log_number(v);
      if (latest) add_eval(record, *latest);
      log << json_text::dump(record) << "\n" << std::flush;
    }
    if (c.checkpoint_every > 0 && done % c.checkpoint_every == 0 && done != c.iters) {
      check_replicas(done);
      save_checkpoint(done);
      consecutive_rollbacks = 0;
    }
    progress.update(done, stats, result.evals.empty() ? nullptr : &result.evals.back());
  }
  result.iterations = it - start;
  result.seconds = progress.seconds();
  result.last_stats = stats;
  check_replicas(it);
  save_checkpoint(it);
  result.map_path = c.out / "map.pt";
  auto exported = keep_library(c.solver->export_map(), library_of(c.solver));
  // Rank 0 evaluates and writes the map while the others wait, so that map.pt exists when train()
  // returns on every rank; the final evaluation may take longer than one exchange's timeout.
  auto wait_for_rank0 = [&] {
    if (dist)
      dist->barrier(std::max(std::chrono::milliseconds(static_cast<int64_t>(c.dist_timeout * 1000)),
                             std::chrono::milliseconds(3600 * 1000)));
  };
  if (!main_rank) {
    wait_for_rank0();
    exported->eval();
    result.map = stochastic_map(exported, latent, input_noise, c.seed);
    return result;
  }

  MapInfo info;
  info.network = c.map_spec;
  info.shape = map_shape;
  info.latent_channels = latent;
  info.input_noise = input_noise;
  info.op = c.op_spec;
  if (auto* w = dynamic_cast<const wiener::WienerLift*>(c.op.get())) info.lift = w->model();
  if (!c.noise) info.noise = PluginSpec{"none", Params{}};
  else info.noise = c.noise_spec;
  info.notes = {{"solver", c.solver_name}, {"iterations", std::to_string(c.iters)},
                {"batch", std::to_string(c.batch)}, {"seed", std::to_string(c.seed)}};
  if (dist) info.notes["processes"] = std::to_string(world);
  if (eval_y.defined()) {
    const EvalPoint final_eval = evaluate(c.iters);
    info.metrics = {{"psnr", final_eval.psnr_restored}, {"psnr_degraded", final_eval.psnr_degraded}};
    if (final_eval.ssim_restored != 0)
      info.metrics.insert({{"ssim", final_eval.ssim_restored}, {"ssim_degraded", final_eval.ssim_degraded}});
    nlohmann::ordered_json record = {{"iter", c.iters}};
    add_eval(record, final_eval);
    log << json_text::dump(record) << "\n";
  }
  exported->to(c10::kCPU);
  save_map(result.map_path, *exported, info);
  exported->to(device);
  exported->eval();
  result.map = stochastic_map(exported, latent, input_noise, c.seed);
  wait_for_rank0();
  return result;
}

}  // namespace monge::host
