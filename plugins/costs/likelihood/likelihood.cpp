// likelihood: c(y, x) = 2 var (nll(y | A(x)) - nll(y | y)), the noise model's negative
// log-likelihood in squared-error units, zero at a perfect fit.
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

class LikelihoodCost final : public monge::Cost {
 public:
  explicit LikelihoodCost(const monge::Params& p)
      : op_(p.object<monge::ForwardOperator>("operator")), noise_(p.object<monge::NoiseModel>("noise")) {}

  Role role() const override { return Role::Likelihood; }

  at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const override {
    const at::Tensor ax = op_->forward(x);
    if (!ax.sizes().equals(y.sizes()))
      throw monge::Error("likelihood: the measurement y has shape " + shape_text(y.sizes()) + " but A(x) has shape " +
                         shape_text(ax.sizes()) + "; they must match (is the operator the one that made y?)");
    at::Tensor baseline;
    {
      at::NoGradGuard no_grad;
      baseline = noise_->nll(y, y);
    }
    return (2 * noise_->variance()) * (noise_->nll(y, ax) - baseline);
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .object("operator", monge::Kind::Operator, "forward operator A applied to the signal")
        .object("noise", monge::Kind::Noise, "noise model whose negative log-likelihood is used");
  }

 private:
  std::shared_ptr<monge::ForwardOperator> op_;
  std::shared_ptr<monge::NoiseModel> noise_;
};

}  // namespace

MONGE_PLUGIN(LikelihoodCost, cost, "likelihood", "1.0.0",
             "negative log-likelihood cost 2 var (nll(y|A(x)) - nll(y|y)) of a noise model",
             LikelihoodCost::schema())
