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

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::kCPU;
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("train: device 'cuda' requested, but this LibTorch has no usable CUDA device; use device = 'cpu' or 'auto'");
    return c10::kCUDA;
  }
  throw Error("train: device must be 'auto', 'cpu' or 'cuda', got '" + name + "'");
}

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

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o << std::setprecision(8) << v;
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

struct Checkpoint {
  static void save(const fs::path& file, int64_t iteration, const at::Generator& gen, Module& map, Module* ema,
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
    write_atomically(file, [&](const std::string& tmp) { a.save_to(tmp); });
  }

  static int64_t load(const fs::path& file, at::Generator& gen, Module& map, Module* ema, Module& potential,
                      Solver& solver) {
    torch::serialize::InputArchive a;
    try {
      a.load_from(file.string());
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
      std::string msg = ex.what();
      if (auto cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
      throw Error(file.string() + ": cannot resume from this checkpoint (" + msg +
                  "); it was written by another configuration or is corrupt; start without resume or use another out directory");
    }
  }
};

// Degrades signals: y = noise(A(x)), seeded by `gen`.
at::Tensor degrade(const TrainConfig& c, const at::Tensor& x, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  at::Tensor ax = c.op->forward(x);
  return c.noise ? c.noise->sample(ax, gen) : ax;
}

at::Tensor restore(Module& map, const ForwardOperator& op, const at::Tensor& y, c10::Device device) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < y.size(0); i += 256) {
    at::Tensor part = y.narrow(0, i, std::min<int64_t>(256, y.size(0) - i)).to(device);
    out.push_back(map.forward(op.lift(part)).clamp(-1, 1).to(c10::kCPU));
  }
  return at::cat(out, 0);
}

}  // namespace

double psnr(const at::Tensor& restored, const at::Tensor& reference) {
  at::Tensor diff = (restored.to(at::kDouble) - reference.to(at::kDouble)) / 2;  // [0, 1] scale
  at::Tensor mse = diff.square().reshape({diff.size(0), -1}).mean(1).clamp_min(1e-12);
  return (-10.0 * at::log10(mse)).mean().item<double>();
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
  if (c.iters < 1 || c.batch < 1) throw Error("train: 'iters' and 'batch' must be at least 1");
  if (c.out.empty()) throw Error("train: 'out' (a run directory) is required");
  std::error_code ec;
  fs::create_directories(c.out, ec);
  if (!fs::is_directory(c.out)) throw Error("train: cannot create the run directory " + c.out.string() + " (" + ec.message() + ")");

  const c10::Device device = resolve_device(c.device);
  const int64_t channels = c.clean.size(1), height = c.clean.size(2), width = c.clean.size(3);
  torch::manual_seed(c.seed);
  const NetworkShape map_shape{channels, channels, 1, height, width};
  auto map = c.map_net->build(map_shape);
  auto ema = c.map_net->build(map_shape);
  auto potential = c.potential_net->build(NetworkShape{channels, 1, 1, height, width});
  map->to(device);
  ema->to(device);
  potential->to(device);
  if (c.progress)
    std::cerr << "train: map " << c.map_spec.name << " " << format_count(parameter_count(*map)) << " parameters, potential "
              << format_count(parameter_count(*potential)) << " parameters, device " << device.str() << ", "
              << at::get_num_threads() << " threads\n";

  SolverContext ctx;
  ctx.map = map;
  ctx.map_ema = ema;
  ctx.potential = potential;
  ctx.cost = c.cost;
  ctx.op = c.op;
  ctx.device = device;
  c.solver->setup(ctx);

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const fs::path checkpoint = c.out / "checkpoint.pt";
  int64_t start = 0;
  if (c.resume && fs::exists(checkpoint)) {
    start = Checkpoint::load(checkpoint, gen, *map, ema.get(), *potential, *c.solver);
    if (c.progress) std::cerr << "train: resumed from " << checkpoint.string() << " at iteration " << start << "\n";
  }

  // The frozen evaluation set: degraded once with seed 0.
  at::Tensor eval_y;
  if (c.eval_clean.defined()) {
    at::Generator eval_gen = at::make_generator<at::CPUGeneratorImpl>(0);
    eval_y = degrade(c, c.eval_clean, eval_gen);
  }
  TrainResult result;
  // The map that is evaluated and saved: the solver's export (its moving average when it keeps one).
  auto evaluate = [&](int64_t iteration) {
    Module& exported = *c.solver->export_map();
    EvalPoint p;
    p.iteration = iteration;
    torch::NoGradGuard no_grad;
    p.psnr_degraded = psnr(c.op->lift(eval_y).clamp(-1, 1), c.eval_clean);
    p.psnr_restored = psnr(restore(exported, *c.op, eval_y, device), c.eval_clean);
    result.evals.push_back(p);
    return p;
  };

  std::ofstream log(c.out / "log.jsonl", c.resume ? std::ios::app : std::ios::trunc);
  Progress progress(start, c.iters, c.progress);
  InterruptGuard interrupt_guard;
  const at::Tensor clean = c.clean.to(at::kFloat), measured = c.measured.to(at::kFloat);
  std::map<std::string, double> stats;
  int64_t it = start;
  for (; it < c.iters; ++it) {
    if (g_interrupted) {
      Checkpoint::save(checkpoint, it, gen, *map, ema.get(), *potential, *c.solver);
      throw Error("train: interrupted at iteration " + std::to_string(it) + "; checkpoint saved to " +
                  checkpoint.string() + " (run again with resume = true to continue)");
    }
    // Independent batches: indices into X and into the measured set, noise, all from `gen`.
    at::Tensor ix = at::randint(clean.size(0), {c.batch}, gen, at::kLong);
    at::Tensor iy = at::randint(measured.size(0), {c.batch}, gen, at::kLong);
    at::Tensor x = clean.index_select(0, ix).to(device);
    at::Tensor y = degrade(c, measured.index_select(0, iy), gen).to(device);
    stats = c.solver->step(y, x);
    for (const auto& [k, v] : stats)
      if (!std::isfinite(v))
        throw Error("train: diverged at iteration " + std::to_string(it + 1) + " (" + k + " = " + json_number(v) +
                    "); the last checkpoint " + checkpoint.string() +
                    " is intact: lower the learning rates or tau and resume from it");
    const int64_t done = it + 1;
    const bool eval_now = eval_y.defined() && c.eval_every > 0 && done % c.eval_every == 0 && done != c.iters;
    if (eval_now) evaluate(done);
    const EvalPoint* latest = eval_now ? &result.evals.back() : nullptr;
    if (c.log_every > 0 && (done % c.log_every == 0 || latest)) {
      log << "{\"iter\": " << done << ", \"time\": " << json_number(progress.seconds());
      for (const auto& [k, v] : stats) log << ", \"" << k << "\": " << json_number(v);
      if (latest) log << ", \"psnr_degraded\": " << json_number(latest->psnr_degraded) << ", \"psnr\": " << json_number(latest->psnr_restored);
      log << "}\n" << std::flush;
    }
    if (c.checkpoint_every > 0 && done % c.checkpoint_every == 0 && done != c.iters)
      Checkpoint::save(checkpoint, done, gen, *map, ema.get(), *potential, *c.solver);
    progress.update(done, stats, result.evals.empty() ? nullptr : &result.evals.back());
  }
  result.iterations = it - start;
  result.seconds = progress.seconds();
  result.last_stats = stats;
  Checkpoint::save(checkpoint, it, gen, *map, ema.get(), *potential, *c.solver);

  MapInfo info;
  info.network = c.map_spec;
  info.shape = map_shape;
  info.op = c.op_spec;
  info.notes = {{"solver", c.solver_name}, {"iterations", std::to_string(c.iters)},
                {"batch", std::to_string(c.batch)}, {"seed", std::to_string(c.seed)}};
  if (eval_y.defined()) {
    const EvalPoint final_eval = evaluate(c.iters);
    info.metrics = {{"psnr", final_eval.psnr_restored}, {"psnr_degraded", final_eval.psnr_degraded}};
    log << "{\"iter\": " << c.iters << ", \"psnr_degraded\": " << json_number(final_eval.psnr_degraded)
        << ", \"psnr\": " << json_number(final_eval.psnr_restored) << "}\n";
  }
  result.map_path = c.out / "map.pt";
  auto exported = c.solver->export_map();
  exported->to(c10::kCPU);
  save_map(result.map_path, *exported, info);
  exported->to(device);
  exported->eval();
  result.map = exported;
  return result;
}

}  // namespace monge::host
