// gaussian: additive white Gaussian noise, y = A(x) + sigma * e with e ~ N(0, I).
#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

constexpr double kPi = 3.14159265358979323846;

class GaussianNoise final : public monge::NoiseModel {
 public:
  explicit GaussianNoise(const monge::Params& p) : sigma_(p.real("sigma")) {}

  at::Tensor sample(const at::Tensor& ax, c10::optional<at::Generator> generator) const override {
    if (!c10::isFloatingType(ax.scalar_type()))
      throw monge::Error(std::string("gaussian: expected a floating-point tensor, got ") +
                         c10::toString(ax.scalar_type()));
    if (!generator) return ax + sigma_ * at::randn(ax.sizes(), ax.options());
    // Draw on the generator's own device, so that a seed gives the same noise wherever ax lives.
    const at::Tensor e = at::randn(ax.sizes(), generator, ax.options().device(generator->device()));
    return ax + sigma_ * e.to(ax.device());
  }

  // -log N(y; ax, sigma^2 I) summed over each sample's values.
  at::Tensor nll(const at::Tensor& y, const at::Tensor& ax) const override {
    if (!y.sizes().equals(ax.sizes()))
      throw monge::Error("gaussian: nll needs y and A(x) of the same shape, got " + shape_text(y.sizes()) + " and " +
                         shape_text(ax.sizes()));
    if (ax.dim() < 1) throw monge::Error("gaussian: nll needs a batch dimension, got a scalar");
    int64_t per_sample = 1;
    for (int64_t d = 1; d < ax.dim(); ++d) per_sample *= ax.size(d);
    const double log_norm = 0.5 * std::log(2 * kPi * sigma_ * sigma_) * double(per_sample);
    const at::Tensor squared = (y - ax).square().reshape({ax.size(0), per_sample}).sum(1);
    return squared / (2 * sigma_ * sigma_) + log_norm;
  }

  double variance() const override { return sigma_ * sigma_; }

  static monge::Schema schema() {
    return monge::Schema{}.real("sigma", 0.05, 1e-6, 10, "standard deviation of the noise (images span [-1, 1])");
  }

 private:
  double sigma_;
};

}  // namespace

MONGE_PLUGIN(GaussianNoise, noise, "gaussian", "1.0.0", "additive white Gaussian noise y = A(x) + sigma e",
             GaussianNoise::schema())
