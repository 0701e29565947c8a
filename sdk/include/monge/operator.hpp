#pragma once
/// ForwardOperator: the degradation A (signal x -> measurement A(x)) and its lift Q (measurement ->
/// signal space).

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "monge/plugin.hpp"

namespace monge {

/// A differentiable forward operator. Tensors are NCHW, values nominally in [-1, 1].
class MONGE_SDK_API ForwardOperator : public Plugin {
 public:
  Kind kind() const override { return Kind::Operator; }

  /// A(x): measurement of a batch of signals. Must be differentiable through autograd.
  virtual at::Tensor forward(const at::Tensor& x) const = 0;

  /// Q(y): lifts a batch of measurements back to signal space (identity unless the measurement
  /// has another shape, e.g. bicubic upsampling for super-resolution).
  virtual at::Tensor lift(const at::Tensor& y) const { return y; }

  /// Shape of A(x) for a signal of shape `signal` (NCHW). Throws monge::Error when the operator
  /// cannot take that shape.
  virtual std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const { return signal; }

  /// A bound L on the Lipschitz constant of A in the Euclidean norm, when one is known. Used to
  /// check the twist condition of the UOTIP cost (paper, Remark 1).
  virtual std::optional<double> lipschitz() const { return std::nullopt; }

  /// True when A is a monotone operator: <A(x1) - A(x2), x1 - x2> >= 0 for all x1, x2 of the same
  /// shape (e.g. a pointwise nondecreasing function, a mask). Then lambda x + A(x) is injective for
  /// every lambda > 0, so any positive quadratic weight satisfies the twist condition.
  virtual bool monotone() const { return false; }

  /// How many times larger (per side) a signal is than its measurement (2 for 2x downsampling).
  virtual int64_t scale_factor() const { return 1; }

  /// How far the lift reaches, in measurement pixels: Q(y) at signal pixel i depends only on
  /// measurements within this distance of i / scale_factor() (per axis), and is unchanged by
  /// shifting y by whole pixels away from the border. The tiled apply of large images cuts the
  /// measurement with this margin. 0 fits the default identity lift; an operator that overrides
  /// lift() must override this too (2 for bicubic upsampling), or return -1 when it cannot say,
  /// in which case images are restored in blended, overlapping tiles that are not exact.
  virtual int64_t lift_radius() const { return 0; }
};

}  // namespace monge
