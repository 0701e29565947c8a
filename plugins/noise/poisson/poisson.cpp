// poisson: Poisson noise on 8-bit values, as in DPS (Chung et al., 2022) and the UOTIP paper: the
// clean measurement in [-1, 1] is mapped to [0, 255], scaled by lambda, used as a Poisson rate, and
// the counts are rescaled back to [-1, 1].
#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

constexpr double kLevels = 255.0;  // 8-bit white
constexpr double kMinRate = 1e-6;  // rate floor (counts), keeps the log-likelihood finite at ax = -1

class PoissonNoise final : public monge::NoiseModel {
 public:
  explicit PoissonNoise(const monge::Params& p) : lambda_(p.real("lambda")) {}

  // rate = lambda * 255 * (clamp(ax, -1, 1) + 1) / 2;  k ~ Poisson(rate);
  // y = clamp(2 k / (255 lambda) - 1, -1, 1).
  at::Tensor sample(const at::Tensor& ax, c10::optional<at::Generator> generator) const override {
    if (!c10::isFloatingType(ax.scalar_type()))
      throw monge::Error(std::string("poisson: expected a floating-point tensor, got ") +
                         c10::toString(ax.scalar_type()));
    const double scale = kLevels * lambda_;
    at::Tensor rate = ((ax.detach().clamp(-1, 1) + 1) * (0.5 * scale));
    // Draw on the generator's own device, so that a seed gives the same noise wherever ax lives.
    if (generator) rate = rate.to(generator->device());
    const at::Tensor counts = at::poisson(rate, generator).to(ax.device());
    return (counts * (2.0 / scale) - 1).clamp(-1, 1);
  }

  // -log Poisson(k; r) summed over each sample's values, with k = 255 lambda (y + 1) / 2 (negative
  // counts read as 0) and r = max(255 lambda (ax + 1) / 2, 1e-6):  r - k log r + lgamma(k + 1).
  at::Tensor nll(const at::Tensor& y, const at::Tensor& ax) const override {
    if (!y.sizes().equals(ax.sizes()))
      throw monge::Error("poisson: nll needs y and A(x) of the same shape, got " + shape_text(y.sizes()) + " and " +
                         shape_text(ax.sizes()));
    if (ax.dim() < 1) throw monge::Error("poisson: nll needs a batch dimension, got a scalar");
    const double half_scale = 0.5 * kLevels * lambda_;
    const at::Tensor k = ((y + 1) * half_scale).clamp_min(0);
    const at::Tensor r = ((ax + 1) * half_scale).clamp_min(kMinRate);
    const at::Tensor terms = r - k * r.log() + at::lgamma(k + 1);
    return terms.reshape({ax.size(0), -1}).sum(1);
  }

  // At mid-grey the rate is 255 lambda / 2 counts, which is also the variance of the count; one
  // count is 2 / (255 lambda) in [-1, 1] units, so Var y = (2 / (255 lambda))^2 * 255 lambda / 2
  // = 2 / (255 lambda)  (0.00784, std 0.0886, for lambda = 1).
  double variance() const override { return 2.0 / (kLevels * lambda_); }

  static monge::Schema schema() {
    return monge::Schema{}.real("lambda", 1.0, 1e-3, 1e3,
                                "Poisson noise level: counts ~ Poisson(lambda * 8-bit value), rescaled by 1 / lambda "
                                "(larger is less noisy)");
  }

 private:
  double lambda_;
};

}  // namespace

MONGE_PLUGIN(PoissonNoise, noise, "poisson", "1.0.0", "Poisson noise on 8-bit values (DPS / UOTIP setup)",
             PoissonNoise::schema())
