// unet: the map T, a U-Net from the lifted measurement Q(y) to the signal, optionally residual
// (T(x) = x + net(x), with the last 1x1 convolution zero-initialised so that T starts as the
// identity). No normalisation layers: every output pixel depends only on a bounded window of
// input pixels (receptive_radius()), so the map can be applied tile by tile.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/network.hpp"
#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

namespace nn = torch::nn;
namespace F = torch::nn::functional;

struct UNetConfig {
  int64_t channels = 32;
  int64_t depth = 2;
  bool residual = true;
  std::string activation = "silu";
};

// Width of level l (resolution 2^-l): channels * 2^l, capped at 1024 (but never below channels).
int64_t level_width(const UNetConfig& c, int64_t level) {
  const int64_t cap = std::max<int64_t>(c.channels, 1024);
  int64_t w = c.channels;
  for (int64_t i = 0; i < level && w < cap; ++i) w = std::min(cap, w * 2);
  return w;
}

nn::Conv2d conv3(int64_t in, int64_t out, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).padding_mode(torch::kZeros));
}

class UNetModule final : public monge::Module {
 public:
  UNetModule(const UNetConfig& c, int64_t in_channels, int64_t out_channels)
      : cfg_(c), in_channels_(in_channels) {
    const int64_t d = c.depth;
    stem_ = register_module("stem", conv3(in_channels, level_width(c, 0)));
    for (int64_t l = 0; l < d; ++l) {
      const int64_t w = level_width(c, l);
      const std::string s = std::to_string(l);
      enc_a_.push_back(register_module("enc" + s + "_conv1", conv3(w, w)));
      enc_b_.push_back(register_module("enc" + s + "_conv2", conv3(w, w)));
      down_.push_back(register_module("down" + s, conv3(w, level_width(c, l + 1), 2)));
    }
    const int64_t wb = level_width(c, d);
    mid_a_ = register_module("mid_conv1", conv3(wb, wb));
    mid_b_ = register_module("mid_conv2", conv3(wb, wb));
    up_.resize(d, nn::Conv2d(nullptr));
    dec_a_.resize(d, nn::Conv2d(nullptr));
    dec_b_.resize(d, nn::Conv2d(nullptr));
    for (int64_t l = d - 1; l >= 0; --l) {
      const int64_t w = level_width(c, l);
      const std::string s = std::to_string(l);
      up_[l] = register_module("up" + s, conv3(level_width(c, l + 1), w));
      dec_a_[l] = register_module("dec" + s + "_conv1", conv3(2 * w, w));
      dec_b_[l] = register_module("dec" + s + "_conv2", conv3(w, w));
    }
    out_ = register_module("out", nn::Conv2d(nn::Conv2dOptions(level_width(c, 0), out_channels, 1)));
    if (c.residual) {
      torch::NoGradGuard no_grad;
      out_->weight.zero_();
      out_->bias.zero_();
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    if (x.dim() != 4 || x.size(1) != in_channels_)
      throw monge::Error("unet: expected an N x " + std::to_string(in_channels_) + " x H x W tensor, got " +
                         shape_text(x.sizes()));
    const int64_t h = x.size(2), w = x.size(3);
    const int64_t m = int64_t(1) << cfg_.depth;
    const int64_t ph = (m - h % m) % m, pw = (m - w % m) % m;
    at::Tensor input = x;
    if (ph != 0 || pw != 0)
      input = F::pad(x, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));

    at::Tensor t = stem_->forward(input);
    std::vector<at::Tensor> skips;
    for (int64_t l = 0; l < cfg_.depth; ++l) {
      t = act(enc_a_[l]->forward(t));
      t = act(enc_b_[l]->forward(t));
      skips.push_back(t);
      t = down_[l]->forward(t);
    }
    t = act(mid_a_->forward(t));
    t = act(mid_b_->forward(t));
    for (int64_t l = cfg_.depth - 1; l >= 0; --l) {
      t = F::interpolate(t, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
      t = up_[l]->forward(t);
      t = torch::cat({skips[l], t}, 1);
      t = act(dec_a_[l]->forward(t));
      t = act(dec_b_[l]->forward(t));
    }
    t = out_->forward(t);
    // Residual on the first output-many channels: extra inputs (a stochastic map's z) are not added.
    if (cfg_.residual) t = t + (in_channels_ == t.size(1) ? input : input.narrow(1, 0, t.size(1)));
    if (ph != 0 || pw != 0) t = t.narrow(2, 0, h).narrow(3, 0, w);
    return t;
  }

 private:
  at::Tensor act(const at::Tensor& t) const {
    if (cfg_.activation == "relu") return torch::relu(t);
    if (cfg_.activation == "leaky_relu") return torch::leaky_relu(t, 0.2);
    return torch::silu(t);
  }

  UNetConfig cfg_;
  int64_t in_channels_;
  nn::Conv2d stem_{nullptr}, mid_a_{nullptr}, mid_b_{nullptr}, out_{nullptr};
  std::vector<nn::Conv2d> enc_a_, enc_b_, down_, up_, dec_a_, dec_b_;
};

class UNet final : public monge::Network {
 public:
  explicit UNet(const monge::Params& p) {
    cfg_.channels = p.integer("channels");
    cfg_.depth = p.integer("depth");
    cfg_.residual = p.boolean("residual");
    cfg_.activation = p.string("activation");
  }

  std::shared_ptr<monge::Module> build(const monge::NetworkShape& shape) const override {
    if (shape.scale != 1)
      throw monge::Error("unet: scale factors are not supported; lift the measurement first (operator:lift)");
    if (shape.in_channels < 1 || shape.out_channels < 1)
      throw monge::Error("unet: in_channels and out_channels must be positive, got " +
                         std::to_string(shape.in_channels) + " and " + std::to_string(shape.out_channels));
    if (cfg_.residual && shape.in_channels < shape.out_channels)
      throw monge::ParamError("unet: parameter 'residual' = true needs at least as many input as output channels, got " +
                              std::to_string(shape.in_channels) + " in and " + std::to_string(shape.out_channels) +
                              " out; set residual = false");
    return std::make_shared<UNetModule>(cfg_, shape.in_channels, shape.out_channels);
  }

  // Dependency window of one output pixel, tracked through the layers in full-resolution pixels:
  // a feature at index j of a level with stride s depends on inputs s*j + lo .. s*j + hi.
  // A 3x3 conv at stride s widens [lo, hi] by s on each side; the stride-2 conv does the same and
  // doubles s; nearest upsampling from stride 2s to s maps j to floor(j / 2), which moves lo by
  // -s for odd j; concatenation takes the union with the skip's window. The radius is
  // max(-lo, hi); for the defaults (depth 2) lo = -30, hi = 27.
  int64_t receptive_radius() const override {
    int64_t lo = 0, hi = 0, s = 1;
    auto conv = [&] { lo -= s, hi += s; };
    conv();  // stem
    std::vector<std::pair<int64_t, int64_t>> skips;
    for (int64_t l = 0; l < cfg_.depth; ++l) {
      conv(), conv();
      skips.emplace_back(lo, hi);
      conv(), s *= 2;  // stride-2 down conv
    }
    conv(), conv();  // bottleneck
    for (int64_t l = cfg_.depth - 1; l >= 0; --l) {
      s /= 2;
      lo -= s;  // nearest upsampling
      conv();   // up conv
      lo = std::min(lo, skips[l].first), hi = std::max(hi, skips[l].second);
      conv(), conv();
    }
    return std::max(-lo, hi);
  }

  bool tileable() const override { return true; }

  // depth stride-2 convolutions: feature grids line up with the image's only when a tile starts
  // at a multiple of 2^depth.
  int64_t tile_alignment() const override { return int64_t(1) << cfg_.depth; }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("channels", 32, 4, 512, "base width (channels at full resolution; doubles per level, capped at 1024)")
        .integer("depth", 2, 1, 5, "number of 2x downsamplings")
        .boolean("residual", true, "output = input + net(input) (the input's first output-many channels); the net's last conv starts at zero")
        .choice("activation", "silu", {"silu", "relu", "leaky_relu"}, "activation (leaky_relu slope 0.2)");
  }

 private:
  UNetConfig cfg_;
};

}  // namespace

MONGE_PLUGIN(UNet, network, "unet", "1.0.0", "U-Net map (optionally residual, identity at init)", UNet::schema())
