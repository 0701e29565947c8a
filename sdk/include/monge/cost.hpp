#pragma once
/// Cost: the transport cost c(y, x) between a measurement and a candidate signal.

#include <ATen/core/Tensor.h>

#include "monge/plugin.hpp"

namespace monge {

/// A per-sample transport cost. Weighted sums of costs are built by the host (Lua `+` and `*`).
class MONGE_SDK_API Cost : public Plugin {
 public:
  /// What a cost term measures, for the twist-condition check of the paper's Remark 1: a
  /// data-fidelity term through the operator (||A(x) - y||^2 or a noise model's likelihood), a
  /// quadratic proximity ||Q(y) - x||^2, or anything else.
  enum class Role { Other, Likelihood, Quadratic };

  Kind kind() const override { return Kind::Cost; }

  /// c(y, x) for a batch: y is the measurement batch, x the signal batch (NCHW, same N).
  /// Returns shape [N]; differentiable in x.
  virtual at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const = 0;

  /// The role of this term (see Role); Other unless a plugin says otherwise.
  virtual Role role() const { return Role::Other; }
};

}  // namespace monge
