#pragma once
// The trainer: drives a solver over an unpaired task (clean signals X; measurements Y degraded on
// the fly from a disjoint set of signals), with evaluation, logs, progress, checkpoints and resume.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "host/map/map_file.hpp"
#include "monge/cost.hpp"
#include "monge/network.hpp"
#include "monge/noise.hpp"
#include "monge/operator.hpp"
#include "monge/solver.hpp"

namespace monge::host {

struct TrainConfig {
  std::shared_ptr<ForwardOperator> op;
  std::optional<PluginSpec> op_spec;  ///< recorded in the map file so the map knows its lift
  std::shared_ptr<NoiseModel> noise;
  std::optional<PluginSpec> noise_spec;  ///< recorded in the map file (for `monge eval`); unset: unknown
  at::Tensor clean;       ///< X: N x C x H x W in [-1, 1]
  at::Tensor measured;    ///< signals whose degraded versions are Y (disjoint from X: unpaired)
  at::Tensor eval_clean;  ///< held-out signals; degraded once with seed 0 and frozen (optional)
  std::shared_ptr<Network> map_net, potential_net;
  PluginSpec map_spec;
  std::shared_ptr<Solver> solver;
  std::string solver_name;
  std::shared_ptr<Cost> cost;
  int64_t iters = 1000;
  int64_t batch = 64;            ///< per process: a data-parallel job's global batch is processes x batch
  uint64_t seed = 0;
  int64_t eval_every = 0;        ///< 0: evaluate at the end only
  int64_t checkpoint_every = 0;  ///< 0: checkpoint at the end only
  int64_t log_every = 10;
  std::filesystem::path out;     ///< run directory: log.jsonl, checkpoint.pt, map.pt
  std::string device = "auto";
  bool resume = false;
  bool progress = true;
  std::string precision = "fp32";  ///< "fp32" or "bf16" (autocast on the training device)
  int64_t max_rollbacks = 3;       ///< NaN/Inf: roll back to the last checkpoint at most this often
  double rollback_lr_factor = 0.5; ///< each rollback multiplies the learning rates by this
  /// > 0: a loss statistic (a name starting with "loss") larger than this in magnitude is a
  /// divergence too, rolled back like NaN/Inf: adversarial solvers explode without ever overflowing.
  double max_loss = 0;
  /// Data-parallel training (more than one process; see distributed.hpp): seconds a rendezvous
  /// or a collective may wait for the other processes before the run fails.
  double dist_timeout = 300;
  /// When set (and not resuming): the directory receives the first step's inputs and results
  /// (write_step_dump), for checking another implementation of the step against this one.
  std::filesystem::path dump_first_step;
};

struct EvalPoint {
  int64_t iteration = 0;
  double psnr_degraded = 0;  ///< of Q(y) against the clean signals, on [0, 1]
  double psnr_restored = 0;  ///< of T(Q(y))
  double ssim_degraded = 0;  ///< SSIM (skimage convention, see monge/image_metrics.hpp); 0 when images are < 11x11
  double ssim_restored = 0;
};

struct TrainResult {
  std::shared_ptr<Module> map;  ///< the exported map (EMA), in eval mode
  NetworkShape shape;           ///< what the map takes and gives (see MapInfo::shape)
  int64_t latent_channels = 0;  ///< a stochastic map's latent channels (map is then a StochasticMap)
  double input_noise = 0;       ///< a smoothed map's input noise level (map is then a StochasticMap)
  std::filesystem::path map_path;
  std::vector<EvalPoint> evals;
  int64_t iterations = 0;      ///< iterations run by this call
  double seconds = 0;
  std::map<std::string, double> last_stats;
  std::vector<std::string> warnings;  ///< configuration warnings (also printed), e.g. the twist check
  int64_t rollbacks = 0;              ///< divergences recovered from by rolling back
};

/// Trains; throws monge::Error for bad configuration, divergence (the last checkpoint stays
/// intact) or an interrupt (after saving a checkpoint).
TrainResult train(const TrainConfig& config);

/// The twist-condition check of the paper's Remark 1 for a cost sum_i w_i c_i: with W_l the
/// total weight of likelihood terms and W_q that of quadratic terms, lambda = W_q / W_l must exceed
/// the operator's Lipschitz bound L (any lambda > 0 will do for a monotone operator). Returns a
/// warning when a likelihood term has no quadratic term beside it, or when lambda < L for a
/// non-monotone operator with a known L; nothing otherwise. lambda = L is accepted: it is the
/// paper's own setting for deblurring, where the blur's spectrum is nonnegative.
std::optional<std::string> twist_warning(const Cost& cost, const ForwardOperator& op);

}  // namespace monge::host
