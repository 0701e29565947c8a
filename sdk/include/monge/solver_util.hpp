#pragma once
/// Pieces most solvers share: the map's exponential moving average, a cosine learning-rate
/// schedule, setting an Adam optimiser's rate, and MapPotentialTraining, which holds all of that
/// for a solver of a map and a potential (or critic). Header-only; include it from solver plugins.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include "monge/network.hpp"
#include "monge/params.hpp"
#include "monge/plugin.hpp"
#include "monge/solver.hpp"

namespace monge::solver_util {

/// Copies `from`'s parameters into `to` (same architecture), e.g. to start a moving average.
inline void copy_parameters(Module& from, Module& to) {
  torch::NoGradGuard no_grad;
  auto src = from.parameters();
  auto dst = to.parameters();
  if (src.size() != dst.size()) throw Error("solver: the moving average does not have the map's architecture");
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
}

/// One step of the moving average `ema <- decay ema + (1 - decay) map`. With warm-up the decay is
/// min(rate, (1 + t) / (10 + t)) at step t, so that early on the average follows the map instead
/// of remembering its start. Returns the decay used.
inline double update_moving_average(Module& map, Module& ema, double rate, bool warmup, int64_t step) {
  torch::NoGradGuard no_grad;
  const double t = static_cast<double>(step);
  const double decay = warmup ? std::min(rate, (1 + t) / (10 + t)) : rate;
  auto src = map.parameters();
  auto dst = ema.parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(decay).add_(src[i], 1 - decay);
  return decay;
}

/// 0.5 (1 + cos(pi t / T)): 1 at step 0, 0 at step T; 1 throughout when T is unknown (<= 0).
inline double cosine_factor(int64_t step, int64_t total) {
  if (total <= 0) return 1.0;
  const double progress = std::min(1.0, static_cast<double>(step) / static_cast<double>(total));
  return 0.5 * (1 + std::cos(M_PI * progress));
}

/// Sets every parameter group's learning rate.
inline void set_learning_rate(torch::optim::Adam& optimiser, double lr) {
  for (auto& group : optimiser.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

/// The step counter and the learning-rate scale (lowered by rollbacks), saved under the keys
/// "steps" and "lr_scale" so that schedules resume exactly.
/// Writes each optimiser's state into `archive` under its name (for Solver::save).
inline void save_optimisers(torch::serialize::OutputArchive& archive,
                            std::initializer_list<std::pair<const char*, const torch::optim::Optimizer*>> optimisers) {
  for (const auto& [name, optimiser] : optimisers) {
    torch::serialize::OutputArchive state;
    optimiser->save(state);
    archive.write(name, state);
  }
}

/// Reads what save_optimisers() wrote (for Solver::load).
inline void load_optimisers(torch::serialize::InputArchive& archive,
                            std::initializer_list<std::pair<const char*, torch::optim::Optimizer*>> optimisers) {
  for (const auto& [name, optimiser] : optimisers) {
    torch::serialize::InputArchive state;
    archive.read(name, state);
    optimiser->load(state);
  }
}

inline void save_progress(torch::serialize::OutputArchive& archive, int64_t steps, double lr_scale) {
  archive.write("steps", torch::tensor(steps, torch::kInt64));
  archive.write("lr_scale", torch::tensor(lr_scale, torch::kFloat64));
}
inline void load_progress(torch::serialize::InputArchive& archive, int64_t& steps, double& lr_scale) {
  at::Tensor s, scale;
  archive.read("steps", s);
  archive.read("lr_scale", scale);
  steps = s.item<int64_t>();
  lr_scale = scale.item<double>();
}

/// The machinery of a solver that trains a map T and a potential (or critic) v with one Adam
/// optimiser each, apart from its losses: the optimisers, their rates (as configured, times the
/// rollback scale, times an optional cosine schedule over the run), the map's moving average, the
/// step counter, saving and loading all of it, and the map to export. A solver holds one, reads
/// its parameters through it and calls begin_step() and end_step() around each step.
class MapPotentialTraining {
 public:
  /// The defaults of the parameters add_params() declares.
  struct Defaults {
    double lr_map = 1e-4, lr_potential = 1e-4, beta1 = 0.5, beta2 = 0.9, ema = 0;
  };

  /// Declares lr_map, lr_potential, lr_schedule, beta1, beta2, ema and ema_warmup.
  static Schema& add_params(Schema& schema, const Defaults& d) {
    return schema.real("lr_map", d.lr_map, 0, 1, "Adam learning rate of the map T")
        .real("lr_potential", d.lr_potential, 0, 1, "Adam learning rate of the potential (critic) v")
        .choice("lr_schedule", "constant", {"constant", "cosine"},
                "cosine: both rates follow 0.5 (1 + cos(pi t / T)) over the run's T iterations")
        .real("beta1", d.beta1, 0, 0.9999, "Adam beta1")
        .real("beta2", d.beta2, 0, 0.99999, "Adam beta2")
        .real("ema", d.ema, 0, 1, "decay of the map's exponential moving average (needs map_ema); 0 = off")
        .boolean("ema_warmup", true,
                 "use decay min(ema, (1 + t) / (10 + t)) at step t, so the average follows early progress");
  }

  /// Reads the parameters add_params() declared; `name` prefixes error messages.
  MapPotentialTraining(std::string name, const Params& p)
      : name_(std::move(name)),
        lr_map_(p.real("lr_map")),
        lr_potential_(p.real("lr_potential")),
        beta1_(p.real("beta1")),
        beta2_(p.real("beta2")),
        ema_(p.real("ema")),
        ema_warmup_(p.boolean("ema_warmup")),
        cosine_(p.string("lr_schedule") == "cosine") {}

  /// Checks what every such solver needs, makes the optimisers and starts the moving average.
  void setup(const SolverContext& context) {
    if (!context.map || !context.potential)
      throw Error(name_ + ": setup needs a map and a potential");
    ctx_ = context;
    map_opt_ = std::make_unique<torch::optim::Adam>(ctx_.map->parameters(),
                                                    torch::optim::AdamOptions(lr_map_).betas({beta1_, beta2_}));
    potential_opt_ = std::make_unique<torch::optim::Adam>(
        ctx_.potential->parameters(), torch::optim::AdamOptions(lr_potential_).betas({beta1_, beta2_}));
    if (ctx_.map_ema) {
      copy_parameters(*ctx_.map, *ctx_.map_ema);
      ctx_.map_ema->eval();
    }
  }

  const SolverContext& context() const { return ctx_; }
  torch::optim::Adam& map_optimiser() { return *map_opt_; }
  torch::optim::Adam& potential_optimiser() { return *potential_opt_; }
  /// Steps done so far (the step being run, between begin_step() and end_step()).
  int64_t steps() const { return steps_; }

  /// Call first in step(): sets this step's rates and records the map's in `stats` ("lr_map").
  void begin_step(std::map<std::string, double>& stats) {
    if (!map_opt_) throw Error(name_ + ": step() called before setup()");
    if (cosine_) apply_learning_rates();
    stats["lr_map"] = lr_map_ * lr_scale_ * schedule();
  }

  /// Call last in step(): updates the moving average and counts the step.
  void end_step(std::map<std::string, double>& stats) {
    if (ctx_.map_ema && ema_ > 0)
      stats["ema_decay"] = update_moving_average(*ctx_.map, *ctx_.map_ema, ema_, ema_warmup_, steps_);
    stats["lr_scale"] = lr_scale_;
    ++steps_;
  }

  /// The optimisers under "optimizer_map" and "optimizer_potential", then "steps" and "lr_scale".
  void save(torch::serialize::OutputArchive& archive) const {
    save_optimisers(archive, {{"optimizer_map", map_opt_.get()}, {"optimizer_potential", potential_opt_.get()}});
    save_progress(archive, steps_, lr_scale_);
  }
  void load(torch::serialize::InputArchive& archive) {
    load_optimisers(archive, {{"optimizer_map", map_opt_.get()}, {"optimizer_potential", potential_opt_.get()}});
    load_progress(archive, steps_, lr_scale_);
    apply_learning_rates();
  }

  /// Solver::scale_learning_rates: both rates times `factor`, kept across save()/load().
  bool scale_learning_rates(double factor) {
    if (!(factor > 0)) throw Error(name_ + ": learning rates can only be scaled by a positive factor");
    lr_scale_ *= factor;
    apply_learning_rates();
    return true;
  }

  /// Solver::export_map: the moving average when it is kept, the map otherwise.
  std::shared_ptr<Module> export_map() const { return ctx_.map_ema && ema_ > 0 ? ctx_.map_ema : ctx_.map; }

 private:
  double schedule() const { return cosine_ ? cosine_factor(steps_, ctx_.total_steps) : 1.0; }
  void apply_learning_rates() {
    set_learning_rate(*map_opt_, lr_map_ * lr_scale_ * schedule());
    set_learning_rate(*potential_opt_, lr_potential_ * lr_scale_ * schedule());
  }

  std::string name_;
  double lr_map_, lr_potential_, beta1_, beta2_, ema_;
  bool ema_warmup_, cosine_;
  double lr_scale_ = 1.0;  // lowered by scale_learning_rates() after a divergence
  SolverContext ctx_;
  std::unique_ptr<torch::optim::Adam> map_opt_, potential_opt_;
  int64_t steps_ = 0;
};

}  // namespace monge::solver_util
