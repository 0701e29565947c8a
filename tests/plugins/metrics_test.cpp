// The psnr and ssim metric plugins, loaded through the registry like the host loads them, against
// scikit-image's values stored in tests/fixtures/metrics/metrics_fixtures.json (made by
// make_metric_fixtures.py there), per image and aggregated; the PSNR floor, SSIM of identical
// images, and the errors a user sees.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "json_reader.hpp"
#include "monge/image_metrics.hpp"
#include "monge/sdk.hpp"
#include "plugin_test_support.hpp"

namespace {

using namespace monge::test;

std::shared_ptr<monge::Metric> make_metric(const std::string& name) {
  return make<monge::Metric>(name, {}, monge::Kind::Metric);
}

const nlohmann::json& fixtures() {
  static const nlohmann::json doc =
      read_json_file(std::string(MONGE_SOURCE_DIR) + "/tests/fixtures/metrics/metrics_fixtures.json");
  return doc;
}

// A batch of the fixture, moved from [0, 1] to the [-1, 1] range the plugins take.
torch::Tensor batch(const nlohmann::json& c, const char* which) {
  const auto shape = c.at("shape").get<std::vector<int64_t>>();
  std::vector<double> values = c.at(which).get<std::vector<double>>();
  torch::Tensor unit = torch::tensor(values, torch::kDouble).reshape(shape);
  return unit * 2 - 1;
}

void expect_matches_skimage(const std::string& metric_name, double tol) {
  const auto metric = make_metric(metric_name);
  const auto& cases = fixtures().at("cases");
  ASSERT_GE(cases.size(), 4u);
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    const torch::Tensor restored = batch(c, "restored"), reference = batch(c, "reference");
    const std::vector<double> expected = c.at(metric_name).get<std::vector<double>>();
    const torch::Tensor got = metric->per_image(restored, reference);
    ASSERT_EQ(got.sizes(), torch::IntArrayRef({static_cast<int64_t>(expected.size())})) << name;
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(got[static_cast<int64_t>(i)].item<double>(), expected[i], tol) << name << " image " << i;
    EXPECT_NEAR(metric->aggregate(got), c.at(metric_name + "_mean").get<double>(), tol) << name;
  }
}

TEST(MetricPlugins, AreListedAsMetricsWithoutParameters) {
  for (const char* name : {"psnr", "ssim"}) {
    const auto& r = registry().find(name);
    EXPECT_EQ(r.kind, monge::Kind::Metric) << name;
    EXPECT_TRUE(r.schema->specs().empty()) << name;
    EXPECT_TRUE(make_metric(name)->higher_is_better()) << name;
  }
}

TEST(MetricPlugins, FixturesComeFromScikitImage) {
  EXPECT_EQ(fixtures().at("generator").get<std::string>(), "tests/fixtures/metrics/make_metric_fixtures.py");
  EXPECT_NE(fixtures().at("ssim").get<std::string>().find("gaussian_weights=True, sigma=1.5"), std::string::npos);
}

TEST(MetricPlugins, PsnrMatchesScikitImage) { expect_matches_skimage("psnr", 1e-6); }

TEST(MetricPlugins, SsimMatchesScikitImage) { expect_matches_skimage("ssim", 1e-5); }

TEST(MetricPlugins, SinglePrecisionInputsAgreeWithDouble) {
  const auto& c = fixtures().at("cases").at(2);  // RGB
  const torch::Tensor restored = batch(c, "restored"), reference = batch(c, "reference");
  for (const char* name : {"psnr", "ssim"}) {
    const auto metric = make_metric(name);
    const torch::Tensor d = metric->per_image(restored, reference);
    const torch::Tensor f = metric->per_image(restored.to(torch::kFloat), reference.to(torch::kFloat));
    EXPECT_EQ(f.scalar_type(), torch::kDouble) << name;
    EXPECT_TRUE(torch::allclose(f, d, 1e-5, 1e-5)) << name << ": " << f << " vs " << d;
  }
}

TEST(MetricPlugins, IdenticalImagesScoreSsimOneAndPsnrAtItsFloor) {
  torch::manual_seed(3);
  const torch::Tensor a = torch::rand({2, 3, 13, 17}, torch::kDouble) * 2 - 1;
  const double floor_db = -10 * std::log10(monge::image_metrics::kPsnrMseFloor);
  EXPECT_NEAR(floor_db, 120.0, 1e-12);
  const torch::Tensor p = make_metric("psnr")->per_image(a, a);
  const torch::Tensor s = make_metric("ssim")->per_image(a, a);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(p[i].item<double>(), floor_db, 1e-9);
    EXPECT_NEAR(s[i].item<double>(), 1.0, 1e-12);
  }
}

TEST(MetricPlugins, MismatchedShapesAreClearErrors) {
  const torch::Tensor a = torch::zeros({2, 1, 12, 12}), b = torch::zeros({2, 3, 12, 12});
  for (const char* name : {"psnr", "ssim"}) {
    const auto metric = make_metric(name);
    expect_error<monge::Error>([&] { metric->per_image(a, b); },
                               {std::string(name) + ": expected two N x C x H x W batches of the same shape",
                                "[2, 1, 12, 12] and [2, 3, 12, 12]"});
    expect_error<monge::Error>([&] { metric->per_image(torch::zeros({12, 12}), torch::zeros({12, 12})); },
                               {"[12, 12] and [12, 12]"});
  }
}

TEST(MetricPlugins, SsimRefusesImagesSmallerThanItsWindow) {
  const auto ssim = make_metric("ssim");
  expect_error<monge::Error>([&] { ssim->per_image(torch::zeros({1, 1, 10, 16}), torch::zeros({1, 1, 10, 16})); },
                             {"ssim: images must be at least 11 x 11", "got 10 x 16"});
  expect_error<monge::Error>([&] { ssim->per_image(torch::zeros({1, 3, 16, 8}), torch::zeros({1, 3, 16, 8})); },
                             {"got 16 x 8"});
  EXPECT_EQ(ssim->per_image(torch::zeros({1, 1, 11, 11}), torch::zeros({1, 1, 11, 11})).size(0), 1);
}

}  // namespace
