// laplace: additive white Laplace noise, y = A(x) + n with n ~ Laplace(0, b) per value.
#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

class LaplaceNoise final : public monge::NoiseModel {
 public:
  explicit LaplaceNoise(const monge::Params& p) : b_(p.real("b")) {}

  // A Laplace(0, b) variable is b times the difference of two independent Exp(1) variables.
  at::Tensor sample(const at::Tensor& ax, c10::optional<at::Generator> generator) const override {
    if (!c10::isFloatingType(ax.scalar_type()))
      throw monge::Error(std::string("laplace: expected a floating-point tensor, got ") +
                         c10::toString(ax.scalar_type()));
    // Draw on the generator's own device, so that a seed gives the same noise wherever ax lives.
    const auto options = generator ? ax.options().device(generator->device()) : ax.options();
    at::Tensor e1 = at::empty(ax.sizes(), options);
    at::Tensor e2 = at::empty(ax.sizes(), options);
    e1.exponential_(1.0, generator);
    e2.exponential_(1.0, generator);
    return ax + b_ * (e1 - e2).to(ax.device());
  }

  // -log Laplace(y; ax, b) summed over each sample's values: sum |y - ax| / b + log(2 b).
  at::Tensor nll(const at::Tensor& y, const at::Tensor& ax) const override {
    if (!y.sizes().equals(ax.sizes()))
      throw monge::Error("laplace: nll needs y and A(x) of the same shape, got " + shape_text(y.sizes()) + " and " +
                         shape_text(ax.sizes()));
    if (ax.dim() < 1) throw monge::Error("laplace: nll needs a batch dimension, got a scalar");
    int64_t per_sample = 1;
    for (int64_t d = 1; d < ax.dim(); ++d) per_sample *= ax.size(d);
    const double log_norm = std::log(2 * b_) * double(per_sample);
    const at::Tensor absolute = (y - ax).abs().reshape({ax.size(0), per_sample}).sum(1);
    return absolute / b_ + log_norm;
  }

  // Var Laplace(0, b) = 2 b^2.
  double variance() const override { return 2 * b_ * b_; }

  static monge::Schema schema() {
    return monge::Schema{}.real("b", 0.05 / std::sqrt(2.0), 1e-6, 10,
                                "scale of the noise (variance 2 b^2; the default matches Gaussian sigma = 0.05)");
  }

 private:
  double b_;
};

}  // namespace

MONGE_PLUGIN(LaplaceNoise, noise, "laplace", "1.0.0", "additive white Laplace noise y = A(x) + Laplace(0, b)",
             LaplaceNoise::schema())
