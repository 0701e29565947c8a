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

namespace {

// The configuration's own checks, before anything is built; creates the run directory.
void check_config(const TrainConfig& c) {
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
}

// The training device, checked against the precision; then the operator is tried on one training
// image, so that a mismatch fails here, before any network is built.
c10::Device training_device(const TrainConfig& c) {
  const c10::Device device = resolve_device(c.device, "train");
  if (c.precision == "bf16" && device.is_cpu() && !cpu_bf16_kernels())
    throw Error("train: precision 'bf16' needs LibTorch's bfloat16 convolutions, which oneDNN has only on CPUs with "
                "AVX-512; this CPU (or its DNNL_MAX_CPU_ISA / ATEN_CPU_CAPABILITY limit) has none. Train with "
                "precision 'fp32', or on a GPU");
  try {
    torch::NoGradGuard no_grad;
    (void)c.op->forward(c.clean.narrow(0, 0, 1).to(at::kFloat));
  } catch (const std::exception& e) {
    throw Error(std::string("train: the operator cannot take the training images (1 x ") + std::to_string(c.clean.size(1)) +
                " x " + std::to_string(c.clean.size(2)) + " x " + std::to_string(c.clean.size(3)) + "): " + e.what());
  }
  return device;
}

// log.jsonl: one line per record, numbers at 8 significant digits.
nlohmann::ordered_json log_number(double v) { return json_text::number(v, 8); }

void add_eval(nlohmann::ordered_json& record, const EvalPoint& e) {
  record["psnr_degraded"] = log_number(e.psnr_degraded);
  record["psnr"] = log_number(e.psnr_restored);
  record["ssim_degraded"] = log_number(e.ssim_degraded);
  record["ssim"] = log_number(e.ssim_restored);
}

// The first divergent statistic of a step, described for messages; empty when the step is sound.
std::string divergence(const TrainConfig& c, const std::map<std::string, double>& stats) {
  std::string bad;
  for (const auto& [k, v] : stats) {
    if (!bad.empty()) break;
    if (!std::isfinite(v)) bad = k + " = " + number_text(v);
    else if (c.max_loss > 0 && k.rfind("loss", 0) == 0 && std::abs(v) > c.max_loss)
      bad = k + " = " + number_text(v) + ", above max_loss " + number_text(c.max_loss);
  }
  return bad;
}

// A step's training batch on the device: signals x, measurements y.
struct Batch {
  at::Tensor x, y;
};

// One call of train(): the networks, the solver, the random state and the run directory, and the
// steps of a run over them. It is built in place and never moved: the solver's gradient_sync refers
// to it.
class TrainRun {
 public:
  TrainRun(const TrainConfig& c, c10::Device device) : c_(c), device_(device) {}
  TrainRun(const TrainRun&) = delete;
  TrainRun& operator=(const TrainRun&) = delete;

  TrainResult run();

 private:
  void warn(const std::string& w) {
    result_.warnings.push_back(w);
    std::cerr << "train: warning: " << w << "\n";
  }
  void join_processes();
  void build_networks();
  void setup_solver();
  void start_or_resume();
  void prepare_eval_set();
  std::string snapshot(int64_t iteration) {
    return Checkpoint::to_bytes(iteration, gen_, *map_, ema_.get(), *potential_, *c_.solver);
  }
  void save_checkpoint(int64_t iteration) {
    if (main_rank_) Checkpoint::save(checkpoint_, snapshot(iteration));
  }
  int64_t adopt(std::string& state, int64_t iteration);
  int64_t load_checkpoint();
  void check_replicas(int64_t iteration);
  EvalPoint evaluate(int64_t iteration);
  void check_interrupt(int64_t it) {
    if (stop_ || (!dist_ && g_interrupted)) {
      save_checkpoint(it);
      throw Error("train: interrupted at iteration " + std::to_string(it) + "; checkpoint saved to " +
                  checkpoint_.string() + " (run again with resume = true to continue)");
    }
  }
  Batch draw_batch();
  void step(int64_t it);
  void average_stats();
  int64_t roll_back(int64_t it, const std::string& bad);
  void after_step(int64_t done);
  void wait_for_rank0();
  TrainResult finish(int64_t it);
  MapInfo map_info() const;

  const TrainConfig& c_;
  const c10::Device device_;
  TrainResult result_;
  std::shared_ptr<Distributed> dist_;
  int rank_ = 0, world_ = 1;
  bool main_rank_ = true, progress_on_ = false;
  NetworkShape map_shape_, built_shape_;
  int64_t latent_ = 0;
  double input_noise_ = 0;
  std::shared_ptr<Module> map_, ema_, potential_;
  int64_t gradient_syncs_ = 0;  // a data-parallel step that never averaged gradients is an error
  at::Generator gen_;
  fs::path checkpoint_;
  bool resume_ = false;
  int64_t start_ = 0;
  // The frozen evaluation set
  at::Tensor eval_y_, eval_degraded_;
  double eval_psnr_degraded_ = 0, eval_ssim_degraded_ = 0;
  std::ofstream log_;  // rank 0's; elsewhere it stays closed and writes go nowhere
  std::optional<Progress> progress_;
  at::Tensor clean_, measured_;  // in float32
  int64_t global_batch_ = 0, first_ = 0;  // this process's slice of the global batch: [first, first + batch)
  bool paired_ = false;
  std::map<std::string, double> stats_;
  int64_t consecutive_rollbacks_ = 0;  // rollbacks to the same checkpoint: the rate drops each time
  bool stop_ = false;  // Ctrl-C: in a data-parallel job every rank learns of it in the same step
};

// Data parallel: one replica per process; rank 0 alone writes the run directory.
void TrainRun::join_processes() {
  dist_ = Distributed::get(std::chrono::milliseconds(static_cast<int64_t>(c_.dist_timeout * 1000)));
  rank_ = dist_ ? dist_->rank() : 0;
  world_ = dist_ ? dist_->world() : 1;
  main_rank_ = rank_ == 0;
  progress_on_ = c_.progress && main_rank_;
}

void TrainRun::build_networks() {
  const int64_t channels = c_.clean.size(1), height = c_.clean.size(2), width = c_.clean.size(3);
  torch::manual_seed(c_.seed);
  map_shape_ = NetworkShape{channels, channels, 1, height, width};
  result_.shape = map_shape_;
  // A stochastic map T(y, z) takes the solver's latent channels after those of Q(y).
  latent_ = c_.solver->latent_channels();
  if (latent_ < 0 || latent_ > 4096)
    throw Error("train: the solver asks for " + std::to_string(latent_) + " latent channels; 0 to 4096 are possible");
  result_.latent_channels = latent_;
  input_noise_ = c_.solver->input_noise();
  if (!(input_noise_ >= 0 && input_noise_ <= 100))
    throw Error("train: the solver asks for input noise " + number_text(input_noise_) + "; 0 to 100 are possible");
  result_.input_noise = input_noise_;
  built_shape_ = map_shape_;
  built_shape_.in_channels += latent_;
  map_ = build_module(c_.map_net, built_shape_);
  ema_ = build_module(c_.map_net, built_shape_);
  potential_ = build_module(c_.potential_net, NetworkShape{channels, 1, 1, height, width});
  map_->to(device_);
  ema_->to(device_);
  potential_->to(device_);
  if (progress_on_) {
    std::cerr << "train: map " << c_.map_spec.name << " " << format_count(parameter_count(*map_)) << " parameters, potential "
              << format_count(parameter_count(*potential_)) << " parameters, device " << device_.str() << ", "
              << at::get_num_threads() << " threads" << (c_.precision == "bf16" ? ", bf16 autocast" : "");
    if (dist_) std::cerr << "; " << world_ << " processes x batch " << c_.batch << " = global batch " << world_ * c_.batch;
    std::cerr << "\n";
  }
}

void TrainRun::setup_solver() {
  SolverContext ctx;
  ctx.map = map_;
  ctx.map_ema = ema_;
  ctx.potential = potential_;
  ctx.cost = c_.cost;
  ctx.op = c_.op;
  ctx.device = device_;
  ctx.total_steps = c_.iters;
  ctx.build_map = [net = c_.map_net, shape = built_shape_, device = device_]() {
    auto module = build_module(net, shape);
    module->to(device);
    return module;
  };
  if (dist_)
    ctx.gradient_sync = [this](Module& m) {
      dist_->average_gradients(m);
      ++gradient_syncs_;
    };
  c_.solver->setup(ctx);
}

// Every process takes rank 0's state: its checkpoint when resuming, its fresh start otherwise.
int64_t TrainRun::adopt(std::string& state, int64_t iteration) {
  if (dist_) dist_->broadcast(state);
  return main_rank_ ? iteration
                    : Checkpoint::load(state, "rank 0's training state", gen_, *map_, ema_.get(), *potential_, *c_.solver);
}

int64_t TrainRun::load_checkpoint() {
  std::string state = main_rank_ ? Checkpoint::read(checkpoint_) : std::string();
  const int64_t iteration =
      main_rank_ ? Checkpoint::load(state, checkpoint_.string(), gen_, *map_, ema_.get(), *potential_, *c_.solver) : 0;
  return adopt(state, iteration);
}

// Replicas must stay equal; a solver that skips sync_gradients() or a faulty machine breaks it.
void TrainRun::check_replicas(int64_t iteration) {
  if (!dist_) return;
  std::vector<double> lo;
  fingerprint(*map_, lo);
  fingerprint(*potential_, lo);
  std::vector<double> hi = lo;
  dist_->min_max(lo, hi);
  for (size_t i = 0; i < lo.size(); ++i)
    if (std::abs(hi[i] - lo[i]) > 1e-5 * std::max(1.0, std::abs(hi[i])))
      throw Error("train: the " + std::to_string(world_) + " replicas of the networks differ at iteration " +
                  std::to_string(iteration) + " (parameter sums " + number_text(lo[i]) + " to " + number_text(hi[i]) +
                  "); the solver does not average its gradients correctly; the last checkpoint " +
                  checkpoint_.string() + " is intact");
}

void TrainRun::start_or_resume() {
  gen_ = at::make_generator<at::CPUGeneratorImpl>(c_.seed);
  checkpoint_ = c_.out / "checkpoint.pt";
  const int64_t restarts = restart_count();
  resume_ = c_.resume || restarts > 0;
  if (main_rank_ && resume_ && fs::exists(checkpoint_)) {
    start_ = load_checkpoint();
    // Always said, progress or not: a run that silently continued an old one would mislead.
    std::cerr << "train: resumed from " << checkpoint_.string() << " at iteration " << start_
              << (restarts > 0 ? " (restart " + std::to_string(restarts) + " of the job)" : "") << "\n";
  } else {
    // A good state to roll back to from the very first iteration. The other ranks take rank 0's
    // state here, whether rank 0 resumed from its checkpoint or starts afresh.
    std::string state = main_rank_ ? snapshot(0) : std::string();
    if (main_rank_) Checkpoint::save(checkpoint_, state);
    start_ = adopt(state, 0);
  }
}

// The frozen evaluation set: degraded once with seed 0.
void TrainRun::prepare_eval_set() {
  if (!c_.eval_clean.defined() || !main_rank_) return;
  at::Generator eval_gen = at::make_generator<at::CPUGeneratorImpl>(0);
  eval_y_ = degrade(c_, c_.eval_clean, eval_gen);
  torch::NoGradGuard no_grad;
  eval_degraded_ = c_.op->lift(eval_y_).clamp(-1, 1);
  eval_psnr_degraded_ = image_metrics::psnr(eval_degraded_, c_.eval_clean);
  eval_ssim_degraded_ = ssim_or_zero(eval_degraded_, c_.eval_clean);
}


// The map that is evaluated and saved: the solver's export (its moving average when it keeps one).
EvalPoint TrainRun::evaluate(int64_t iteration) {
  // The same z for every evaluation of a stochastic map, so that its curve shows the training.
  auto exported_map =
      stochastic_map(keep_library(c_.solver->export_map(), library_of(c_.solver)), latent_, input_noise_, c_.seed);
  Module& exported = *exported_map;
  EvalPoint p;
  p.iteration = iteration;
  p.psnr_degraded = eval_psnr_degraded_;
  p.ssim_degraded = eval_ssim_degraded_;
  const at::Tensor restored = restore(exported, c_.op.get(), eval_y_, device_);
  p.psnr_restored = image_metrics::psnr(restored, c_.eval_clean);
  p.ssim_restored = ssim_or_zero(restored, c_.eval_clean);
  result_.evals.push_back(p);
  return p;
}

TrainResult TrainRun::run() {
  if (auto w = twist_warning(*c_.cost, *c_.op)) warn(*w);
  join_processes();
  build_networks();
  setup_solver();
  start_or_resume();
  prepare_eval_set();
  if (main_rank_) log_.open(c_.out / "log.jsonl", resume_ ? std::ios::app : std::ios::trunc);
  progress_.emplace(start_, c_.iters, progress_on_);
  InterruptGuard interrupt_guard;
  clean_ = c_.clean.to(at::kFloat);
  measured_ = c_.measured.to(at::kFloat);
  global_batch_ = c_.batch * world_;
  first_ = c_.batch * rank_;
  paired_ = c_.solver->wants_pairs();
  int64_t it = start_;
  while (it < c_.iters) {
    check_interrupt(it);
    step(it);
    if (const std::string bad = divergence(c_, stats_); !bad.empty()) {
      it = roll_back(it, bad);
      continue;
    }
    ++it;
    after_step(it);
  }
  return finish(it);
}

// Independent batches: indices into X and into the measured set, and the noise seeds, all from
// `gen`, for the global batch; this process takes its slice [first, first + batch). A solver that
// wants pairs gets measurements of the very signals x (from the clean set).
Batch TrainRun::draw_batch() {
  at::Tensor ix = at::randint(clean_.size(0), {global_batch_}, gen_, at::kLong).narrow(0, first_, c_.batch);
  at::Tensor iy = at::randint(measured_.size(0), {global_batch_}, gen_, at::kLong).narrow(0, first_, c_.batch);
  const auto step_seed = static_cast<uint64_t>(at::randint(int64_t{1} << 62, {1}, gen_, at::kLong).item<int64_t>());
  at::Tensor x = clean_.index_select(0, ix);
  at::Tensor y = degrade_samples(c_, paired_ ? x : measured_.index_select(0, iy), step_seed, first_).to(device_);
  return Batch{x.to(device_), y};
}

// One solver step on a fresh batch; its statistics land in stats_ (averaged over the processes).
void TrainRun::step(int64_t it) {
  const Batch batch = draw_batch();
  const int64_t syncs_before = gradient_syncs_;
  NamedTensors dump;
  if (!c_.dump_first_step.empty() && it == 0 && main_rank_) {
    add_parameters(dump, "map/", *map_);
    add_parameters(dump, "potential/", *potential_);
    dump.insert(dump.end(), {{"batch/y", batch.y}, {"batch/x", batch.x}});
  }
  {
    // Mixed precision for the duration of a solver step: autocast to bfloat16 on the device.
    PrecisionGuard autocast(c_.precision == "bf16" ? Precision::BF16 : Precision::FP32, device_);
    stats_ = c_.solver->step(batch.y, batch.x);
  }
  if (dist_) {
    if (gradient_syncs_ == syncs_before)
      throw Error("train: the solver '" + c_.solver_name +
                  "' cannot train data-parallel: its step never averaged gradients (SolverContext::sync_gradients, "
                  "SDK 4); train it in one process");
    average_stats();
  }
  if (!dump.empty()) write_step_dump(c_.dump_first_step, dump, stats_);
}

// Statistics are averaged over the processes (as one process with the global batch would see
// them), so every rank takes the same rollback and stop decisions.
void TrainRun::average_stats() {
  std::vector<double> values;
  for (const auto& kv : stats_) values.push_back(kv.second);
  values.push_back(g_interrupted ? 1.0 : 0.0);
  dist_->sum(values);
  size_t i = 0;
  for (auto& kv : stats_) kv.second = values[i++] / world_;
  stop_ = values.back() > 0;
}

// Step it + 1 diverged (`bad` says how): back to the last checkpoint with lower learning rates.
// Returns the checkpoint's iteration.
int64_t TrainRun::roll_back(int64_t it, const std::string& bad) {
  const std::string where = "train: iteration " + std::to_string(it + 1) + " diverged (" + bad + ")";
  if (result_.rollbacks >= c_.max_rollbacks)
    throw Error(where + " after " + std::to_string(result_.rollbacks) + " rollback(s); the last checkpoint " +
                checkpoint_.string() + " is intact: lower the learning rates or tau and resume from it");
  const int64_t diverged_at = it + 1;
  it = load_checkpoint();
  ++consecutive_rollbacks_;
  const double factor = std::pow(c_.rollback_lr_factor, static_cast<double>(consecutive_rollbacks_));
  if (!c_.solver->scale_learning_rates(factor))
    throw Error(where + "; the solver cannot lower its learning rates, so training stops; the last checkpoint " +
                checkpoint_.string() + " is intact: lower the learning rates and resume from it");
  ++result_.rollbacks;
  while (!result_.evals.empty() && result_.evals.back().iteration > it) result_.evals.pop_back();
  std::ostringstream note;
  note << "rolled back to the checkpoint of iteration " << it << " and multiplied the learning rates by "
       << factor << " (rollback " << result_.rollbacks << " of at most " << c_.max_rollbacks << ")";
  if (main_rank_) std::cerr << (c_.progress ? "\n" : "") << where << ": " << note.str() << "\n";
  log_ << json_text::dump({{"iter", it}, {"event", "rollback"}, {"diverged_at", diverged_at}, {"reason", bad},
                           {"lr_factor", log_number(factor)}})
       << "\n" << std::flush;
  return it;
}

// After a sound step: evaluation, the log line, the checkpoint and the progress line as they fall due.
void TrainRun::after_step(int64_t done) {
  const bool eval_now = main_rank_ && eval_y_.defined() && c_.eval_every > 0 && done % c_.eval_every == 0 && done != c_.iters;
  if (eval_now) evaluate(done);
  const EvalPoint* latest = eval_now ? &result_.evals.back() : nullptr;
  if (c_.log_every > 0 && (done % c_.log_every == 0 || latest)) {
    nlohmann::ordered_json record = {{"iter", done}, {"time", log_number(progress_->seconds())}};
    for (const auto& [k, v] : stats_) record[k] = log_number(v);
    if (latest) add_eval(record, *latest);
    log_ << json_text::dump(record) << "\n" << std::flush;
  }
  if (c_.checkpoint_every > 0 && done % c_.checkpoint_every == 0 && done != c_.iters) {
    check_replicas(done);
    save_checkpoint(done);
    consecutive_rollbacks_ = 0;
  }
  progress_->update(done, stats_, result_.evals.empty() ? nullptr : &result_.evals.back());
}

// Rank 0 evaluates and writes the map while the others wait, so that map.pt exists when train()
// returns on every rank; the final evaluation may take longer than one exchange's timeout.
void TrainRun::wait_for_rank0() {
  if (dist_)
    dist_->barrier(std::max(std::chrono::milliseconds(static_cast<int64_t>(c_.dist_timeout * 1000)),
                            std::chrono::milliseconds(3600 * 1000)));
}

// What map.pt records besides the weights (the final evaluation's metrics are added by finish).
MapInfo TrainRun::map_info() const {
  MapInfo info;
  info.network = c_.map_spec;
  info.shape = map_shape_;
  info.latent_channels = latent_;
  info.input_noise = input_noise_;
  info.op = c_.op_spec;
  if (auto* w = dynamic_cast<const wiener::WienerLift*>(c_.op.get())) info.lift = w->model();
  if (!c_.noise) info.noise = PluginSpec{"none", Params{}};
  else info.noise = c_.noise_spec;
  info.notes = {{"solver", c_.solver_name}, {"iterations", std::to_string(c_.iters)},
                {"batch", std::to_string(c_.batch)}, {"seed", std::to_string(c_.seed)}};
  if (dist_) info.notes["processes"] = std::to_string(world_);
  return info;
}

// The last checkpoint, the final evaluation and map.pt (rank 0's), and the result.
TrainResult TrainRun::finish(int64_t it) {
  result_.iterations = it - start_;
  result_.seconds = progress_->seconds();
  result_.last_stats = stats_;
  check_replicas(it);
  save_checkpoint(it);
  result_.map_path = c_.out / "map.pt";
  auto exported = keep_library(c_.solver->export_map(), library_of(c_.solver));
  if (!main_rank_) {
    wait_for_rank0();
    exported->eval();
    result_.map = stochastic_map(exported, latent_, input_noise_, c_.seed);
    return std::move(result_);
  }
  MapInfo info = map_info();
  if (eval_y_.defined()) {
    const EvalPoint final_eval = evaluate(c_.iters);
    info.metrics = {{"psnr", final_eval.psnr_restored}, {"psnr_degraded", final_eval.psnr_degraded}};
    if (final_eval.ssim_restored != 0)
      info.metrics.insert({{"ssim", final_eval.ssim_restored}, {"ssim_degraded", final_eval.ssim_degraded}});
    nlohmann::ordered_json record = {{"iter", c_.iters}};
    add_eval(record, final_eval);
    log_ << json_text::dump(record) << "\n";
  }
  exported->to(c10::kCPU);
  save_map(result_.map_path, *exported, info);
  exported->to(device_);
  exported->eval();
  result_.map = stochastic_map(exported, latent_, input_noise_, c_.seed);
  wait_for_rank0();
  return std::move(result_);
}

}  // namespace

TrainResult train(const TrainConfig& c) {
  check_config(c);
  TrainRun run(c, training_device(c));
  return run.run();
}

}  // namespace monge::host
