// quadratic: c(y, x) = ||Q(y) - x||^2 per sample, with Q the operator's lift.
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

class QuadraticCost final : public monge::Cost {
 public:
  explicit QuadraticCost(const monge::Params& p) : op_(p.object<monge::ForwardOperator>("operator")) {}

  Role role() const override { return Role::Quadratic; }

  at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const override {
    const at::Tensor q = op_->lift(y);
    if (!q.sizes().equals(x.sizes()))
      throw monge::Error("quadratic: the lifted measurement Q(y) has shape " + shape_text(q.sizes()) +
                         " but the signal x has shape " + shape_text(x.sizes()) +
                         "; they must match (is the operator the one that made y?)");
    if (x.dim() < 1) throw monge::Error("quadratic: needs a batch dimension, got a scalar");
    return (q - x).square().reshape({x.size(0), -1}).sum(1);
  }

  static monge::Schema schema() {
    return monge::Schema{}.object("operator", monge::Kind::Operator,
                                  "forward operator whose lift Q maps measurements to signal space");
  }

 private:
  std::shared_ptr<monge::ForwardOperator> op_;
};

}  // namespace

MONGE_PLUGIN(QuadraticCost, cost, "quadratic", "1.0.0", "quadratic cost ||Q(y) - x||^2 with the operator's lift Q",
             QuadraticCost::schema())
