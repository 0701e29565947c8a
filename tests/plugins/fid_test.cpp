// The fid and classifier_agreement metric plugins, loaded through the registry like the host loads
// them: the Fréchet distance against scipy's (tests/fixtures/metrics/fid_fixtures.json, made by
// make_fid_fixtures.py there), FID of a set against itself ~0 and growing with added noise, in a
// classifier's features and a TorchScript extractor's, resizing and grey-to-RGB for an extractor
// that needs them, classifier files (round trip, refusals), agreement, and the errors a user sees.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "json_reader.hpp"
#include "monge/classifier.hpp"
#include "monge/frechet.hpp"
#include "monge/sdk.hpp"
#include "plugin_test_support.hpp"

namespace fs = std::filesystem;

namespace {

using namespace monge::test;

const std::string kFixtures = std::string(MONGE_SOURCE_DIR) + "/tests/fixtures/metrics/";

const nlohmann::json& fixtures() {
  static const nlohmann::json doc = read_json_file(kFixtures + "fid_fixtures.json");
  return doc;
}

std::shared_ptr<monge::Metric> make_metric(const std::string& name, const monge::ParamMap& params) {
  return make<monge::Metric>(name, params, monge::Kind::Metric);
}

torch::Tensor matrix(const nlohmann::json& values, int64_t rows, int64_t cols) {
  return torch::tensor(values.get<std::vector<double>>(), torch::kDouble).reshape({rows, cols});
}

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("monge-fid-test-" + std::to_string(::getpid()) + "-" + name);
}

// Smooth random images in [-1, 1]: 7 x 7 noise upsampled to 28 x 28, so that added noise is new.
torch::Tensor smooth_images(int64_t n, uint64_t seed, int64_t channels = 1) {
  const torch::Tensor low = torch::rand({n, channels, 7, 7}, seeded(seed), torch::kFloat) * 2 - 1;
  return torch::nn::functional::interpolate(
      low, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{28, 28}).mode(torch::kBilinear).align_corners(false));
}

torch::Tensor noisy(const torch::Tensor& x, double sigma, uint64_t seed) {
  return (x + sigma * torch::randn(x.sizes(), seeded(seed), torch::kFloat)).clamp(-1, 1);
}

// A freshly initialised classifier (seeded; BN running statistics of one pass over `x` so that
// its features are not degenerate), written to a file.
fs::path random_classifier(const std::string& name, const torch::Tensor& x, uint64_t seed = 0) {
  torch::manual_seed(seed);
  monge::ClassifierNet net{monge::ClassifierConfig{}};
  {
    torch::NoGradGuard no_grad;
    net->train();
    net->forward(x);
  }
  net->eval();
  const fs::path file = temp_path(name);
  monge::save_classifier(file.string(), net, {{"test_accuracy", 0.1}}, {{"why", "fid_test"}});
  return file;
}

TEST(FidMetric, IsSetLevelAndLowerIsBetter) {
  const auto& r = registry().find("fid");
  EXPECT_EQ(r.kind, monge::Kind::Metric);
  const auto fid = make_metric("fid", {{"torchscript", kFixtures + "fid_project.pt"}});
  EXPECT_TRUE(fid->set_level());
  EXPECT_FALSE(fid->higher_is_better());
  expect_error<monge::Error>([&] { fid->per_image(torch::zeros({2, 1, 4, 4}), torch::zeros({2, 1, 4, 4})); },
                             {"fid: FID compares the feature distributions of two sets and has no per-image scores"});
}

TEST(FidMetric, FixturesComeFromScipy) {
  EXPECT_EQ(fixtures().at("generator").get<std::string>(), "tests/fixtures/metrics/make_fid_fixtures.py");
  EXPECT_NE(fixtures().at("fid").get<std::string>().find("scipy.linalg.sqrtm"), std::string::npos);
}

TEST(FidMetric, FrechetDistanceMatchesScipy) {
  for (const auto& c : fixtures().at("cases")) {
    const auto n1 = c.at("n1").get<int64_t>(), n2 = c.at("n2").get<int64_t>(),
               d = c.at("d").get<int64_t>();
    const torch::Tensor f1 = matrix(c.at("features1"), n1, d), f2 = matrix(c.at("features2"), n2, d);
    const double expected = c.at("fid").get<double>();
    EXPECT_NEAR(monge::frechet::fid(f1, f2), expected, 1e-9 * std::max(1.0, expected)) << c.at("name").get<std::string>();
    EXPECT_NEAR(monge::frechet::fid(f2, f1), expected, 1e-9 * std::max(1.0, expected)) << c.at("name").get<std::string>();
    EXPECT_LT(std::abs(monge::frechet::fid(f1, f1)), 1e-9) << c.at("name").get<std::string>();
  }
}

TEST(FidMetric, SingularCovariancesStayFiniteAndNonNegative) {
  // 10 samples in 64 dimensions: rank-9 covariances, where sqrtm of S1 S2 is ill-posed.
  const torch::Tensor a = torch::randn({10, 64}, seeded(1), torch::kDouble);
  const torch::Tensor b = torch::randn({10, 64}, seeded(2), torch::kDouble) + 0.1;
  const double d = monge::frechet::fid(a, b);
  EXPECT_TRUE(std::isfinite(d));
  EXPECT_GT(d, 0);
  EXPECT_LT(std::abs(monge::frechet::fid(a, a)), 1e-9);
}

TEST(FidMetric, TorchScriptExtractorGivesTheFidOfItsFeatures) {
  const auto fid = make_metric("fid", {{"torchscript", kFixtures + "fid_project.pt"}});
  const torch::Tensor w = matrix(fixtures().at("project_w"), 16, 6);
  const torch::Tensor x = torch::rand({40, 1, 4, 4}, seeded(3), torch::kFloat) * 2 - 1;
  const torch::Tensor y = (torch::rand({30, 1, 4, 4}, seeded(4), torch::kFloat) * 1.5 - 0.5);
  const double expected = monge::frechet::fid(x.reshape({40, 16}).to(torch::kDouble).matmul(w),
                                              y.reshape({30, 16}).to(torch::kDouble).matmul(w));
  EXPECT_NEAR(fid->score_set(x, y), expected, 1e-4 * expected);
  EXPECT_LT(fid->score_set(x, x), 1e-6 * expected);
}

TEST(FidMetric, SelfIsZeroAndGrowsWithNoiseInClassifierFeatures) {
  const torch::Tensor x = smooth_images(300, 5);
  const fs::path file = random_classifier("grow.pt", x);
  const auto fid = make_metric("fid", {{"classifier", file.string()}, {"batch", int64_t{64}}});
  const double scale = fid->score_set(x, noisy(x, 0.05, 10));
  ASSERT_GT(scale, 0);
  EXPECT_LT(std::abs(fid->score_set(x, x)), 1e-6 * scale);
  double previous = 0;
  for (double sigma : {0.05, 0.1, 0.2, 0.4, 0.8}) {
    const double d = fid->score_set(noisy(x, sigma, 10), x);
    EXPECT_GT(d, previous) << "sigma " << sigma;
    previous = d;
  }
  fs::remove(file);
}

TEST(FidMetric, SelfIsZeroAndGrowsWithNoiseInTorchScriptFeatures) {
  const auto fid = make_metric("fid", {{"torchscript", kFixtures + "fid_pool32.pt"}, {"resize", int64_t{32}}, {"channels", int64_t{3}}});
  const torch::Tensor x = smooth_images(200, 6);
  EXPECT_LT(std::abs(fid->score_set(x, x)), 1e-9);
  double previous = 0;
  for (double sigma : {0.1, 0.3, 0.6, 1.0}) {
    const double d = fid->score_set(x, noisy(x, sigma, 11));
    EXPECT_GT(d, previous) << "sigma " << sigma;
    previous = d;
  }
}

TEST(FidMetric, ExtractorInputIsResizedAndGreyRepeatedOnlyWhenAsked) {
  const torch::Tensor x = smooth_images(8, 7);
  const auto plain = make_metric("fid", {{"torchscript", kFixtures + "fid_pool32.pt"}});
  expect_error<monge::Error>([&] { plain->score_set(x, x); },
                             {"fid: " + kFixtures + "fid_pool32.pt: forward() failed on a [8, 1, 28, 28] batch",
                              "pool32 expects N x 3 x 32 x 32 images"});
  const auto grey = make_metric("fid", {{"torchscript", kFixtures + "fid_pool32.pt"}, {"channels", int64_t{1}}});
  expect_error<monge::Error>([&] { grey->score_set(smooth_images(4, 1, 3), smooth_images(4, 2, 3)); },
                             {"fid: parameter 'channels' = 1 but the images have 3 channels"});
}

TEST(FidMetric, SetsAndChannelsAreChecked) {
  const auto fid = make_metric("fid", {{"torchscript", kFixtures + "fid_project.pt"}});
  const torch::Tensor two = torch::zeros({2, 1, 4, 4});
  expect_error<monge::Error>([&] { fid->score_set(torch::zeros({1, 1, 4, 4}), two); },
                             {"fid: the restored set has 1 image(s); FID needs at least 2"});
  expect_error<monge::Error>([&] { fid->score_set(two, torch::zeros({0, 1, 4, 4})); },
                             {"fid: the reference set has 0 image(s)"});
  expect_error<monge::Error>([&] { fid->score_set(torch::zeros({2, 3, 4, 4}), two); },
                             {"fid: the restored images have 3 channels and the reference images 1"});
  expect_error<monge::Error>([&] { fid->score_set(torch::zeros({2, 16}), two); }, {"must be an N x C x H x W batch"});

  const torch::Tensor x = smooth_images(4, 8);
  const fs::path file = random_classifier("channels.pt", x);
  const auto by_classifier = make_metric("fid", {{"classifier", file.string()}});
  expect_error<monge::Error>([&] { by_classifier->score_set(smooth_images(4, 1, 3), smooth_images(4, 2, 3)); },
                             {"fid: the classifier takes 1-channel images, got 3 channels"});
  expect_error<monge::Error>([&] { by_classifier->score_set(torch::zeros({4, 1, 32, 32}), torch::zeros({4, 1, 32, 32})); },
                             {"fid: the classifier was trained on 28 x 28 images, got 32 x 32"});
  fs::remove(file);
}

TEST(FidMetric, ParametersAndFilesAreChecked) {
  expect_error<monge::Error>([&] { make_metric("fid", {}); }, {"fid: give exactly one feature extractor"});
  expect_error<monge::Error>(
      [&] { make_metric("fid", {{"classifier", std::string("a.pt")}, {"torchscript", std::string("b.pt")}}); },
      {"fid: give exactly one feature extractor"});
  expect_error<monge::Error>([&] { make_metric("fid", {{"classifier", std::string("/nonexistent/c.pt")}}); },
                             {"fid: /nonexistent/c.pt: no such classifier file"});
  expect_error<monge::Error>([&] { make_metric("fid", {{"torchscript", std::string("/nonexistent/t.pt")}}); },
                             {"fid: /nonexistent/t.pt: no such TorchScript file"});

  const fs::path garbage = temp_path("garbage.pt");
  std::ofstream(garbage) << "not a model at all";
  expect_error<monge::Error>([&] { make_metric("fid", {{"classifier", garbage.string()}}); },
                             {"fid: " + garbage.string() + ": not a monge classifier file, or it is truncated or corrupt"});
  expect_error<monge::Error>([&] { make_metric("fid", {{"torchscript", garbage.string()}}); },
                             {"fid: " + garbage.string() + " is not a TorchScript module, or it is truncated"});
  expect_error<monge::Error>([&] { make_metric("classifier_agreement", {{"classifier", garbage.string()}}); },
                             {"classifier_agreement: " + garbage.string() + ": not a monge classifier file"});
  fs::remove(garbage);

  // A map file (or any other archive) is not a classifier; a TorchScript module is not one either.
  const fs::path map_like = temp_path("map.pt");
  torch::serialize::OutputArchive archive;
  archive.write("monge_map_format", c10::IValue(int64_t{1}));
  archive.save_to(map_like.string());
  expect_error<monge::Error>([&] { make_metric("fid", {{"classifier", map_like.string()}}); },
                             {"is a monge map file, not a classifier", "fid's 'torchscript' parameter"});
  fs::remove(map_like);
  expect_error<monge::Error>([&] { make_metric("fid", {{"classifier", kFixtures + "fid_project.pt"}}); },
                             {"fid_project.pt"});

  // A newer format is refused with the versions.
  const fs::path future = temp_path("future.pt");
  torch::serialize::OutputArchive newer;
  newer.write("monge_classifier_format", c10::IValue(int64_t{99}));
  newer.save_to(future.string());
  expect_error<monge::Error>([&] { monge::load_classifier(future.string()); },
                             {"classifier format 99 is newer than this monge understands (1)"});
  fs::remove(future);

  // A truncated classifier file.
  const torch::Tensor x = smooth_images(4, 9);
  const fs::path file = random_classifier("truncated.pt", x);
  fs::resize_file(file, fs::file_size(file) / 2);
  expect_error<monge::Error>([&] { make_metric("fid", {{"classifier", file.string()}}); },
                             {"not a monge classifier file, or it is truncated or corrupt"});
  fs::remove(file);
}

TEST(ClassifierFile, RoundTripKeepsPredictionsFeaturesAndRecords) {
  const torch::Tensor x = smooth_images(16, 12);
  torch::manual_seed(4);
  monge::ClassifierNet net{monge::ClassifierConfig{1, 10, {8, 16, 24}, 20, 28, 28}};
  net->eval();
  const fs::path file = temp_path("roundtrip.pt");
  monge::save_classifier(file.string(), net, {{"test_accuracy", 0.91}}, {{"epochs", "3"}});
  monge::LoadedClassifier loaded = monge::load_classifier(file.string());
  EXPECT_EQ(loaded.net->config().widths, (std::vector<int64_t>{8, 16, 24}));
  EXPECT_EQ(loaded.net->feature_dim(), 20);
  EXPECT_DOUBLE_EQ(loaded.metrics.at("test_accuracy"), 0.91);
  EXPECT_EQ(loaded.notes.at("epochs"), "3");
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(loaded.net->features(x), net->features(x)));
  EXPECT_TRUE(torch::equal(loaded.net->forward(x), net->forward(x)));
  fs::remove(file);
}

TEST(ClassifierAgreement, IsOneOnIdenticalSetsAndComparesPredictions) {
  const torch::Tensor x = smooth_images(64, 13);
  const fs::path file = random_classifier("agree.pt", x);
  const auto agree = make_metric("classifier_agreement", {{"classifier", file.string()}, {"batch", int64_t{16}}});
  EXPECT_TRUE(agree->higher_is_better());
  EXPECT_FALSE(agree->set_level());
  const torch::Tensor same = agree->per_image(x, x);
  ASSERT_EQ(same.sizes(), torch::IntArrayRef({64}));
  EXPECT_EQ(same.sum().item<double>(), 64);
  EXPECT_DOUBLE_EQ(agree->score_set(x, x), 1.0);

  const torch::Tensor y = noisy(x, 0.8, 14);
  monge::LoadedClassifier c = monge::load_classifier(file.string());
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = c.net->forward(y).argmax(1).eq(c.net->forward(x).argmax(1)).to(torch::kDouble);
  EXPECT_TRUE(torch::equal(agree->per_image(y, x), expected));
  EXPECT_NEAR(agree->score_set(y, x), expected.mean().item<double>(), 1e-12);
  expect_error<monge::Error>([&] { agree->per_image(x, x.narrow(0, 0, 3)); },
                             {"classifier_agreement: expected two N x C x H x W batches of the same shape",
                              "[64, 1, 28, 28] and [3, 1, 28, 28]"});
  expect_error<monge::Error>([&] { make_metric("classifier_agreement", {}); },
                             {"classifier_agreement: 'classifier' (a monge classifier file, from monge.train_classifier) is required"});
  fs::remove(file);
}

}  // namespace
