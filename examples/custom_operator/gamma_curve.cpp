// gamma_curve: a tone-curve forward operator, A(x) = 2 * ((x + 1) / 2)^gamma - 1.
// It models a display or sensor response; values stay in [-1, 1].
#include <ATen/ATen.h>

#include "monge/sdk.hpp"

namespace {

class GammaCurve final : public monge::ForwardOperator {
 public:
  explicit GammaCurve(const monge::Params& p) : gamma_(p.real("gamma")) {}

  at::Tensor forward(const at::Tensor& x) const override {
    if (x.dim() != 4) throw monge::Error("gamma_curve: expected N x C x H x W input, got " + std::to_string(x.dim()) + " dimensions");
    return x.add(1).div(2).clamp(0, 1).pow(gamma_).mul(2).sub(1);
  }

  // The slope of t -> t^gamma on [0, 1] is largest at t = 1 (gamma >= 1); unbounded for gamma < 1.
  std::optional<double> lipschitz() const override {
    return gamma_ >= 1 ? std::optional<double>(gamma_) : std::nullopt;
  }

  static monge::Schema schema() {
    return monge::Schema{}.real("gamma", 2.2, 0.1, 10, "exponent of the tone curve on [0, 1]");
  }

 private:
  double gamma_;
};

}  // namespace

MONGE_PLUGIN(GammaCurve, operator, "gamma_curve", "1.0.0", "tone curve A(x) = 2((x+1)/2)^gamma - 1",
             GammaCurve::schema())
