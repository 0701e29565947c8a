// The built-in network plugins (unet: the map T; potential: the potential v), loaded through the
// registry like the host loads them: shapes, initialisation, gradients, parameter counts against
// the architecture, the receptive radius against the actual dependency of outputs on inputs, and
// a short training run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "host/core/cpu_features.hpp"
#include "host/core/precision.hpp"
#include "host/core/registry.hpp"
#include "monge/network.hpp"
#include "monge/sdk.hpp"

namespace {

using monge::host::Registry;
namespace F = torch::nn::functional;

Registry& registry() {
  static Registry* reg = [] {
    auto* r = new Registry(Registry::default_dirs(false));
    r->scan();
    return r;
  }();
  return *reg;
}

std::shared_ptr<monge::Network> make_net(const std::string& name, const monge::ParamMap& params = {}) {
  auto net = std::dynamic_pointer_cast<monge::Network>(registry().create(name, params, monge::Kind::Network));
  if (!net) throw std::runtime_error(name + " did not create a Network");
  return net;
}

monge::NetworkShape shape(int64_t in, int64_t out, int64_t scale = 1) {
  monge::NetworkShape s;
  s.in_channels = in;
  s.out_channels = out;
  s.scale = scale;
  return s;
}

int64_t count_params(monge::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// Parameters of a k x k convolution with bias.
int64_t conv(int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; }
int64_t width(int64_t c, int64_t level) { return std::min<int64_t>(c << level, std::max<int64_t>(c, 1024)); }

// The unet as documented: stem; per level two 3x3 convs and a stride-2 3x3 conv; two bottleneck
// convs; per level an up conv (after nearest x2), then two 3x3 convs on the concatenation; 1x1 out.
int64_t unet_params(int64_t in, int64_t out, int64_t c, int64_t depth) {
  int64_t n = conv(in, c, 3);
  for (int64_t l = 0; l < depth; ++l) {
    const int64_t w = width(c, l), w2 = width(c, l + 1);
    n += 2 * conv(w, w, 3) + conv(w, w2, 3);      // encoder + down
    n += conv(w2, w, 3) + conv(2 * w, w, 3) + conv(w, w, 3);  // up + decoder
  }
  n += 2 * conv(width(c, depth), width(c, depth), 3);
  n += conv(c, out, 1);
  return n;
}

// The potential as documented: stem; per stage a 3x3 conv and a stride-2 3x3 conv; linear head.
int64_t potential_params(int64_t in, int64_t c, int64_t depth) {
  int64_t n = conv(in, c, 3);
  for (int64_t l = 0; l < depth; ++l) n += conv(width(c, l), width(c, l), 3) + conv(width(c, l), width(c, l + 1), 3);
  return n + width(c, depth) + 1;
}

monge::ParamMap unet_small(bool residual, int64_t depth = 2, int64_t channels = 8) {
  return {{"channels", channels}, {"depth", depth}, {"residual", residual}};
}

// Every parameter gets a defined gradient, and at least 90% of the tensors a nonzero one.
void expect_gradients_flow(monge::Module& m, const torch::Tensor& x) {
  m.zero_grad();
  m.forward(x).sum().backward();
  int64_t total = 0, nonzero = 0;
  for (const auto& p : m.named_parameters()) {
    ++total;
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " has no gradient";
    if (p.value().grad().abs().max().item<double>() > 0) ++nonzero;
    else std::cout << "  zero gradient: " << p.key() << "\n";
  }
  EXPECT_GT(total, 0);
  EXPECT_GE(nonzero * 10, total * 9) << nonzero << " of " << total << " parameter tensors have a nonzero gradient";
}

TEST(UNet, OutputShapes) {
  torch::manual_seed(0);
  for (int64_t c : {1, 3})
    for (bool residual : {true, false})
      for (int64_t depth : {1, 2, 3})
        for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{27, 31}, {28, 28}, {5, 3}}) {
          auto m = make_net("unet", unet_small(residual, depth))->build(shape(c, c));
          const auto y = m->forward(torch::randn({2, c, hw.first, hw.second}));
          EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, c, hw.first, hw.second}))
              << "c=" << c << " depth=" << depth << " " << hw.first << "x" << hw.second;
        }
  // Different output channels without the residual.
  auto m = make_net("unet", unet_small(false))->build(shape(3, 1));
  EXPECT_EQ(m->forward(torch::randn({2, 3, 27, 31})).sizes(), (std::vector<int64_t>{2, 1, 27, 31}));
}

TEST(UNet, PadsToMultipleAndCrops) {
  // A 27x31 input gives the 28x32 output of its replicate-padded version, cropped.
  torch::manual_seed(1);
  auto m = make_net("unet", unet_small(false))->build(shape(1, 1));
  const auto x = torch::randn({2, 1, 27, 31});
  const auto padded = F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kReplicate));
  const auto want = m->forward(padded).narrow(2, 0, 27).narrow(3, 0, 31);
  EXPECT_LT((m->forward(x) - want).abs().max().item<double>(), 1e-6);
}

// monge::PaddedInput: an image in the corner of a larger zero-padded input gives the output of the
// image alone (what lets apply round window sizes to reuse compiled kernels). Without the zeroing
// after each layer it would not: the test shows that too.
TEST(UNet, PaddedInputGivesTheImageAlonesOutput) {
  torch::NoGradGuard no_grad;
  for (int64_t depth : {1, 2, 3}) {
    auto net = make_net("unet", unet_small(false, depth));
    const auto* padded = monge::capability<monge::PaddedInput>(*net);
    ASSERT_NE(padded, nullptr);
    ASSERT_NE(padded->forward, nullptr);
    torch::manual_seed(2 + depth);
    auto m = net->build(shape(2, 1));
    {
      // Random biases too (they start at zero): what leaks past the image edge would show.
      for (auto& p : m->parameters()) p.normal_(0, p.dim() > 1 ? 1.0 / std::sqrt(double(p[0].numel())) : 0.3);
    }
    const int64_t step = 32;
    for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{27, 31}, {32, 20}, {5, 3}, {64, 64}, {33, 47}}) {
      const int64_t h = hw.first, w = hw.second;
      const int64_t H = (h + step - 1) / step * step + step, W = (w + step - 1) / step * step;
      const auto x = torch::randn({2, 2, h, w});
      const auto big = F::pad(x, F::PadFuncOptions({0, W - w, 0, H - h}));
      const auto want = m->forward(x);
      const auto got = padded->forward(*m, big, h, w);
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 1, H, W}));
      const std::string what = "depth " + std::to_string(depth) + ", " + std::to_string(h) + " x " + std::to_string(w);
      EXPECT_LT((got.narrow(2, 0, h).narrow(3, 0, w) - want).abs().max().item<double>(), 1e-5) << what;
      // In channels-last too.
      const auto got_nhwc = padded->forward(*m, big.contiguous(at::MemoryFormat::ChannelsLast), h, w);
      EXPECT_LT((got_nhwc.narrow(2, 0, h).narrow(3, 0, w) - want).abs().max().item<double>(), 1e-5) << what;
      // The plain forward of the padded input differs near the image's edges.
      EXPECT_GT((m->forward(big).narrow(2, 0, h).narrow(3, 0, w) - want).abs().max().item<double>(), 1e-3) << what;
    }
    // Inputs that do not hold the image on the network's grid are refused.
    EXPECT_THROW(padded->forward(*m, torch::zeros({1, 2, 31, 32}), 27, 31), monge::Error);
    EXPECT_THROW(padded->forward(*m, torch::zeros({1, 2, 32, 32}), 40, 31), monge::Error);
  }
  // Only modules the plugin built.
  auto other = make_net("potential")->build(shape(1, 1));
  const auto* padded = monge::capability<monge::PaddedInput>(*make_net("unet"));
  EXPECT_THROW(padded->forward(*other, torch::zeros({1, 1, 32, 32}), 20, 20), monge::Error);
}

// A forward of `m` under bf16 autocast on the CPU without gradients, as `monge apply --precision
// bf16` runs it: through the plugin's fused oneDNN graph, or (onednn false: MONGE_ONEDNN=0) op by
// op through LibTorch.
struct OneDnnSwitch {
  explicit OneDnnSwitch(bool on) { setenv("MONGE_ONEDNN", on ? "1" : "0", 1); }
  ~OneDnnSwitch() { unsetenv("MONGE_ONEDNN"); }
};

at::Tensor bf16_forward(const std::function<at::Tensor()>& forward, bool onednn) {
  torch::NoGradGuard no_grad;
  OneDnnSwitch onednn_switch(onednn);
  monge::host::PrecisionGuard bf16(monge::host::Precision::BF16, torch::kCPU);
  return forward().to(at::kFloat);
}

// Where LibTorch has no bf16 convolutions at all (oneDNN below AVX-512), a bf16 forward fails
// with LibTorch's error, and the plugin's graph changes nothing about that.
bool bf16_refused_here(monge::Module& m) {
  if (monge::host::cpu_bf16_kernels()) return false;
  const auto x = torch::randn({1, 1, 16, 16});
  EXPECT_THROW(bf16_forward([&] { return m.forward(x); }, true), std::exception);
  EXPECT_THROW(bf16_forward([&] { return m.forward(x); }, false), std::exception);
  return true;
}

void randomise(monge::Module& m) {
  torch::NoGradGuard no_grad;
  // Random biases too (they start at zero), and a last layer that is not zero (residual maps).
  for (auto& p : m.parameters()) p.normal_(0, p.dim() > 1 ? 1.0 / std::sqrt(double(p[0].numel())) : 0.3);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(UNet, Bf16InferenceRunsOneFusedOneDnnGraphAsCloseToFp32AsLibTorch) {
  torch::manual_seed(11);
  struct Case {
    std::string activation;
    int64_t depth, channels, in, out;
    bool residual, channels_last;
  };
  const std::vector<Case> cases{{"silu", 2, 8, 1, 1, true, false},       {"silu", 1, 8, 3, 3, true, true},
                                {"relu", 3, 4, 2, 1, true, false},       {"leaky_relu", 2, 8, 1, 2, false, false},
                                {"silu", 3, 16, 1, 1, true, true}};
  for (const Case& c : cases) {
    monge::ParamMap params = unet_small(c.residual, c.depth, c.channels);
    params["activation"] = c.activation;
    auto m = make_net("unet", params)->build(shape(c.in, c.out));
    randomise(*m);
    if (bf16_refused_here(*m)) return;
    at::Tensor x = torch::randn({2, c.in, 45, 70});
    if (c.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const std::string what = c.activation + ", depth " + std::to_string(c.depth) + ", " + std::to_string(c.channels) +
                             " channels, " + std::to_string(c.in) + " -> " + std::to_string(c.out);
    at::Tensor fp32;
    {
      torch::NoGradGuard no_grad;
      fp32 = m->forward(x);
    }
    const at::Tensor fused = bf16_forward([&] { return m->forward(x); }, true);
    const at::Tensor libtorch = bf16_forward([&] { return m->forward(x); }, false);
    ASSERT_EQ(fused.sizes(), fp32.sizes()) << what;
    const double fused_error = max_diff(fused, fp32), libtorch_error = max_diff(libtorch, fp32);
    // bf16 is not fp32; the fused graph rounds once per layer where LibTorch rounds after each op.
    EXPECT_GT(libtorch_error, 0.0) << what;
    EXPECT_LE(fused_error, 1.5 * libtorch_error) << what << ": fused " << fused_error << ", LibTorch " << libtorch_error;
    // Not LibTorch's result: the graph ran (oneDNN has bf16 kernels wherever LibTorch has them).
    EXPECT_GT(max_diff(fused, libtorch), 0.0) << what << ": the fused graph did not run";
    if (c.activation != "silu") continue;
    // SiLU as oneDNN's exact post-op (MONGE_ONEDNN_SWISH=onednn, read when a module plans a
    // shape) rather than the plugin's AVX-512 pass: as close to fp32, not the same bits.
    auto exact = make_net("unet", params)->build(shape(c.in, c.out));
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < m->parameters().size(); ++i) exact->parameters()[i].copy_(m->parameters()[i]);
    }
    setenv("MONGE_ONEDNN_SWISH", "onednn", 1);
    const at::Tensor post_op = bf16_forward([&] { return exact->forward(x); }, true);
    unsetenv("MONGE_ONEDNN_SWISH");
    EXPECT_LE(max_diff(post_op, fp32), 1.5 * libtorch_error) << what;
    EXPECT_GT(max_diff(post_op, libtorch), 0.0) << what;
  }
}

TEST(UNet, FusedBf16GraphZeroesBeyondAPaddedImageAndFollowsNewWeights) {
  torch::manual_seed(12);
  auto net = make_net("unet", unet_small(true, 2));
  const auto* padded = monge::capability<monge::PaddedInput>(*net);
  ASSERT_NE(padded, nullptr);
  auto m = net->build(shape(1, 1));
  randomise(*m);
  if (bf16_refused_here(*m)) return;
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{27, 31}, {64, 40}, {5, 3}}) {
    const int64_t h = hw.first, w = hw.second, H = 96, W = 64;
    const auto x = torch::randn({1, 1, h, w});
    const auto big = F::pad(x, F::PadFuncOptions({0, W - w, 0, H - h}));
    const at::Tensor alone = bf16_forward([&] { return m->forward(x); }, true);
    const at::Tensor in_corner = bf16_forward([&] { return padded->forward(*m, big, h, w); }, true);
    const at::Tensor unzeroed = bf16_forward([&] { return m->forward(big); }, true);
    const std::string what = std::to_string(h) + " x " + std::to_string(w);
    ASSERT_EQ(in_corner.sizes(), (std::vector<int64_t>{1, 1, H, W})) << what;
    // The same image, the same kernels' arithmetic: equal up to the order of a few sums.
    EXPECT_LT(max_diff(in_corner.narrow(2, 0, h).narrow(3, 0, w), alone), 1e-5) << what;
    EXPECT_GT(max_diff(unzeroed.narrow(2, 0, h).narrow(3, 0, w), alone), 1e-3) << what;
  }
  // Weights changed in place after a call (a training step, EMA weights loaded): the next call
  // uses them, not the weights the graph reordered before.
  const auto x = torch::randn({1, 1, 40, 40});
  const at::Tensor before = bf16_forward([&] { return m->forward(x); }, true);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : m->parameters()) p.mul_(-0.5);
  }
  const at::Tensor after = bf16_forward([&] { return m->forward(x); }, true);
  const at::Tensor libtorch = bf16_forward([&] { return m->forward(x); }, false);
  at::Tensor fp32;
  {
    torch::NoGradGuard no_grad;
    fp32 = m->forward(x);
  }
  EXPECT_GT(max_diff(after, before), 1e-2);
  EXPECT_LE(max_diff(after, fp32), 1.5 * max_diff(libtorch, fp32));
  // With gradients recorded (training), the forward is LibTorch's, whatever the precision.
  at::Tensor trained;
  {
    OneDnnSwitch onednn_switch(true);
    monge::host::PrecisionGuard bf16(monge::host::Precision::BF16, torch::kCPU);
    trained = m->forward(x);
  }
  EXPECT_TRUE(trained.requires_grad());
  EXPECT_EQ(max_diff(trained.detach().to(at::kFloat), libtorch), 0.0);
}

TEST(UNet, ResidualIsIdentityAtInit) {
  torch::manual_seed(2);
  for (int64_t c : {1, 3}) {
    auto m = make_net("unet", unet_small(true))->build(shape(c, c));
    for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{27, 31}, {28, 28}}) {
      const auto x = torch::randn({2, c, hw.first, hw.second});
      EXPECT_LT((m->forward(x) - x).abs().max().item<double>(), 1e-6);
    }
  }
  // The defaults are residual too.
  auto m = make_net("unet")->build(shape(1, 1));
  const auto x = torch::randn({1, 1, 20, 20});
  EXPECT_LT((m->forward(x) - x).abs().max().item<double>(), 1e-6);
}

TEST(UNet, NonResidualHasNonzeroOutput) {
  torch::manual_seed(3);
  auto m = make_net("unet", unet_small(false))->build(shape(1, 1));
  const auto y = m->forward(torch::randn({2, 1, 28, 28}));
  EXPECT_GT(y.abs().max().item<double>(), 1e-4);
}

TEST(UNet, GradientsFlowToEveryParameter) {
  torch::manual_seed(4);
  for (bool residual : {true, false})
    for (const std::string act : {"silu", "relu", "leaky_relu"}) {
      SCOPED_TRACE(std::string(residual ? "residual " : "plain ") + act);
      auto params = unet_small(residual);
      params["activation"] = act;
      auto m = make_net("unet", params)->build(shape(1, 1));
      const auto x = torch::randn({2, 1, 27, 31});
      if (residual) {
        // At init the zero out conv blocks the gradient to everything before it; its own weight
        // gets one. After one step the gradient reaches every layer.
        m->zero_grad();
        m->forward(x).sum().backward();
        for (const auto& p : m->named_parameters()) ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(m->named_parameters()["out.weight"].grad().abs().max().item<double>(), 0);
        torch::optim::SGD(m->parameters(), torch::optim::SGDOptions(1e-2)).step();
      }
      expect_gradients_flow(*m, x);
    }
}

TEST(UNet, ParameterCounts) {
  torch::manual_seed(5);
  for (int64_t in : {1, 3})
    for (int64_t depth : {1, 2, 3, 5})
      for (int64_t c : {4, 8, 32}) {
        if (depth == 5 && c == 32) continue;  // 50M parameters: slow to initialise
        auto m = make_net("unet", {{"channels", c}, {"depth", depth}})->build(shape(in, in));
        EXPECT_EQ(count_params(*m), unet_params(in, in, c, depth)) << "in=" << in << " depth=" << depth << " c=" << c;
      }
  auto def = make_net("unet")->build(shape(1, 1));
  std::cout << "unet defaults, 1 channel: " << count_params(*def) << " parameters\n";
  EXPECT_EQ(count_params(*def), 710913);
  auto c16 = make_net("unet", {{"channels", int64_t(16)}})->build(shape(1, 1));
  std::cout << "unet channels = 16, 1 channel: " << count_params(*c16) << " parameters\n";
  EXPECT_EQ(count_params(*c16), 178049);
}

TEST(UNet, DeterministicInitGivenSeed) {
  auto net = make_net("unet", unet_small(false));
  torch::manual_seed(42);
  auto a = net->build(shape(1, 1));
  torch::manual_seed(42);
  auto b = net->build(shape(1, 1));
  const auto pa = a->parameters(), pb = b->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
}

// The receptive radius against the network. On an input whose side is a multiple of 2^depth (no
// replicate padding) and at output pixels whose whole window [p - r, p + r]^2 lies inside the
// image (no zero padding reached), for one output pixel per phase (position modulo 2^depth, on
// the diagonal: the dependency window is a product of one interval per axis):
//  - the gradient of the output pixel is exactly zero at every input pixel farther than r
//    (Chebyshev distance), and nonzero at some pixel exactly r away for some phase (the bound is
//    attained up/left; down/right the window reaches r - (2^depth - 1): 11, 27, 59 for depth 1..3,
//    because nearest upsampling maps fine index j to floor(j / 2));
//  - changing every input pixel farther than r leaves the output pixel bit-for-bit unchanged;
//  - (depth 1 and 2) changing the pixels exactly r away changes it for some phase.
// Double precision: the farthest inputs reach the output only through corner taps of every conv,
// a contribution of about 1e-9 (depth 2) to 1e-14 (depth 3) of the output with random weights.
TEST(UNet, ReceptiveRadiusIsExactBound) {
  torch::manual_seed(6);
  for (int64_t depth : {1, 2, 3}) {
    SCOPED_TRACE("depth " + std::to_string(depth));
    auto net = make_net("unet", {{"channels", int64_t(4)}, {"depth", depth}, {"residual", false}});
    const int64_t r = net->receptive_radius();
    EXPECT_TRUE(net->tileable());
    auto m = net->build(shape(1, 1));
    for (auto& p : m->parameters()) p.set_data(p.data().to(torch::kDouble));
    const int64_t period = int64_t(1) << depth;
    const int64_t size = (2 * r + period + period - 1) / period * period;
    const int64_t p0 = r;  // first output pixel whose window lies in the image
    ASSERT_LE(p0 + period - 1 + r, size - 1);
    const auto ii = torch::arange(size, torch::kLong).view({size, 1});
    const auto jj = torch::arange(size, torch::kLong).view({1, size});

    // Gradients: one sample per phase, output pixel (p, p) with p = p0 + phase.
    const auto x = torch::randn({period, 1, size, size}, torch::kDouble);
    const auto xg = x.clone().requires_grad_(true);
    const auto y = m->forward(xg);
    torch::Tensor picked = torch::zeros({}, torch::kDouble);
    for (int64_t k = 0; k < period; ++k) picked = picked + y[k][0][p0 + k][p0 + k];
    const auto g = torch::autograd::grad({picked}, {xg})[0];
    int64_t reach_lo = 0, reach_hi = 0;
    for (int64_t k = 0; k < period; ++k) {
      const int64_t p = p0 + k;
      const auto dep = g[k][0].abs() > 0;
      const auto dist = torch::max((ii - p).abs(), (jj - p).abs());
      EXPECT_FALSE(dep.logical_and(dist > r).any().item<bool>()) << "phase " << k << ": gradient beyond the radius";
      for (const auto& idx : {dep.any(1).nonzero().flatten(), dep.any(0).nonzero().flatten()}) {
        ASSERT_GT(idx.numel(), 0);
        reach_lo = std::max(reach_lo, p - idx.min().item<int64_t>());
        reach_hi = std::max(reach_hi, idx.max().item<int64_t>() - p);
      }
    }
    std::cout << "depth " << depth << ": receptive_radius() = " << r << ", measured reach " << reach_lo
              << " up/left, " << reach_hi << " down/right\n";
    EXPECT_EQ(std::max(reach_lo, reach_hi), r) << "the radius is not attained";
    if (depth == 3) continue;  // the perturbations below are too slow at 144 x 144 in double

    // Perturbations, all in one batch: [base, far changed, ring changed] per phase.
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> batch;
    for (int64_t k = 0; k < period; ++k) {
      const int64_t p = p0 + k;
      const auto dist = torch::max((ii - p).abs(), (jj - p).abs());
      const auto noise = torch::randn({1, size, size}, torch::kDouble);
      batch.push_back(x[k]);
      batch.push_back(x[k] + 10.0 * (dist > r).to(torch::kDouble) * noise);
      batch.push_back(x[k] + 10.0 * (dist == r).to(torch::kDouble) * noise);
    }
    const auto out = m->forward(torch::stack(batch));
    bool ring_changes = false;
    for (int64_t k = 0; k < period; ++k) {
      const int64_t p = p0 + k;
      const double base = out[3 * k][0][p][p].item<double>();
      EXPECT_EQ(out[3 * k + 1][0][p][p].item<double>(), base) << "phase " << k << ": changed by an input beyond the radius";
      if (out[3 * k + 2][0][p][p].item<double>() != base) ring_changes = true;
    }
    EXPECT_TRUE(ring_changes) << "no output pixel depends on an input exactly at the radius";
  }
  // The defaults.
  EXPECT_EQ(make_net("unet")->receptive_radius(), 30);
}

TEST(UNet, ScaleIsRefused) {
  auto net = make_net("unet");
  try {
    net->build(shape(1, 1, 2));
    ADD_FAILURE() << "expected an exception";
  } catch (const monge::Error& e) {
    EXPECT_EQ(std::string(e.what()), "unet: scale factors are not supported; lift the measurement first (operator:lift)");
  }
}

TEST(UNet, ResidualNeedsEnoughInputChannels) {
  EXPECT_THROW(make_net("unet")->build(shape(1, 3)), monge::ParamError);
  EXPECT_NO_THROW(make_net("unet", {{"residual", false}})->build(shape(1, 3)));
}

// A stochastic map's extra input channels (z) are not added to the output: at initialisation the
// residual network returns the first output-many input channels exactly.
TEST(UNet, ResidualAddsOnlyTheLeadingChannels) {
  auto m = make_net("unet", unet_small(true))->build(shape(3, 1));
  const auto x = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(torch::allclose(m->forward(x), x.narrow(1, 0, 1)));
}

TEST(UNet, WrongInputChannelsIsAnError) {
  auto m = make_net("unet", unet_small(true))->build(shape(1, 1));
  EXPECT_THROW(m->forward(torch::randn({1, 3, 16, 16})), monge::Error);
}

// 30 Adam steps on a fixed blurred -> sharp toy batch halve the mean squared error at least.
TEST(UNet, TrainsOnToyDeblurring) {
  torch::manual_seed(7);
  auto m = make_net("unet", unet_small(false))->build(shape(1, 1));
  // Sharp: piecewise constant blocks; blurred: 3x3 box blur of it.
  const auto sharp = F::interpolate(torch::rand({8, 1, 4, 4}),
                                    F::InterpolateFuncOptions().size(std::vector<int64_t>{16, 16}).mode(torch::kNearest));
  const auto blurred = F::avg_pool2d(F::pad(sharp, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate)),
                                     F::AvgPool2dFuncOptions(3).stride(1));
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    const auto loss = (m->forward(blurred) - sharp).pow(2).mean();
    if (step == 0) first = loss.item<double>();
    loss.backward();
    opt.step();
  }
  {
    torch::NoGradGuard no_grad;
    last = (m->forward(blurred) - sharp).pow(2).mean().item<double>();
  }
  std::cout << "toy deblurring MSE: " << first << " -> " << last << " after 30 Adam steps\n";
  EXPECT_LT(last, 0.5 * first);
}

TEST(Networks, NoNormalisationModules) {
  std::vector<std::shared_ptr<monge::Module>> modules = {
      make_net("unet")->build(shape(1, 1)), make_net("unet", {{"depth", int64_t(5)}, {"channels", int64_t(4)}})->build(shape(3, 3)),
      make_net("potential")->build(shape(1, 1))};
  for (const auto& m : modules) {
    int64_t n = 0;
    for (const auto& sub : m->named_modules()) {
      ++n;
      const std::string type = sub.value()->name();
      EXPECT_EQ(type.find("Norm"), std::string::npos) << sub.key() << " is " << type;
      EXPECT_EQ(sub.key().find("norm"), std::string::npos) << sub.key() << " is " << type;
      EXPECT_EQ(type.find("Dropout"), std::string::npos) << sub.key() << " is " << type;
    }
    EXPECT_GT(n, 3);
  }
}

TEST(Potential, OutputIsOneRealPerSample) {
  torch::manual_seed(8);
  for (int64_t c : {1, 3}) {
    auto net = make_net("potential", {{"channels", int64_t(8)}});
    EXPECT_EQ(net->receptive_radius(), -1);
    EXPECT_FALSE(net->tileable());
    auto m = net->build(shape(c, 1));
    for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{28, 28}, {64, 64}, {27, 31}, {3, 5}}) {
      const auto y = m->forward(torch::randn({4, c, hw.first, hw.second}));
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{4})) << hw.first << "x" << hw.second;
      EXPECT_GT((y - y[0]).abs().max().item<double>(), 1e-7) << "same value for different samples";
    }
  }
}

TEST(Potential, SamplesAreIndependent) {
  // No statistics across the batch: a sample's value does not depend on the others.
  torch::manual_seed(9);
  auto m = make_net("potential", {{"channels", int64_t(8)}})->build(shape(1, 1));
  const auto x = torch::randn({4, 1, 28, 28});
  const auto all = m->forward(x);
  const auto one = m->forward(x.narrow(0, 2, 1));
  EXPECT_LT((all[2] - one[0]).abs().item<double>(), 1e-5);
}

TEST(Potential, GradientsFlowAndCounts) {
  torch::manual_seed(10);
  for (const std::string act : {"leaky_relu", "silu"}) {
    auto m = make_net("potential", {{"channels", int64_t(8)}, {"activation", act}})->build(shape(1, 1));
    expect_gradients_flow(*m, torch::randn({3, 1, 28, 28}));
  }
  for (int64_t in : {1, 3})
    for (int64_t depth : {1, 3, 4})
      for (int64_t c : {4, 8, 32}) {
        auto m = make_net("potential", {{"channels", c}, {"depth", depth}})->build(shape(in, 1));
        EXPECT_EQ(count_params(*m), potential_params(in, c, depth));
      }
  auto def = make_net("potential")->build(shape(1, 1));
  std::cout << "potential defaults, 1 channel: " << count_params(*def) << " parameters\n";
  EXPECT_EQ(count_params(*def), 581857);
}

}  // namespace
