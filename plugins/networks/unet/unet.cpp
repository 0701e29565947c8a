// unet: the map T, a U-Net from the lifted measurement Q(y) to the signal, optionally residual
// (T(x) = x + net(x), with the last 1x1 convolution zero-initialised so that T starts as the
// identity). No normalisation layers: every output pixel depends only on a bounded window of
// input pixels (receptive_radius()), so the map can be applied tile by tile.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "monge/layers.hpp"
#include "monge/network.hpp"
#include "monge/sdk.hpp"
#include "monge/shape.hpp"
#include "onednn.hpp"

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

// Width of level l (resolution 2^-l): channels * 2^l, capped at 1024.
int64_t level_width(const UNetConfig& c, int64_t level) { return monge::doubling_width(c.channels, level); }

class UNetModule final : public monge::Module {
 public:
  UNetModule(const UNetConfig& c, int64_t in_channels, int64_t out_channels)
      : cfg_(c), in_channels_(in_channels) {
    const int64_t d = c.depth;
    stem_ = register_module("stem", monge::conv3x3(in_channels, level_width(c, 0)));
    for (int64_t l = 0; l < d; ++l) {
      const int64_t w = level_width(c, l);
      const std::string s = std::to_string(l);
      enc_a_.push_back(register_module("enc" + s + "_conv1", monge::conv3x3(w, w)));
      enc_b_.push_back(register_module("enc" + s + "_conv2", monge::conv3x3(w, w)));
      down_.push_back(register_module("down" + s, monge::conv3x3(w, level_width(c, l + 1), 2)));
    }
    const int64_t wb = level_width(c, d);
    mid_a_ = register_module("mid_conv1", monge::conv3x3(wb, wb));
    mid_b_ = register_module("mid_conv2", monge::conv3x3(wb, wb));
    up_.resize(d, nn::Conv2d(nullptr));
    dec_a_.resize(d, nn::Conv2d(nullptr));
    dec_b_.resize(d, nn::Conv2d(nullptr));
    for (int64_t l = d - 1; l >= 0; --l) {
      const int64_t w = level_width(c, l);
      const std::string s = std::to_string(l);
      up_[l] = register_module("up" + s, monge::conv3x3(level_width(c, l + 1), w));
      dec_a_[l] = register_module("dec" + s + "_conv1", monge::conv3x3(2 * w, w));
      dec_b_[l] = register_module("dec" + s + "_conv2", monge::conv3x3(w, w));
    }
    out_ = register_module("out", nn::Conv2d(nn::Conv2dOptions(level_width(c, 0), out_channels, 1)));
    if (c.residual) {
      torch::NoGradGuard no_grad;
      out_->weight.zero_();
      out_->bias.zero_();
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x);
    const at::Tensor input = on_grid(x);
    at::Tensor t = run(input, {});
    if (input.size(2) != x.size(2) || input.size(3) != x.size(3)) t = t.narrow(2, 0, x.size(2)).narrow(3, 0, x.size(3));
    return t;
  }

  // monge::PaddedInput: the image is the top-left height x width of x, zeros beyond. It is padded
  // as forward() pads it (replicating its last row and column up to a multiple of 2^depth), and
  // after every 3x3 convolution what lies beyond that padded image at the level's resolution is
  // zeroed again, so that the next convolution reads the zeros its own padding would give: the
  // image's output is forward()'s.
  at::Tensor forward_padded(const at::Tensor& x, int64_t height, int64_t width) {
    check_input(x);
    const int64_t m = int64_t(1) << cfg_.depth;
    const int64_t H = x.size(2), W = x.size(3);
    const int64_t h = (height + m - 1) / m * m, w = (width + m - 1) / m * m;
    if (height < 1 || width < 1 || H % m != 0 || W % m != 0 || h > H || w > W)
      throw monge::Error("unet: a padded input must be a multiple of " + std::to_string(m) + " a side and hold the " +
                         std::to_string(height) + " x " + std::to_string(width) + " image, got " + shape_text(x.sizes()));
    at::Tensor input = x;
    if (h != height || w != width) {
      input = F::pad(on_grid(x.narrow(2, 0, height).narrow(3, 0, width)), F::PadFuncOptions({0, W - w, 0, H - h}));
      if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous())
        input = input.contiguous(at::MemoryFormat::ChannelsLast);
    }
    return run(input, {h, w});
  }

 private:
  // Size of the image at full resolution inside a larger input ({} when it fills it).
  struct Valid {
    int64_t height = 0, width = 0;
  };

  // `image` with its last row and column replicated up to a multiple of 2^depth a side, where the
  // downsampling grids need it (the image itself when it is on that grid already).
  at::Tensor on_grid(const at::Tensor& image) const {
    const int64_t m = int64_t(1) << cfg_.depth;
    const int64_t ph = (m - image.size(2) % m) % m, pw = (m - image.size(3) % m) % m;
    if (ph == 0 && pw == 0) return image;
    return F::pad(image, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));
  }

  void check_input(const at::Tensor& x) const {
    if (x.dim() != 4 || x.size(1) != in_channels_)
      throw monge::Error("unet: expected an N x " + std::to_string(in_channels_) + " x H x W tensor, got " +
                         shape_text(x.sizes()));
  }

  // Zeroes t (a feature map at resolution 2^-level) beyond the image, when it is in a larger input.
  static at::Tensor within(at::Tensor t, const Valid& valid, int64_t level) {
    if (valid.height == 0) return t;
    const int64_t h = valid.height >> level, w = valid.width >> level;
    if (h == t.size(2) && w == t.size(3)) return t;
    if (t.requires_grad()) {
      at::Tensor mask = torch::zeros({1, 1, t.size(2), t.size(3)}, t.options().requires_grad(false));
      mask.narrow(2, 0, h).narrow(3, 0, w).fill_(1);
      return t * mask;
    }
    t.narrow(2, h, t.size(2) - h).zero_();
    t.narrow(3, w, t.size(3) - w).zero_();
    return t;
  }

  // The layers in the order run() uses them (for the oneDNN path).
  unet::Layers layers() const {
    unet::Layers L{cfg_.depth, cfg_.activation, cfg_.residual, {}};
    auto add = [&L](const nn::Conv2d& c) { L.conv.push_back({c->weight, c->bias, (*c->options.stride())[0]}); };
    add(stem_);
    for (int64_t l = 0; l < cfg_.depth; ++l) add(enc_a_[l]), add(enc_b_[l]), add(down_[l]);
    add(mid_a_), add(mid_b_);
    for (int64_t l = cfg_.depth - 1; l >= 0; --l) add(up_[l]), add(dec_a_[l]), add(dec_b_[l]);
    add(out_);
    return L;
  }

  // The network on an input whose sides are multiples of 2^depth.
  at::Tensor run(const at::Tensor& input, const Valid& valid) {
    // bf16 inference on a CPU: one fused oneDNN graph (falls through where oneDNN lacks bf16)
    if (unet::OneDnnGraph::applies(input)) {
      at::Tensor y = onednn_->forward(layers(), input, valid.height, valid.width);
      if (y.defined()) return y;
    }
    at::Tensor t = within(act(stem_->forward(input)), valid, 0);
    std::vector<at::Tensor> skips;
    for (int64_t l = 0; l < cfg_.depth; ++l) {
      t = within(act(enc_a_[l]->forward(t)), valid, l);
      t = within(act(enc_b_[l]->forward(t)), valid, l);
      skips.push_back(t);
      t = within(down_[l]->forward(t), valid, l + 1);
    }
    t = within(act(mid_a_->forward(t)), valid, cfg_.depth);
    t = within(act(mid_b_->forward(t)), valid, cfg_.depth);
    for (int64_t l = cfg_.depth - 1; l >= 0; --l) {
      t = F::interpolate(t, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
      t = within(up_[l]->forward(t), valid, l);
      t = torch::cat({skips[l], t}, 1);
      t = within(act(dec_a_[l]->forward(t)), valid, l);
      t = within(act(dec_b_[l]->forward(t)), valid, l);
    }
    t = out_->forward(t);
    // Residual on the first output-many channels: extra inputs (a stochastic map's z) are not added.
    if (cfg_.residual) t = t + (in_channels_ == t.size(1) ? input : input.narrow(1, 0, t.size(1)));
    return t;
  }

  at::Tensor act(const at::Tensor& t) const {
    if (cfg_.activation == "relu") return torch::relu(t);
    if (cfg_.activation == "leaky_relu") return torch::leaky_relu(t, 0.2);
    return torch::silu(t);
  }

  UNetConfig cfg_;
  int64_t in_channels_;
  std::shared_ptr<unet::OneDnnGraph> onednn_ = std::make_shared<unet::OneDnnGraph>();
  nn::Conv2d stem_{nullptr}, mid_a_{nullptr}, mid_b_{nullptr}, out_{nullptr};
  std::vector<nn::Conv2d> enc_a_, enc_b_, down_, up_, dec_a_, dec_b_;
};

at::Tensor padded_forward(monge::Module& module, const at::Tensor& x, int64_t height, int64_t width) {
  auto* unet = dynamic_cast<UNetModule*>(&module);
  if (unet == nullptr) throw monge::Error("unet: a padded input needs a module built by unet");
  return unet->forward_padded(x, height, width);
}

constexpr monge::PaddedInput kPaddedInput{&padded_forward};

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

  const void* capability(std::string_view name, int version) const override {
    return monge::offer(name, version, &kPaddedInput);
  }

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
