#pragma once
/// Pieces most solvers share: the map's exponential moving average, a cosine learning-rate
/// schedule, and setting an Adam optimiser's rate. Header-only; include it from solver plugins.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include "monge/network.hpp"
#include "monge/plugin.hpp"

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

}  // namespace monge::solver_util
