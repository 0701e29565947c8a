#pragma once
/// NoiseModel: how measurements are corrupted, and the negative log-likelihood used by the
/// likelihood cost.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "monge/plugin.hpp"

namespace monge {

/// A noise model y ~ p(y | A(x)).
class MONGE_SDK_API NoiseModel : public Plugin {
 public:
  Kind kind() const override { return Kind::Noise; }

  /// Draws y given the clean measurement `ax` (NCHW). Uses `generator` when given, so that a
  /// degraded view can be reproduced from a seed.
  virtual at::Tensor sample(const at::Tensor& ax, c10::optional<at::Generator> generator) const = 0;

  /// Per-sample negative log-likelihood -log p(y | ax), summed over all values of a sample:
  /// shape [N]. Differentiable in `ax`.
  virtual at::Tensor nll(const at::Tensor& y, const at::Tensor& ax) const = 0;

  /// Variance of one noisy value around its clean measurement (at mid-grey, 0, where it depends
  /// on the signal). The likelihood cost multiplies NLL differences by 2 * variance() so that it
  /// reads in squared-error units: exactly ||A(x) - y||^2 for Gaussian noise.
  virtual double variance() const = 0;
};

}  // namespace monge
