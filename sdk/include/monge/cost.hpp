#pragma once
/// Cost: the transport cost c(y, x) between a measurement and a candidate signal.

#include <ATen/core/Tensor.h>

#include "monge/plugin.hpp"

namespace monge {

/// A per-sample transport cost. Weighted sums of costs are built by the host (Lua `+` and `*`).
class MONGE_SDK_API Cost : public Plugin {
 public:
  Kind kind() const override { return Kind::Cost; }

  /// c(y, x) for a batch: y is the measurement batch, x the signal batch (NCHW, same N).
  /// Returns shape [N]; differentiable in x.
  virtual at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const = 0;
};

}  // namespace monge
