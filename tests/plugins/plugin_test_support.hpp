#pragma once
// Shared helpers of the plugin tests: the build tree's registry, typed plugin construction,
// expected errors and finite-difference gradient checks.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "host/core/registry.hpp"
#include "monge/sdk.hpp"

namespace monge::test {

using Fn = std::function<torch::Tensor(const torch::Tensor&)>;

inline constexpr double kPi = 3.14159265358979323846;

/// The plugins of this build tree, found next to the test executable as the host finds its own.
inline host::Registry& registry() {
  static host::Registry* reg = [] {
    auto* r = new host::Registry(host::Registry::default_dirs(false));
    r->scan();
    return r;
  }();
  return *reg;
}

/// Plugin `name` of `kind` cast to its interface T.
template <class T>
std::shared_ptr<T> make(const std::string& name, const ParamMap& params, Kind kind) {
  auto p = std::dynamic_pointer_cast<T>(registry().create(name, params, kind));
  if (!p) throw std::runtime_error(name + " did not create the expected interface");
  return p;
}

inline std::shared_ptr<ForwardOperator> make_op(const std::string& name, const ParamMap& params = {}) {
  return make<ForwardOperator>(name, params, Kind::Operator);
}
inline std::shared_ptr<NoiseModel> make_noise(const std::string& name, const ParamMap& params = {}) {
  return make<NoiseModel>(name, params, Kind::Noise);
}
inline std::shared_ptr<Cost> make_cost(const std::string& name, const ParamMap& params) {
  return make<Cost>(name, params, Kind::Cost);
}

inline torch::Tensor randn(std::vector<int64_t> shape) { return torch::randn(shape, torch::kDouble); }

inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

/// Runs `f` and expects it to throw E with a message containing every one of `parts`.
template <class E>
void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& part : parts) EXPECT_NE(what.find(part), std::string::npos) << "'" << part << "' not in: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "exception of another type: " << e.what();
  }
}

/// The message of the monge::Error that `f` throws ("no error" when it returns).
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

/// <w, f(x)> differentiated along v by autograd, against the central difference
/// (<w, f(x + h v)> - <w, f(x - h v)>) / 2h. The outputs are subtracted before the product with
/// w, so values that do not move cancel exactly and rounding stays far below the tolerance.
inline void expect_directional_derivative(const Fn& f, const torch::Tensor& x0, const torch::Tensor& v,
                                          const std::string& what) {
  const torch::Tensor x = x0.detach().clone().requires_grad_(true);
  const torch::Tensor out = f(x);
  const torch::Tensor w = torch::randn_like(out);
  const torch::Tensor grad = torch::autograd::grad({(out * w).sum()}, {x})[0];
  const double analytic = (grad * v).sum().item<double>();
  torch::NoGradGuard no_grad;
  const double h = 1e-6;
  const double numeric = ((f(x0 + h * v) - f(x0 - h * v)) * w).sum().item<double>() / (2 * h);
  const double scale = std::max({std::abs(analytic), std::abs(numeric), 1e-12});
  EXPECT_LE(std::abs(analytic - numeric), 1e-6 * scale) << what << ": autograd " << analytic << ", finite difference " << numeric;
}

/// The directional check along a random direction and along a few coordinate axes (single
/// entries of the gradient, as gradcheck does).
inline void expect_gradients(const Fn& f, const torch::Tensor& x, const std::string& what) {
  expect_directional_derivative(f, x, torch::randn_like(x), what + " (random direction)");
  const int64_t n = x.numel();
  for (int64_t index : {int64_t{0}, n / 3, n - 1}) {
    torch::Tensor e = torch::zeros_like(x);
    e.view({-1})[index] = 1.0;
    expect_directional_derivative(f, x, e, what + " (entry " + std::to_string(index) + ")");
  }
}

/// Expects per_sample[n] (shape [N]) to equal the sum, over every value of sample n, of
/// f(y value, ax value), computed value by value with accessors: a reference for per-sample
/// negative log-likelihoods built without tensor operations. y and ax are N x C x H x W doubles.
inline void expect_sum_per_value(const torch::Tensor& per_sample, const torch::Tensor& y, const torch::Tensor& ax,
                                 const std::function<double(double, double)>& f, double rel_tol) {
  ASSERT_EQ(per_sample.sizes(), torch::IntArrayRef({y.size(0)}));
  auto ya = y.accessor<double, 4>();
  auto aa = ax.accessor<double, 4>();
  for (int64_t n = 0; n < y.size(0); ++n) {
    double expected = 0;
    for (int64_t c = 0; c < y.size(1); ++c)
      for (int64_t i = 0; i < y.size(2); ++i)
        for (int64_t j = 0; j < y.size(3); ++j) expected += f(ya[n][c][i][j], aa[n][c][i][j]);
    EXPECT_NEAR(per_sample[n].item<double>(), expected, rel_tol * std::abs(expected)) << "sample " << n;
  }
}

}  // namespace monge::test
