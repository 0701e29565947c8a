// Evaluation measures (PSNR, SSIM in scikit-image's convention) and the twist-condition check.
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "host/core/sum_cost.hpp"
#include "host/train/trainer.hpp"
#include "monge/image_metrics.hpp"

namespace {

using monge::image_metrics::psnr;
using monge::image_metrics::ssim;
using monge::image_metrics::ssim_per_image;

// SSIM written out directly: every 11x11 window of the valid region, weighted sums in double.
double ssim_reference(const at::Tensor& a, const at::Tensor& b) {
  const int64_t h = a.size(2), w = a.size(3), r = 5;
  double g[11], gs = 0;
  for (int i = 0; i < 11; ++i) gs += g[i] = std::exp(-0.5 * (i - r) * (i - r) / 2.25);
  const at::Tensor xs = (a.to(at::kDouble) + 1) / 2, ys = (b.to(at::kDouble) + 1) / 2;
  auto x = xs.accessor<double, 4>();
  auto y = ys.accessor<double, 4>();
  double total = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < a.size(1); ++c)
    for (int64_t i = r; i < h - r; ++i)
      for (int64_t j = r; j < w - r; ++j) {
        double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (int di = -r; di <= r; ++di)
          for (int dj = -r; dj <= r; ++dj) {
            const double k = g[di + r] * g[dj + r] / (gs * gs);
            const double u = x[0][c][i + di][j + dj], v = y[0][c][i + di][j + dj];
            mx += k * u;
            my += k * v;
            xx += k * u * u;
            yy += k * v * v;
            xy += k * u * v;
          }
        const double n = 121.0 / 120.0, c1 = 1e-4, c2 = 9e-4;
        const double vx = n * (xx - mx * mx), vy = n * (yy - my * my), vxy = n * (xy - mx * my);
        total += (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        ++count;
      }
  return total / static_cast<double>(count);
}

TEST(Metrics, SsimMatchesTheWindowByWindowDefinition) {
  torch::manual_seed(1);
  const at::Tensor a = torch::rand({1, 2, 16, 19}, torch::kDouble) * 2 - 1;
  const at::Tensor b = (a + 0.3 * torch::randn_like(a)).clamp(-1, 1);
  EXPECT_NEAR(ssim(a, b), ssim_reference(a, b), 1e-12);
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-12);
  EXPECT_NEAR(ssim(a, b), ssim(b, a), 1e-12);
  EXPECT_LT(ssim(a, b), 0.9);
}

TEST(Metrics, SsimOfConstantImagesHasTheClosedForm) {
  // Zero variance: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) with means on [0, 1].
  const at::Tensor a = torch::full({3, 1, 11, 11}, 0.0), b = torch::full({3, 1, 11, 11}, -0.5);
  const double m1 = 0.5, m2 = 0.25, c1 = 1e-4;
  EXPECT_NEAR(ssim(a, b), (2 * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1), 1e-9);
  EXPECT_EQ(ssim_per_image(a, b).size(0), 3);
}

TEST(Metrics, PsnrIsPerImageOnTheUnitScale) {
  // An error of 0.2 on [-1, 1] is 0.1 on [0, 1]: MSE 0.01, 20 dB; a second image with 0.02: 40 dB.
  at::Tensor ref = torch::zeros({2, 1, 4, 4});
  at::Tensor out = ref.clone();
  out[0].fill_(0.2);
  out[1].fill_(0.02);
  EXPECT_NEAR(psnr(out, ref), 30.0, 1e-4);
}

TEST(Metrics, BadShapesAreClearErrors) {
  try {
    ssim(torch::zeros({1, 1, 8, 8}), torch::zeros({1, 1, 8, 8}));
    FAIL();
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 11 x 11"), std::string::npos) << e.what();
  }
  try {
    psnr(torch::zeros({2, 1, 12, 12}), torch::zeros({2, 3, 12, 12}));
    FAIL();
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 1, 12, 12] and [2, 3, 12, 12]"), std::string::npos) << e.what();
  }
}

// Operators and costs with chosen properties, for the twist check.
class TestOperator : public monge::ForwardOperator {
 public:
  TestOperator(std::optional<double> lipschitz, bool monotone) : l_(lipschitz), m_(monotone) {}
  at::Tensor forward(const at::Tensor& x) const override { return x; }
  std::optional<double> lipschitz() const override { return l_; }
  bool monotone() const override { return m_; }

 private:
  std::optional<double> l_;
  bool m_;
};

class TestCost : public monge::Cost {
 public:
  explicit TestCost(Role r) : r_(r) {}
  at::Tensor evaluate(const at::Tensor&, const at::Tensor& x) const override { return x.sum(); }
  Role role() const override { return r_; }

 private:
  Role r_;
};

std::shared_ptr<monge::Cost> sum(double w_lik, double w_quad) {
  auto s = std::make_shared<monge::host::SumCost>();
  if (w_lik > 0) s->terms.emplace_back(w_lik, std::make_shared<TestCost>(monge::Cost::Role::Likelihood));
  if (w_quad > 0) s->terms.emplace_back(w_quad, std::make_shared<TestCost>(monge::Cost::Role::Quadratic));
  s->terms.emplace_back(3.0, std::make_shared<TestCost>(monge::Cost::Role::Other));
  return s;
}

TEST(Twist, WarnsWhenTheQuadraticWeightIsBelowTheLipschitzBound) {
  using monge::host::twist_warning;
  const TestOperator blur(1.0, false), gain(2.0, false), clip(2.0, true), unknown(std::nullopt, false);
  EXPECT_FALSE(twist_warning(*sum(1, 1), blur));  // lambda = L: the paper's deblurring setting
  EXPECT_FALSE(twist_warning(*sum(1, 3), gain));
  EXPECT_FALSE(twist_warning(*sum(1, 1), clip));  // monotone: any lambda > 0
  EXPECT_FALSE(twist_warning(*sum(1, 1), unknown));
  EXPECT_FALSE(twist_warning(*sum(0, 1), gain));  // no likelihood term: nothing to check
  EXPECT_FALSE(twist_warning(TestCost(monge::Cost::Role::Quadratic), gain));
  const auto low = twist_warning(*sum(2, 3), gain);  // lambda = 1.5 < 2
  ASSERT_TRUE(low);
  EXPECT_NE(low->find("lambda = 1.5, below the operator's Lipschitz bound L = 2"), std::string::npos) << *low;
  const auto none = twist_warning(TestCost(monge::Cost::Role::Likelihood), clip);
  ASSERT_TRUE(none);
  EXPECT_NE(none->find("no quadratic term"), std::string::npos) << *none;
  EXPECT_NE(none->find("above the operator's Lipschitz bound L = 2"), std::string::npos) << *none;
}

}  // namespace
