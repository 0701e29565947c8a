// The laplace, poisson and mixture noise plugins and the quadratic and likelihood costs, loaded
// through the registry like the host loads them: seeded sampling, sample statistics against
// variance(), negative log-likelihoods against formulas written out here, gradients against finite
// differences, and the errors a user sees.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "host/core/registry.hpp"
#include "monge/sdk.hpp"
#include "plugin_test_support.hpp"

namespace {

using namespace monge::test;
using monge::host::Registry;

monge::Value object(const std::shared_ptr<monge::Plugin>& p) { return p; }

std::shared_ptr<monge::ForwardOperator> blur() {
  return make_op("gaussian_blur", {{"size", int64_t{5}}, {"sigma", 1.2}, {"padding", std::string("reflect")}});
}
std::shared_ptr<monge::ForwardOperator> down2() { return make_op("downsample", {{"factor", int64_t{2}}}); }

// Values well inside (-1, 1), where the Poisson rate is positive.
torch::Tensor signal(std::vector<int64_t> shape) { return 0.7 * torch::tanh(randn(shape)); }


void expect_seeded_reproducible(const monge::NoiseModel& noise, const torch::Tensor& ax) {
  const torch::Tensor a = noise.sample(ax, seeded(42));
  const torch::Tensor b = noise.sample(ax, seeded(42));
  const torch::Tensor c = noise.sample(ax, seeded(43));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_EQ(a.sizes(), ax.sizes());
  EXPECT_EQ(a.scalar_type(), torch::kDouble);
  const torch::Tensor f = ax.to(torch::kFloat);
  EXPECT_EQ(noise.sample(f, seeded(42)).scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(noise.sample(f, seeded(5)), noise.sample(f, seeded(5))));
  EXPECT_EQ(noise.sample(ax, c10::nullopt).sizes(), ax.sizes());
}

// ---- laplace ----

TEST(LaplaceNoise, DefaultMatchesTheBenchmark) {
  const auto noise = make_noise("laplace");
  EXPECT_NEAR(noise->variance(), 0.05 * 0.05, 1e-15);  // b = 0.05 / sqrt 2: variance of sigma = 0.05
}

TEST(LaplaceNoise, SeededSamplesAreReproducible) {
  expect_seeded_reproducible(*make_noise("laplace", {{"b", 0.1}}), signal({2, 3, 8, 8}));
}

TEST(LaplaceNoise, SampleHasTheDocumentedVariance) {
  const double b = 0.07;
  const auto noise = make_noise("laplace", {{"b", b}});
  const torch::Tensor ax = torch::linspace(-1, 1, 1000000, torch::kDouble).view({4, 1, 500, 500});
  const torch::Tensor e = noise->sample(ax, seeded(7)) - ax;
  EXPECT_NEAR(e.var().item<double>(), noise->variance(), 0.02 * noise->variance());
  EXPECT_NEAR(noise->variance(), 2 * b * b, 1e-15);
  EXPECT_LT(std::abs(e.mean().item<double>()), 5 * b * std::sqrt(2.0) / 1000);
  // Laplace, not Gaussian: E|e| = b (for a Gaussian of the same variance it would be 0.80 sqrt(2) b).
  EXPECT_NEAR(e.abs().mean().item<double>(), b, 0.01 * b);
}

TEST(LaplaceNoise, NllIsTheLaplaceFormula) {
  torch::manual_seed(9);
  const double b = 0.2;
  const auto noise = make_noise("laplace", {{"b", b}});
  const torch::Tensor ax = randn({3, 2, 4, 5});
  const torch::Tensor y = ax + b * randn({3, 2, 4, 5});
  const torch::Tensor nll = noise->nll(y, ax);
  expect_sum_per_value(nll, y, ax, [&](double yv, double av) { return std::abs(yv - av) / b + std::log(2 * b); }, 1e-10);
}

TEST(LaplaceNoise, NllGradient) {
  torch::manual_seed(11);
  const auto noise = make_noise("laplace", {{"b", 0.3}});
  const torch::Tensor ax = randn({2, 2, 4, 4});
  const torch::Tensor y = noise->sample(ax, seeded(3));
  expect_gradients([&](const torch::Tensor& a) { return noise->nll(y, a); }, ax, "laplace nll");
}

TEST(LaplaceNoise, Errors) {
  const auto noise = make_noise("laplace");
  expect_error<monge::Error>([&] { noise->nll(randn({2, 1, 4, 4}), randn({2, 1, 4, 5})); },
                             {"laplace:", "same shape", "[2, 1, 4, 4]", "[2, 1, 4, 5]"});
  expect_error<monge::ParamError>([] { make_noise("laplace", {{"b", 0.0}}); }, {"laplace", "'b'"});
}

// ---- poisson ----

TEST(PoissonNoise, SeededSamplesAreReproducible) {
  expect_seeded_reproducible(*make_noise("poisson"), signal({2, 3, 8, 8}));
}

TEST(PoissonNoise, SamplesLieOnTheRescaled8BitGrid) {
  const auto noise = make_noise("poisson");
  const torch::Tensor ax = torch::linspace(-1, 1, 40000, torch::kDouble).view({4, 1, 100, 100});
  const torch::Tensor y = noise->sample(ax, seeded(1));
  EXPECT_GE(y.min().item<double>(), -1.0);
  EXPECT_LE(y.max().item<double>(), 1.0);
  const torch::Tensor counts = (y + 1) * 127.5;
  EXPECT_LT((counts - counts.round()).abs().max().item<double>(), 1e-9);
  // Black stays black: a zero rate gives zero counts.
  EXPECT_TRUE(torch::equal(noise->sample(-torch::ones({1, 1, 4, 4}, torch::kDouble), seeded(2)),
                           -torch::ones({1, 1, 4, 4}, torch::kDouble)));
  // lambda = 2: counts on a grid twice as fine.
  const torch::Tensor y2 = make_noise("poisson", {{"lambda", 2.0}})->sample(ax, seeded(1));
  const torch::Tensor c2 = (y2 + 1) * 255.0;
  EXPECT_LT((c2 - c2.round()).abs().max().item<double>(), 1e-9);
}

TEST(PoissonNoise, VarianceAtMidGrey) {
  for (double lambda : {1.0, 0.25}) {
    const auto noise = make_noise("poisson", {{"lambda", lambda}});
    EXPECT_NEAR(noise->variance(), 2.0 / (255.0 * lambda), 1e-15);
    const torch::Tensor ax = torch::zeros({4, 1, 500, 500}, torch::kDouble);
    const torch::Tensor e = noise->sample(ax, seeded(7)) - ax;
    EXPECT_NEAR(e.var().item<double>(), noise->variance(), 0.02 * noise->variance()) << "lambda " << lambda;
    EXPECT_LT(std::abs(e.mean().item<double>()), 0.002) << "lambda " << lambda;
  }
  // The mean follows the signal: E y = ax away from the clamp.
  const auto noise = make_noise("poisson");
  const torch::Tensor ax = torch::full({4, 1, 250, 250}, 0.4, torch::kDouble);
  EXPECT_NEAR(noise->sample(ax, seeded(8)).mean().item<double>(), 0.4, 0.002);
}

TEST(PoissonNoise, NllIsThePoissonLogPmfOfTheCounts) {
  torch::manual_seed(12);
  const double lambda = 1.5;
  const auto noise = make_noise("poisson", {{"lambda", lambda}});
  const torch::Tensor ax = signal({3, 2, 4, 5});
  const torch::Tensor y = noise->sample(ax, seeded(4));
  const torch::Tensor nll = noise->nll(y, ax);
  expect_sum_per_value(nll, y, ax, [&](double yv, double av) {
    const double k = std::round((yv + 1) / 2 * 255 * lambda);
    const double rate = (av + 1) / 2 * 255 * lambda;
    return rate - k * std::log(rate) + std::lgamma(k + 1);  // -log(rate^k e^-rate / k!)
  }, 1e-9);
  // Finite at black (rate clamped at a small epsilon), for black and for non-black measurements.
  const torch::Tensor black = -torch::ones({1, 1, 2, 2}, torch::kDouble);
  EXPECT_TRUE(std::isfinite(noise->nll(black, black).item<double>()));
  EXPECT_TRUE(std::isfinite(noise->nll(torch::zeros_like(black), black).item<double>()));
}

TEST(PoissonNoise, NllGradient) {
  torch::manual_seed(13);
  const auto noise = make_noise("poisson");
  const torch::Tensor ax = signal({2, 2, 4, 4});
  const torch::Tensor y = noise->sample(ax, seeded(5));
  expect_gradients([&](const torch::Tensor& a) { return noise->nll(y, a); }, ax, "poisson nll");
}

TEST(PoissonNoise, Errors) {
  const auto noise = make_noise("poisson");
  expect_error<monge::Error>([&] { noise->nll(randn({2, 1, 4, 4}), randn({2, 1, 4, 5})); },
                             {"poisson:", "same shape", "[2, 1, 4, 4]", "[2, 1, 4, 5]"});
  expect_error<monge::ParamError>([] { make_noise("poisson", {{"lambda", -1.0}}); }, {"poisson", "'lambda'"});
}

// ---- mixture ----

TEST(MixtureNoise, SeededSamplesAreReproducible) {
  expect_seeded_reproducible(*make_noise("mixture"), signal({6, 3, 8, 8}));
}

TEST(MixtureNoise, DefaultsAreTheBenchmarkLevels) {
  const auto noise = make_noise("mixture");
  const double expected = (4 * 0.025 * 0.025 + 3 * 0.05 * 0.05 + 2 * 0.1 * 0.1 + 0.2 * 0.2) / 10;
  EXPECT_NEAR(noise->variance(), expected, 1e-15);
}

TEST(MixtureNoise, EachSampleDrawsOneLevel) {
  const auto noise = make_noise("mixture");
  const std::array<double, 4> levels{0.025, 0.05, 0.1, 0.2}, weights{0.4, 0.3, 0.2, 0.1};
  const int64_t n = 4000;
  const torch::Tensor ax = signal({n, 1, 16, 16});
  const torch::Tensor e = noise->sample(ax, seeded(21)) - ax;
  const torch::Tensor stds = e.view({n, -1}).std(1);
  auto s = stds.accessor<double, 1>();
  std::array<int64_t, 4> counts{};
  int64_t far = 0;
  for (int64_t i = 0; i < n; ++i) {
    // Nearest level on a log scale; a per-sample std of 256 values is within ~15% of its level.
    size_t best = 0;
    for (size_t k = 1; k < levels.size(); ++k)
      if (std::abs(std::log(s[i] / levels[k])) < std::abs(std::log(s[i] / levels[best]))) best = k;
    if (std::abs(std::log(s[i] / levels[best])) > 0.2) ++far;
    ++counts[best];
  }
  EXPECT_EQ(far, 0) << "per-sample std values should cluster at the levels";
  for (size_t k = 0; k < levels.size(); ++k)
    EXPECT_NEAR(double(counts[k]) / double(n), weights[k], 0.03) << "level " << levels[k];
}

TEST(MixtureNoise, SampleHasTheDocumentedVariance) {
  const auto noise = make_noise("mixture");
  const torch::Tensor ax = torch::zeros({100000, 1, 2, 2}, torch::kDouble);
  const torch::Tensor e = noise->sample(ax, seeded(22));
  EXPECT_NEAR(e.square().mean().item<double>(), noise->variance(), 0.03 * noise->variance());
}

TEST(MixtureNoise, NllIsTheMixtureFormula) {
  torch::manual_seed(14);
  const std::vector<double> levels{0.1, 0.3, 1.0}, raw{1, 2, 5};
  const auto noise = make_noise("mixture", {{"levels", levels}, {"weights", raw}});
  const torch::Tensor ax = randn({3, 1, 3, 4});
  const torch::Tensor y = noise->sample(ax, seeded(6));
  const torch::Tensor nll = noise->nll(y, ax);
  ASSERT_EQ(nll.sizes(), torch::IntArrayRef({3}));
  auto ya = y.accessor<double, 4>();
  auto aa = ax.accessor<double, 4>();
  for (int64_t n = 0; n < 3; ++n) {
    double likelihood = 0;
    for (size_t k = 0; k < levels.size(); ++k) {
      double density = raw[k] / 8.0;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j) {
          const double r = ya[n][0][i][j] - aa[n][0][i][j];
          density *= std::exp(-r * r / (2 * levels[k] * levels[k])) / std::sqrt(2 * kPi * levels[k] * levels[k]);
        }
      likelihood += density;
    }
    EXPECT_NEAR(nll[n].item<double>(), -std::log(likelihood), 1e-10 * std::max(1.0, std::abs(std::log(likelihood))))
        << "sample " << n;
  }
  // Stable far out in the tails, where every component density underflows on its own.
  const torch::Tensor big = torch::zeros({1, 1, 32, 32}, torch::kDouble);
  const double far = noise->nll(big + 10, big).item<double>();
  const double expected = 1024 * 100 / 2.0 + 1024 * 0.5 * std::log(2 * kPi) - std::log(5.0 / 8.0);
  EXPECT_NEAR(far, expected, 1e-9 * expected);
}

TEST(MixtureNoise, NllGradient) {
  torch::manual_seed(15);
  const auto noise = make_noise("mixture", {{"levels", std::vector<double>{0.2, 0.4}}, {"weights", std::vector<double>{1, 1}}});
  const torch::Tensor ax = randn({3, 1, 4, 4});
  // Residuals between the two levels, so that both components carry weight in the gradient.
  const torch::Tensor y = ax + 0.3 * randn({3, 1, 4, 4});
  expect_gradients([&](const torch::Tensor& a) { return noise->nll(y, a); }, ax, "mixture nll");
}

TEST(MixtureNoise, BadParametersNameTheParameter) {
  using V = std::vector<double>;
  expect_error<monge::ParamError>([] { make_noise("mixture", {{"weights", V{1, 2}}}); },
                                  {"mixture:", "'weights'", "2 weights", "4 levels"});
  expect_error<monge::ParamError>([] { make_noise("mixture", {{"weights", V{1, 0, 1, 1}}}); },
                                  {"mixture:", "'weights'", "positive"});
  expect_error<monge::ParamError>([] { make_noise("mixture", {{"weights", V{1, -1, 1, 1}}}); },
                                  {"mixture:", "'weights'"});
  expect_error<monge::ParamError>([] { make_noise("mixture", {{"levels", V{}}, {"weights", V{}}}); },
                                  {"mixture:", "'levels'"});
  expect_error<monge::ParamError>([] { make_noise("mixture", {{"levels", V{0.1, -0.2}}, {"weights", V{1, 1}}}); },
                                  {"mixture:", "'levels'"});
  const auto noise = make_noise("mixture");
  expect_error<monge::Error>([&] { noise->nll(randn({2, 1, 4, 4}), randn({2, 1, 4, 5})); },
                             {"mixture:", "same shape", "[2, 1, 4, 4]", "[2, 1, 4, 5]"});
}

// ---- quadratic cost ----

TEST(QuadraticCost, UsesTheBicubicLiftOfDownsample) {
  torch::manual_seed(16);
  const auto op = down2();
  const auto cost = make_cost("quadratic", {{"operator", object(op)}});
  const torch::Tensor x = randn({3, 2, 8, 8});
  const torch::Tensor y = randn({3, 2, 4, 4});
  const torch::Tensor c = cost->evaluate(y, x);
  ASSERT_EQ(c.sizes(), torch::IntArrayRef({3}));
  const torch::Tensor expected = (op->lift(y) - x).square().sum({1, 2, 3});
  EXPECT_LT((c - expected).abs().max().item<double>(), 1e-12 * expected.abs().max().item<double>());
  // Bicubic, not nearest-neighbour: the lift of a non-constant y is not a block repeat.
  const torch::Tensor nearest = y.repeat_interleave(2, 2).repeat_interleave(2, 3);
  EXPECT_GT((op->lift(y) - nearest).abs().max().item<double>(), 1e-3);
  expect_gradients([&](const torch::Tensor& v) { return cost->evaluate(y, v); }, x, "quadratic cost (downsample)");
}

TEST(QuadraticCost, IdentityLiftOfBlurIsTheSquaredDistance) {
  torch::manual_seed(17);
  const auto cost = make_cost("quadratic", {{"operator", object(blur())}});
  const torch::Tensor x = randn({2, 3, 6, 6});
  const torch::Tensor y = randn({2, 3, 6, 6});
  const torch::Tensor expected = (y - x).square().sum({1, 2, 3});
  EXPECT_LT((cost->evaluate(y, x) - expected).abs().max().item<double>(), 1e-12 * expected.abs().max().item<double>());
  expect_gradients([&](const torch::Tensor& v) { return cost->evaluate(y, v); }, x, "quadratic cost (blur)");
}

TEST(QuadraticCost, Errors) {
  const auto cost = make_cost("quadratic", {{"operator", object(down2())}});
  expect_error<monge::Error>([&] { cost->evaluate(randn({2, 1, 4, 4}), randn({2, 1, 6, 6})); },
                             {"quadratic:", "[2, 1, 8, 8]", "[2, 1, 6, 6]"});
  expect_error<monge::ParamError>([] { make_cost("quadratic", {}); }, {"quadratic", "'operator'", "required"});
  expect_error<monge::ParamError>([] { make_cost("quadratic", {{"operator", object(make_noise("gaussian"))}}); },
                                  {"quadratic", "'operator'"});
}

// ---- likelihood cost ----

TEST(LikelihoodCost, GaussianIsTheSquaredResidual) {
  torch::manual_seed(18);
  for (const auto& op : {blur(), down2()}) {
    const auto noise = make_noise("gaussian", {{"sigma", 0.05}});
    const auto cost = make_cost("likelihood", {{"operator", object(op)}, {"noise", object(noise)}});
    const torch::Tensor x = randn({3, 2, 8, 8});
    const torch::Tensor ax = op->forward(x);
    const torch::Tensor y = noise->sample(op->forward(randn({3, 2, 8, 8})), seeded(9));
    const torch::Tensor c = cost->evaluate(y, x);
    ASSERT_EQ(c.sizes(), torch::IntArrayRef({3}));
    const torch::Tensor expected = (ax - y).square().sum({1, 2, 3});
    EXPECT_LT((c - expected).abs().max().item<double>(), 1e-10);
  }
}

TEST(LikelihoodCost, ZeroAtAPerfectFit) {
  torch::manual_seed(19);
  const auto op = blur();
  for (const std::string name : {"gaussian", "laplace", "poisson", "mixture"}) {
    const auto cost = make_cost("likelihood", {{"operator", object(op)}, {"noise", object(make_noise(name))}});
    const torch::Tensor x = signal({2, 1, 8, 8});
    const torch::Tensor y = op->forward(x).detach();
    EXPECT_LT(cost->evaluate(y, x).abs().max().item<double>(), 1e-9) << name;
    // ... and positive elsewhere.
    EXPECT_GT(cost->evaluate(y, x + 0.1).min().item<double>(), 0.0) << name;
  }
}

TEST(LikelihoodCost, PoissonIsNearlyQuadraticAtMidGrey) {
  // 2 var (nll(y|a) - nll(y|y)) is (y - a)^2 to second order at mid-grey: the scaling by the
  // documented variance puts the Poisson cost in squared-error units.
  const auto op = make_op("identity");
  const auto cost = make_cost("likelihood", {{"operator", object(op)}, {"noise", object(make_noise("poisson"))}});
  const torch::Tensor y = torch::zeros({1, 1, 4, 4}, torch::kDouble);
  const torch::Tensor x = torch::full({1, 1, 4, 4}, 4.0 / 255.0, torch::kDouble);
  const double expected = 16 * (4.0 / 255.0) * (4.0 / 255.0);
  EXPECT_NEAR(cost->evaluate(y, x).item<double>(), expected, 0.03 * expected);
}

TEST(LikelihoodCost, Gradients) {
  torch::manual_seed(20);
  for (const auto& op : {blur(), down2()})
    for (const std::string name : {"gaussian", "laplace", "poisson", "mixture"}) {
      const auto noise = make_noise(name);
      const auto cost = make_cost("likelihood", {{"operator", object(op)}, {"noise", object(noise)}});
      const torch::Tensor x = signal({2, 2, 8, 8});
      const torch::Tensor y = noise->sample(op->forward(signal({2, 2, 8, 8})), seeded(10));
      expect_gradients([&](const torch::Tensor& v) { return cost->evaluate(y, v); }, x, "likelihood cost (" + name + ")");
    }
}

TEST(LikelihoodCost, Errors) {
  const auto noise = make_noise("gaussian");
  const auto cost = make_cost("likelihood", {{"operator", object(down2())}, {"noise", object(noise)}});
  expect_error<monge::Error>([&] { cost->evaluate(randn({2, 1, 8, 8}), randn({2, 1, 8, 8})); },
                             {"likelihood:", "[2, 1, 8, 8]", "[2, 1, 4, 4]"});
  expect_error<monge::ParamError>([] { make_cost("likelihood", {{"operator", object(down2())}}); },
                                  {"likelihood", "'noise'", "required"});
  expect_error<monge::ParamError>([&] { make_cost("likelihood", {{"operator", object(noise)}, {"noise", object(noise)}}); },
                                  {"likelihood", "'operator'"});
}

}  // namespace
