// The built-in operator and noise plugins, loaded through the registry like the host loads them:
// gradients against finite differences, values against references built another way, Lipschitz
// bounds against the data, and the errors a user sees.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "host/core/registry.hpp"
#include "monge/sdk.hpp"
#include "plugin_test_support.hpp"

namespace fs = std::filesystem;

namespace {

using namespace monge::test;
using monge::host::Registry;

monge::ParamMap blur_params(int64_t size, double sigma, const std::string& padding) {
  return {{"size", size}, {"sigma", sigma}, {"padding", padding}};
}


// ---- references built independently of the plugins ----

torch::Tensor gaussian_taps(int64_t size, double sigma) {
  const torch::Tensor t = torch::arange(size, torch::kDouble) - double(size / 2);
  const torch::Tensor g = torch::exp(-t * t / (2 * sigma * sigma));
  return g / g.sum();
}

// One 2-D convolution with the outer-product kernel on an input padded in one go.
torch::Tensor reference_blur(const torch::Tensor& x, int64_t size, double sigma, const std::string& padding) {
  const int64_t r = size / 2, c = x.size(1), h = x.size(2), w = x.size(3);
  const torch::Tensor g = gaussian_taps(size, sigma).to(x.dtype());
  const torch::Tensor kernel = torch::outer(g, g).view({1, 1, size, size}).repeat({c, 1, 1, 1});
  torch::Tensor padded;
  if (padding == "reflect") padded = torch::reflection_pad2d(x, {r, r, r, r});
  else if (padding == "replicate") padded = torch::replication_pad2d(x, {r, r, r, r});
  else if (padding == "zeros") padded = torch::constant_pad_nd(x, {r, r, r, r});
  else {
    // Circular: tile the image enough times and cut the padded window out of the tiling.
    const int64_t th = (r + h - 1) / h, tw = (r + w - 1) / w;
    const torch::Tensor tiled = x.repeat({1, 1, 2 * th + 1, 2 * tw + 1});
    padded = tiled.slice(2, th * h - r, th * h + h + r).slice(3, tw * w - r, tw * w + w + r);
  }
  const std::array<int64_t, 2> ones{1, 1}, none{0, 0};
  return torch::conv2d(padded, kernel, c10::nullopt, ones, none, ones, c);
}

// ||A||_2 of a linear operator on signals of `shape`, by power iteration on A^T A; autograd gives
// A^T u as the gradient of <A(z), u>.
double power_norm(const monge::ForwardOperator& op, std::vector<int64_t> shape, int iterations) {
  torch::Tensor v = randn(shape);
  v /= v.norm();
  for (int i = 0; i < iterations; ++i) {
    const torch::Tensor z = v.detach().requires_grad_(true);
    const torch::Tensor u = op.forward(z);
    torch::Tensor next = torch::autograd::grad({(u * u.detach()).sum()}, {z})[0];
    v = next / next.norm();
  }
  torch::NoGradGuard no_grad;
  return op.forward(v).norm().item<double>();
}

struct OperatorCase {
  std::string label;
  std::string name;
  monge::ParamMap params;
  std::vector<int64_t> shape;
};

std::vector<OperatorCase> operator_cases() {
  return {
      {"blur reflect default", "gaussian_blur", {}, {2, 3, 16, 20}},
      {"blur reflect tight", "gaussian_blur", blur_params(9, 2.0, "reflect"), {1, 2, 5, 7}},
      {"blur replicate", "gaussian_blur", blur_params(5, 0.8, "replicate"), {1, 2, 9, 7}},
      {"blur replicate tiny", "gaussian_blur", blur_params(11, 3.0, "replicate"), {1, 1, 2, 3}},
      {"blur zeros", "gaussian_blur", blur_params(7, 2.0, "zeros"), {2, 1, 8, 11}},
      {"blur circular", "gaussian_blur", blur_params(9, 3.0, "circular"), {2, 1, 8, 11}},
      {"blur circular wrapping", "gaussian_blur", blur_params(21, 4.0, "circular"), {1, 2, 5, 6}},
      {"downsample 2", "downsample", {}, {2, 3, 8, 12}},
      {"downsample 3", "downsample", {{"factor", int64_t{3}}}, {1, 2, 9, 6}},
      {"hdr_clip 2", "hdr_clip", {}, {2, 3, 6, 5}},
      {"hdr_clip 5", "hdr_clip", {{"scale", 5.0}}, {1, 2, 7, 4}},
      {"identity", "identity", {}, {2, 1, 4, 4}},
      {"nonlinear_blur default", "nonlinear_blur", {}, {2, 2, 11, 10}},
      {"inpaint boxes", "inpaint", {{"boxes", int64_t{2}}, {"box_size", int64_t{3}}, {"fill", 0.5}}, {2, 2, 7, 9}},
      {"nonlinear_blur 30 deg zeros", "nonlinear_blur", {{"angle", 30.0}, {"padding", std::string("zeros")}, {"length", int64_t{5}}}, {1, 3, 7, 9}},
      {"nonlinear_blur replicate", "nonlinear_blur", {{"padding", std::string("replicate")}, {"strength", 3.0}}, {1, 1, 6, 5}},
  };
}

// Random signals; for hdr_clip moved away from the kinks |scale x| = 1, where the derivative jumps.
torch::Tensor random_signal(const OperatorCase& c) {
  torch::Tensor x = randn(c.shape) * 0.6;
  if (c.name == "hdr_clip") {
    const double scale = c.params.count("scale") ? std::get<double>(c.params.at("scale")) : 2.0;
    const torch::Tensor near_kink = ((x * scale).abs() - 1).abs() < 1e-2;
    x = torch::where(near_kink, x * 0.5, x);
  }
  return x;
}

// ---- loading ----

TEST(Plugins, AllLoadWithTheirKind) {
  for (const char* name : {"gaussian_blur", "downsample", "hdr_clip", "identity", "nonlinear_blur", "inpaint", "torchscript"})
    EXPECT_EQ(registry().find(name).kind, monge::Kind::Operator) << name;
  EXPECT_EQ(registry().find("gaussian").kind, monge::Kind::Noise);
}

TEST(Plugins, UnknownParameterSuggestsTheRightName) {
  expect_error<monge::ParamError>([] { registry().create("gaussian_blur", {{"sigmma", 2.0}}); },
                                  {"sigmma", "did you mean 'sigma'"});
}

// ---- gradients ----

TEST(Gradients, OperatorsMatchFiniteDifferences) {
  torch::manual_seed(1);
  for (const auto& c : operator_cases()) {
    const auto op = make_op(c.name, c.params);
    expect_gradients([&](const torch::Tensor& x) { return op->forward(x); }, random_signal(c), c.label);
  }
}

TEST(Gradients, DownsampleLiftMatchesFiniteDifferences) {
  torch::manual_seed(2);
  const auto op = make_op("downsample", {{"factor", int64_t{3}}});
  expect_gradients([&](const torch::Tensor& y) { return op->lift(y); }, randn({2, 2, 4, 5}), "downsample lift");
}

TEST(Gradients, GaussianNllMatchesFiniteDifferencesInAx) {
  torch::manual_seed(3);
  const auto noise = make_noise("gaussian", {{"sigma", 0.3}});
  const torch::Tensor ax = randn({3, 2, 5, 4});
  const torch::Tensor y = ax + 0.3 * randn({3, 2, 5, 4});
  expect_gradients([&](const torch::Tensor& a) { return noise->nll(y, a); }, ax, "gaussian nll");
}

// ---- gaussian_blur ----

TEST(GaussianBlur, MatchesTwoDimensionalReference) {
  torch::manual_seed(4);
  struct Case {
    int64_t size;
    double sigma;
    std::string padding;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {
      {13, 1.5, "reflect", {2, 3, 16, 20}}, {5, 0.7, "reflect", {1, 1, 3, 9}},   {13, 1.5, "zeros", {2, 3, 16, 20}},
      {9, 4.0, "zeros", {1, 5, 3, 2}},      {7, 2.0, "replicate", {2, 2, 9, 5}}, {7, 2.0, "circular", {1, 3, 10, 8}},
      {21, 5.0, "circular", {1, 2, 4, 7}},  {1, 1.0, "reflect", {1, 1, 3, 3}},   {101, 100.0, "zeros", {1, 1, 4, 4}},
  };
  for (const auto& c : cases) {
    const auto op = make_op("gaussian_blur", blur_params(c.size, c.sigma, c.padding));
    const torch::Tensor x = randn(c.shape);
    const torch::Tensor y = op->forward(x);
    ASSERT_EQ(y.sizes(), x.sizes()) << c.padding << " size " << c.size;
    EXPECT_EQ(y.scalar_type(), torch::kDouble);
    EXPECT_LT((y - reference_blur(x, c.size, c.sigma, c.padding)).abs().max().item<double>(), 1e-10)
        << c.padding << " size " << c.size << " on " << x.sizes();
  }
}

TEST(GaussianBlur, WorksInSinglePrecision) {
  torch::manual_seed(5);
  const auto op = make_op("gaussian_blur");
  const torch::Tensor x = torch::randn({1, 3, 16, 16});
  const torch::Tensor y = op->forward(x);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_LT((y.to(torch::kDouble) - reference_blur(x.to(torch::kDouble), 13, 1.5, "reflect")).abs().max().item<double>(), 1e-5);
}

TEST(GaussianBlur, KeepsConstantImagesExceptZerosAtTheBorder) {
  const torch::Tensor x = torch::full({1, 2, 15, 17}, 0.37, torch::kDouble);
  for (const char* padding : {"reflect", "replicate", "circular"}) {
    const torch::Tensor y = make_op("gaussian_blur", blur_params(13, 2.5, padding))->forward(x);
    EXPECT_LT((y - 0.37).abs().max().item<double>(), 1e-12) << padding;
  }
  // Zero padding darkens the border by design; only pixels a radius away stay constant.
  const torch::Tensor y = make_op("gaussian_blur", blur_params(13, 2.5, "zeros"))->forward(x);
  EXPECT_LT((y.slice(2, 6, 9).slice(3, 6, 11) - 0.37).abs().max().item<double>(), 1e-12);
  EXPECT_LT(y[0][0][0][0].item<double>(), 0.37 * 0.5);
}

TEST(GaussianBlur, SizeMustBeOdd) {
  expect_error<monge::ParamError>([] { make_op("gaussian_blur", {{"size", int64_t{12}}}); },
                                  {"gaussian_blur: parameter 'size' must be odd, got 12"});
}

TEST(GaussianBlur, ImageTooSmallForReflectPadding) {
  const auto op = make_op("gaussian_blur");  // size 13: reflect needs more than 6 pixels per side
  const torch::Tensor small = randn({1, 1, 6, 20});
  expect_error<monge::Error>([&] { op->forward(small); }, {"too small", "size 13", "padding='zeros'"});
  expect_error<monge::Error>([&] { op->measurement_shape({1, 1, 20, 6}); }, {"too small", "size 13"});
  EXPECT_NO_THROW(op->forward(randn({1, 1, 7, 7})));
  EXPECT_NO_THROW(make_op("gaussian_blur", blur_params(13, 1.5, "zeros"))->forward(small));
}

TEST(GaussianBlur, RejectsInputThatIsNotNchw) {
  const auto op = make_op("gaussian_blur");
  expect_error<monge::Error>([&] { op->forward(randn({3, 16, 16})); }, {"N x C x H x W", "3 dimensions"});
}

// ---- downsample ----

TEST(Downsample, AveragesBlocks) {
  torch::manual_seed(6);
  for (int64_t f : {2, 3, 4}) {
    const auto op = make_op("downsample", {{"factor", f}});
    const torch::Tensor x = randn({2, 3, 4 * f, 3 * f});
    const torch::Tensor y = op->forward(x);
    ASSERT_EQ(y.sizes(), torch::IntArrayRef({2, 3, 4, 3}));
    auto xa = x.accessor<double, 4>();
    auto ya = y.accessor<double, 4>();
    double worst = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < 4; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            double sum = 0;
            for (int64_t a = 0; a < f; ++a)
              for (int64_t b = 0; b < f; ++b) sum += xa[n][c][i * f + a][j * f + b];
            worst = std::max(worst, std::abs(ya[n][c][i][j] - sum / double(f * f)));
          }
    EXPECT_LT(worst, 1e-12) << "factor " << f;
    EXPECT_EQ(op->scale_factor(), f);
    EXPECT_EQ(op->measurement_shape({2, 3, 4 * f, 3 * f}), (std::vector<int64_t>{2, 3, 4, 3}));
  }
}

TEST(Downsample, LiftUpsamplesAndKeepsConstants) {
  const auto op = make_op("downsample", {{"factor", int64_t{4}}});
  const torch::Tensor y = torch::full({2, 3, 5, 6}, -0.25, torch::kDouble);
  const torch::Tensor up = op->lift(y);
  ASSERT_EQ(up.sizes(), torch::IntArrayRef({2, 3, 20, 24}));
  EXPECT_LT((up + 0.25).abs().max().item<double>(), 1e-12);
  EXPECT_EQ(op->lift(torch::randn({1, 1, 3, 3})).sizes(), torch::IntArrayRef({1, 1, 12, 12}));
}

TEST(Downsample, RejectsShapesNotDivisibleByTheFactor) {
  const auto op = make_op("downsample", {{"factor", int64_t{4}}});
  expect_error<monge::Error>([&] { op->forward(randn({1, 1, 10, 8})); }, {"[1, 1, 10, 8]", "factor 4", "crop"});
  expect_error<monge::Error>([&] { op->measurement_shape({1, 1, 8, 6}); }, {"factor 4", "crop"});
}

// ---- hdr_clip ----

TEST(NonlinearBlur, MatchesTheDiagonalMotionKernelAndTanh) {
  torch::manual_seed(3);
  const auto op = make_op("nonlinear_blur", {{"padding", std::string("zeros")}});
  const torch::Tensor x = randn({1, 1, 12, 13});
  const torch::Tensor y = op->forward(x);
  // 9 taps of 1/9 on the 45-degree diagonal (up and to the right): rows -4..4 pair with columns +4..-4.
  auto xa = x.accessor<double, 4>();
  for (int64_t i : {0, 5, 11})
    for (int64_t j : {0, 6, 12}) {
      double s = 0;
      for (int64_t t = -4; t <= 4; ++t) {
        const int64_t row = i - t, col = j + t;
        if (row >= 0 && row < 12 && col >= 0 && col < 13) s += xa[0][0][row][col] / 9;
      }
      EXPECT_NEAR(y[0][0][i][j].item<double>(), std::tanh(1.5 * s) / std::tanh(1.5), 1e-12) << i << "," << j;
    }
  // Constant images stay constant (reflect padding): c -> tanh(1.5 c) / tanh(1.5).
  const auto reflect = make_op("nonlinear_blur", {});
  const torch::Tensor c = torch::full({1, 2, 10, 10}, 0.4, torch::kDouble);
  EXPECT_TRUE(reflect->forward(c).allclose(torch::full_like(c, std::tanh(0.6) / std::tanh(1.5)), 1e-12, 1e-12));
  EXPECT_NEAR(*reflect->lipschitz(), 2 * 1.5 / std::tanh(1.5), 1e-12);
  EXPECT_FALSE(reflect->monotone());
}

TEST(NonlinearBlur, BadParametersAndShapesAreClearErrors) {
  expect_error<monge::Error>([] { make_op("nonlinear_blur", {{"length", int64_t{8}}}); }, {"length must be odd", "use 9"});
  const auto op = make_op("nonlinear_blur", {});
  expect_error<monge::Error>([&] { op->forward(randn({1, 1, 4, 20})); }, {"too small for length 9", "padding='zeros'"});
  expect_error<monge::Error>([&] { op->forward(randn({4, 20})); }, {"expected an N x C x H x W tensor"});
}

TEST(Inpaint, BoxesAreFixedAndOnlyMissingPixelsChange) {
  torch::manual_seed(4);
  const auto op = make_op("inpaint", {{"boxes", int64_t{2}}, {"box_size", int64_t{4}}, {"seed", int64_t{5}}, {"fill", -1.0}});
  const torch::Tensor x = randn({3, 2, 10, 12});
  const torch::Tensor y = op->forward(x);
  const torch::Tensor missing = y.ne(x);
  // The same pixels are missing in every sample and channel, and on a second call.
  EXPECT_TRUE(missing.eq(missing[0][0]).all().item<bool>());
  EXPECT_TRUE(op->forward(x).equal(y));
  const int64_t count = missing[0][0].sum().item<int64_t>();
  EXPECT_GE(count, 16);  // one 4x4 box at least (two may overlap)
  EXPECT_LE(count, 32);
  EXPECT_TRUE(y.masked_select(missing).eq(-1.0).all().item<bool>());
  // Another seed moves the boxes.
  const auto other = make_op("inpaint", {{"boxes", int64_t{2}}, {"box_size", int64_t{4}}, {"seed", int64_t{6}}, {"fill", -1.0}});
  EXPECT_FALSE(other->forward(x).equal(y));
  EXPECT_TRUE(op->monotone());
  EXPECT_EQ(*op->lipschitz(), 1.0);
}

TEST(Inpaint, MaskFileIsReadAndChecked) {
  const fs::path dir = fs::temp_directory_path() / ("monge-inpaint-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "mask.pgm", std::ios::binary);
    f << "P5\n# a comment\n3 2\n255\n";
    const unsigned char px[] = {255, 0, 255, 255, 255, 0};
    f.write(reinterpret_cast<const char*>(px), 6);
  }
  const auto op = make_op("inpaint", {{"mask", (dir / "mask.pgm").string()}});
  const torch::Tensor y = op->forward(torch::ones({1, 1, 2, 3}, torch::kDouble));
  EXPECT_TRUE(y.equal(torch::tensor({1.0, 0.0, 1.0, 1.0, 1.0, 0.0}, torch::kDouble).view({1, 1, 2, 3})));
  expect_error<monge::Error>([&] { op->forward(torch::ones({1, 1, 3, 3}, torch::kDouble)); }, {"mask.pgm is 3x2 pixels, the images are 3x3"});
  std::ofstream(dir / "bad.pgm") << "P2\n3 2\n255\n";
  expect_error<monge::Error>([&] { make_op("inpaint", {{"mask", (dir / "bad.pgm").string()}}); }, {"not a binary PGM (P5)"});
  std::ofstream(dir / "short.pgm", std::ios::binary) << "P5\n3 2\n255\n" << "ab";
  expect_error<monge::Error>([&] { make_op("inpaint", {{"mask", (dir / "short.pgm").string()}}); }, {"truncated"});
  expect_error<monge::Error>([&] { make_op("inpaint", {{"mask", (dir / "none.pgm").string()}}); }, {"cannot open the mask file"});
  fs::remove_all(dir);
}

// TorchScript fixtures written from C++ (no Python needed): what torch.jit.save would produce.
fs::path script_fixture(const std::string& name, const std::string& source) {
  const fs::path dir = fs::temp_directory_path() / ("monge-torchscript-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  torch::jit::Module m("Op");
  m.define(source);
  m.save((dir / name).string());
  return dir / name;
}

TEST(TorchScript, ForwardLiftAndGradientsComeFromTheModule) {
  torch::manual_seed(5);
  const fs::path file = script_fixture("cubic.pt", R"(
def forward(self, x):
    return x * 0.5 + x * x * x * 0.1

def lift(self, y):
    return y * 2.0
)");
  const auto op = make_op("torchscript", {{"file", file.string()}, {"lipschitz", 0.8}});
  const torch::Tensor x = randn({2, 3, 4, 5});
  EXPECT_TRUE(op->forward(x).allclose(x * 0.5 + x.pow(3) * 0.1, 1e-12, 1e-12));
  EXPECT_TRUE(op->lift(x).allclose(x * 2, 1e-12, 1e-12));
  EXPECT_EQ(*op->lipschitz(), 0.8);
  EXPECT_FALSE(op->monotone());
  expect_gradients([&](const torch::Tensor& z) { return op->forward(z); }, x, "torchscript forward");
  // Without a lift method the lift is the identity; the measurement shape comes from forward.
  const fs::path pool = script_fixture("pool.pt", R"(
def forward(self, x):
    return torch.avg_pool2d(x, 2)
)");
  const auto down = make_op("torchscript", {{"file", pool.string()}});
  EXPECT_TRUE(down->lift(x).equal(x));
  EXPECT_EQ(down->measurement_shape({7, 3, 8, 6}), (std::vector<int64_t>{7, 3, 4, 3}));
  EXPECT_FALSE(down->lipschitz().has_value());
}

TEST(TorchScript, BadFilesAndFailingModulesAreClearErrors) {
  const fs::path good = script_fixture("square.pt", R"(
def forward(self, x):
    return x.view(-1, 4) * 2.0
)");
  const fs::path dir = good.parent_path();
  expect_error<monge::Error>([&] { make_op("torchscript", {}); }, {"'file'", "is required"});
  expect_error<monge::Error>([&] { make_op("torchscript", {{"file", (dir / "none.pt").string()}}); }, {"no such file", "none.pt"});
  std::ofstream(dir / "junk.pt") << "not torchscript";
  expect_error<monge::Error>([&] { make_op("torchscript", {{"file", (dir / "junk.pt").string()}}); },
                             {"junk.pt is not a TorchScript module", "torch.jit.save"});
  // A truncated archive.
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "cut.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  expect_error<monge::Error>([&] { make_op("torchscript", {{"file", (dir / "cut.pt").string()}}); }, {"cut.pt is not a TorchScript module"});
  // forward fails on a shape it cannot take: the file, the method and the shape are named.
  const auto op = make_op("torchscript", {{"file", good.string()}});
  expect_error<monge::Error>([&] { op->forward(randn({1, 1, 3, 3})); }, {"square.pt: forward() failed on a [1, 1, 3, 3]"});
  fs::remove_all(dir);
}

TEST(HdrClip, ClampsScaledValues) {
  for (double scale : {2.0, 5.0}) {
    const auto op = make_op("hdr_clip", {{"scale", scale}});
    const torch::Tensor x = torch::linspace(-1, 1, 101, torch::kDouble).view({1, 1, 101, 1});
    const torch::Tensor y = op->forward(x);
    auto xa = x.accessor<double, 4>();
    auto ya = y.accessor<double, 4>();
    for (int64_t i = 0; i < 101; ++i)
      EXPECT_DOUBLE_EQ(ya[0][0][i][0], std::clamp(scale * xa[0][0][i][0], -1.0, 1.0)) << "scale " << scale;
    EXPECT_EQ(op->lipschitz(), scale);
  }
  EXPECT_EQ(make_op("hdr_clip")->lipschitz(), 2.0);
}

// ---- Lipschitz bounds ----

TEST(Lipschitz, BoundsHoldOnRandomPairs) {
  torch::manual_seed(7);
  for (const auto& c : operator_cases()) {
    const auto op = make_op(c.name, c.params);
    ASSERT_TRUE(op->lipschitz().has_value()) << c.label;
    const double bound = *op->lipschitz();
    for (int pair = 0; pair < 20; ++pair) {
      const torch::Tensor x = random_signal(c);
      // Pairs near and far, and some differing by a constant (the worst case of downsampling).
      torch::Tensor d = randn(c.shape) * std::pow(10.0, pair % 4 - 3);
      if (pair % 5 == 0) d = torch::full(c.shape, 0.1 * (pair + 1), torch::kDouble);
      const double out = (op->forward(x) - op->forward(x + d)).norm().item<double>();
      EXPECT_LE(out, bound * d.norm().item<double>() * (1 + 1e-9)) << c.label << ", pair " << pair;
    }
  }
}

TEST(Lipschitz, ZerosAndCircularBlurAreNonExpansive) {
  EXPECT_EQ(make_op("gaussian_blur", blur_params(13, 1.5, "zeros"))->lipschitz(), 1.0);
  EXPECT_EQ(make_op("gaussian_blur", blur_params(13, 1.5, "circular"))->lipschitz(), 1.0);
  EXPECT_DOUBLE_EQ(*make_op("downsample", {{"factor", int64_t{4}}})->lipschitz(), 0.25);
}

TEST(Lipschitz, BlurBoundHoldsForTheWorstCaseSignal) {
  torch::manual_seed(8);
  struct Case {
    int64_t size;
    double sigma;
    std::string padding;
    std::vector<int64_t> shape;
    bool worst_size;  // the image size whose norm is the largest: the bound must be attained
  };
  // Small images, where the two borders overlap, give the largest norms; large ones check that
  // the bound also covers sizes beyond those the plugin scans.
  const std::vector<Case> cases = {
      {13, 1.5, "reflect", {1, 1, 7, 7}, true},       {9, 0.8, "reflect", {1, 1, 5, 5}, true},
      {13, 1.5, "replicate", {1, 1, 3, 3}, true},     {11, 3.0, "replicate", {1, 1, 4, 4}, true},
      {31, 20.0, "replicate", {1, 1, 11, 11}, true},  {13, 3.0, "circular", {1, 1, 5, 7}, true},
      {13, 1.5, "reflect", {1, 1, 16, 16}, false},    {13, 1.5, "reflect", {1, 1, 7, 13}, false},
      {13, 1.5, "reflect", {1, 1, 120, 97}, false},   {21, 10.0, "reflect", {1, 1, 11, 11}, false},
      {13, 1.5, "replicate", {1, 1, 8, 8}, false},    {31, 20.0, "replicate", {1, 1, 2, 5}, false},
      {101, 100.0, "replicate", {1, 1, 20, 20}, false}, {101, 5.0, "reflect", {1, 1, 51, 51}, false},
      {13, 1.5, "zeros", {1, 1, 9, 9}, false},
  };
  for (const auto& c : cases) {
    const auto op = make_op("gaussian_blur", blur_params(c.size, c.sigma, c.padding));
    const double bound = *op->lipschitz();
    const double norm = power_norm(*op, c.shape, 60);
    std::ostringstream label;
    label << c.padding << " size " << c.size << " sigma " << c.sigma << " on " << c.shape << ": norm " << norm
          << ", bound " << bound;
    EXPECT_LE(norm, bound * (1 + 1e-9)) << label.str();
    if (c.worst_size) {
      EXPECT_LE(bound, norm * (1 + 1e-4)) << label.str() << " (bound not tight)";
    }
    if (c.padding != "zeros") {
      EXPECT_GE(norm, 1 - 1e-9) << label.str() << " (constant images keep their norm)";
    }
  }
}

// ---- gaussian noise ----

TEST(GaussianNoise, SeededSamplesAreReproducible) {
  const auto noise = make_noise("gaussian", {{"sigma", 0.1}});
  const torch::Tensor ax = randn({2, 3, 8, 8});
  const torch::Tensor a = noise->sample(ax, seeded(42));
  const torch::Tensor b = noise->sample(ax, seeded(42));
  const torch::Tensor c = noise->sample(ax, seeded(43));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_EQ(a.scalar_type(), torch::kDouble);
  EXPECT_EQ(noise->sample(ax.to(torch::kFloat), seeded(42)).scalar_type(), torch::kFloat);
  EXPECT_EQ(noise->sample(ax, c10::nullopt).sizes(), ax.sizes());
}

TEST(GaussianNoise, SampleHasTheRequestedSpread) {
  const double sigma = 0.05;
  const auto noise = make_noise("gaussian", {{"sigma", sigma}});
  const torch::Tensor ax = torch::linspace(-1, 1, 1000000, torch::kDouble).view({4, 1, 500, 500});
  const torch::Tensor e = noise->sample(ax, seeded(7)) - ax;
  EXPECT_NEAR(e.std().item<double>(), sigma, 0.02 * sigma);
  EXPECT_LT(std::abs(e.mean().item<double>()), 5 * sigma / 1000);
}

TEST(GaussianNoise, NllIsTheGaussianFormula) {
  torch::manual_seed(9);
  const double sigma = 0.2;
  const auto noise = make_noise("gaussian", {{"sigma", sigma}});
  const torch::Tensor ax = randn({3, 2, 4, 5});
  const torch::Tensor y = ax + sigma * randn({3, 2, 4, 5});
  const torch::Tensor nll = noise->nll(y, ax);
  expect_sum_per_value(nll, y, ax, [&](double yv, double av) {
    const double r = yv - av;
    return r * r / (2 * sigma * sigma) + 0.5 * std::log(2 * kPi * sigma * sigma);
  }, 1e-10);
}

TEST(GaussianNoise, NllRejectsMismatchedShapes) {
  const auto noise = make_noise("gaussian");
  expect_error<monge::Error>([&] { noise->nll(randn({2, 1, 4, 4}), randn({2, 1, 4, 5})); },
                             {"same shape", "[2, 1, 4, 4]", "[2, 1, 4, 5]"});
}

}  // namespace
