#pragma once
/// Solver: one training algorithm (UOTIP, OTIP, NOT, ...), stepping a map and a potential.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "monge/cost.hpp"
#include "monge/network.hpp"
#include "monge/operator.hpp"

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace monge {

/// What a solver trains and with what.
struct SolverContext {
  std::shared_ptr<Module> map;        ///< T: measurement (lifted) -> signal
  std::shared_ptr<Module> map_ema;    ///< optional: same architecture as `map`, holds its moving average
  std::shared_ptr<Module> potential;  ///< v: signal -> [N]
  std::shared_ptr<Cost> cost;
  std::shared_ptr<ForwardOperator> op;
  c10::Device device = c10::Device(c10::kCPU);
  int64_t total_steps = 0;            ///< steps the run plans (for learning-rate schedules); 0: unknown

  /// Data-parallel training: averages the gradients of a module's parameters over every process
  /// of the job. Set by the trainer when more than one process trains; empty otherwise.
  std::function<void(Module&)> gradient_sync;

  /// Call after each backward() whose gradients an optimiser step will use, before that step, for
  /// the module that step updates. A no-op in a single process. A solver that never calls it
  /// cannot train data-parallel: the trainer stops with an error rather than let replicas drift.
  void sync_gradients(Module& module) const {
    if (gradient_sync) gradient_sync(module);
  }

  /// (SDK 6.0) Builds one more module of the map's architecture (the same network plugin and
  /// shape, latent channels included) on `device`, freshly initialised: a solver that needs a third
  /// copy of the map (e.g. gan_reg's frozen reference map) copies the map's state into it and saves
  /// it with its own state. Building draws from LibTorch's default generator. Set by the trainer;
  /// may be empty (a context built by hand), in which case a solver that needs it must say so.
  std::function<std::shared_ptr<Module>()> build_map;
};

/// A training algorithm. The trainer owns data, logging, checkpoints; the solver owns optimisers.
class MONGE_SDK_API Solver : public Plugin {
 public:
  Kind kind() const override { return Kind::Solver; }

  /// Called once before the first step.
  virtual void setup(const SolverContext& context) = 0;
  /// One iteration on fresh, independent batches of measurements `y` and clean signals `x`.
  /// Returns named statistics (losses, norms) for the log.
  virtual std::map<std::string, double> step(const at::Tensor& y, const at::Tensor& x) = 0;
  /// Optimiser and schedule state, for exact resume.
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
  /// The map to export (e.g. its EMA copy).
  virtual std::shared_ptr<Module> export_map() const = 0;

  /// True for supervised training: step(y, x) then receives measurements `y` degraded from the
  /// very signals `x` (pairs), drawn from the clean set. False (unpaired): independent batches.
  virtual bool wants_pairs() const { return false; }

  /// Stochastic maps T(y, z) (NOT, KNOT, OTP): the number of channels of latent noise z the map
  /// network takes after the lifted measurement's channels. The trainer then builds the map with
  /// that many extra input channels; the solver draws z itself in step(), and whoever applies the
  /// exported map feeds it standard normal z (see docs/training.md). 0 (the default): T(y).
  virtual int64_t latent_channels() const { return 0; }

  /// Smoothed maps (OTP): the standard deviation s of the Gaussian noise the exported map expects
  /// on its measurements, T(Q(y + s n)), n ~ N(0, 1). The solver smooths its own training batches
  /// in step(); this is the level it ends at, which map files record and apply adds. 0 (the
  /// default): the map takes the measurement as it is.
  virtual double input_noise() const { return 0; }

  /// Multiplies every learning rate by `factor` (the trainer lowers them after rolling back from
  /// a divergence). The change must survive save()/load(). Returns false when the solver cannot
  /// do it, in which case the trainer stops instead of retrying.
  virtual bool scale_learning_rates(double factor) {
    (void)factor;
    return false;
  }
};

}  // namespace monge
