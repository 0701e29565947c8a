// mixture: Gaussian scale mixture. Each sample (not each value) draws its noise level sigma_k
// with probability w_k, then y = A(x) + sigma_k e with e ~ N(0, I).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

constexpr double kPi = 3.14159265358979323846;

class MixtureNoise final : public monge::NoiseModel {
 public:
  explicit MixtureNoise(const monge::Params& p) : levels_(p.reals("levels")), weights_(p.reals("weights")) {
    if (levels_.empty()) throw monge::ParamError("mixture: parameter 'levels' needs at least one noise level");
    if (weights_.size() != levels_.size())
      throw monge::ParamError("mixture: parameter 'weights' needs one weight per level, got " +
                              std::to_string(weights_.size()) + " weights for " + std::to_string(levels_.size()) +
                              " levels");
    double total = 0;
    for (double w : weights_) {
      if (!(w > 0) || !std::isfinite(w))
        throw monge::ParamError("mixture: parameter 'weights' expects positive numbers, got " +
                                monge::detail::format_number(w));
      total += w;
    }
    for (double& w : weights_) w /= total;
  }

  at::Tensor sample(const at::Tensor& ax, c10::optional<at::Generator> generator) const override {
    if (!c10::isFloatingType(ax.scalar_type()))
      throw monge::Error(std::string("mixture: expected a floating-point tensor, got ") +
                         c10::toString(ax.scalar_type()));
    if (ax.dim() < 1) throw monge::Error("mixture: sample needs a batch dimension, got a scalar");
    const int64_t n = ax.size(0);
    // Draw on the generator's own device, so that a seed gives the same noise wherever ax lives.
    const auto device = generator ? generator->device() : ax.device();
    const auto options = ax.options().device(device);
    const at::Tensor sigma = sigmas_for(n, generator, options);
    std::vector<int64_t> view(size_t(ax.dim()), 1);
    view[0] = n;
    const at::Tensor e = at::randn(ax.sizes(), generator, options);
    return ax + (sigma.view(view) * e).to(ax.device());
  }

  // -log sum_k w_k N(y; ax, sigma_k^2 I) per sample, with the sum over k done by logsumexp.
  at::Tensor nll(const at::Tensor& y, const at::Tensor& ax) const override {
    if (!y.sizes().equals(ax.sizes()))
      throw monge::Error("mixture: nll needs y and A(x) of the same shape, got " + shape_text(y.sizes()) + " and " +
                         shape_text(ax.sizes()));
    if (ax.dim() < 1) throw monge::Error("mixture: nll needs a batch dimension, got a scalar");
    int64_t per_sample = 1;
    for (int64_t d = 1; d < ax.dim(); ++d) per_sample *= ax.size(d);
    const at::Tensor squared = (y - ax).square().reshape({ax.size(0), per_sample}).sum(1, /*keepdim=*/true);
    const int64_t k = int64_t(levels_.size());
    std::vector<double> inv_two_var(levels_.size()), log_const(levels_.size());
    for (size_t i = 0; i < levels_.size(); ++i) {
      const double var = levels_[i] * levels_[i];
      inv_two_var[i] = 1.0 / (2 * var);
      log_const[i] = std::log(weights_[i]) - 0.5 * double(per_sample) * std::log(2 * kPi * var);
    }
    const auto opts = ax.options().requires_grad(false);
    const at::Tensor a = at::tensor(inv_two_var, opts.dtype(at::kDouble)).to(ax.scalar_type()).view({1, k});
    const at::Tensor c = at::tensor(log_const, opts.dtype(at::kDouble)).to(ax.scalar_type()).view({1, k});
    return -at::logsumexp(c - squared * a, 1);
  }

  // E[sigma^2] = sum_k w_k sigma_k^2.
  double variance() const override {
    double v = 0;
    for (size_t i = 0; i < levels_.size(); ++i) v += weights_[i] * levels_[i] * levels_[i];
    return v;
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .reals("levels", {0.025, 0.05, 0.1, 0.2}, 1e-6, 10, "noise standard deviations sigma_k (images span [-1, 1])")
        .reals("weights", {4, 3, 2, 1}, 0, std::numeric_limits<double>::infinity(),
               "relative frequency of each level (positive, one per level; normalised to sum 1)");
  }

 private:
  // One sigma per sample, drawn from the levels with the weights.
  at::Tensor sigmas_for(int64_t n, c10::optional<at::Generator> generator, const at::TensorOptions& options) const {
    const at::Tensor w = at::tensor(weights_, at::TensorOptions().dtype(at::kDouble)).to(options.device());
    const at::Tensor levels = at::tensor(levels_, at::TensorOptions().dtype(at::kDouble)).to(options.device());
    if (n == 0) return at::empty({0}, options);
    const at::Tensor index = at::multinomial(w, n, /*replacement=*/true, generator);
    return levels.index_select(0, index).to(options.dtype());
  }

  std::vector<double> levels_;
  std::vector<double> weights_;
};

}  // namespace

MONGE_PLUGIN(MixtureNoise, noise, "mixture", "1.0.0", "Gaussian scale mixture: one noise level per sample",
             MixtureNoise::schema())
