// mlp: a fully connected network on the flattened input, for low-dimensional problems (toy
// distributions stored as N x C x 1 x 1, small patches). As a map it returns the input's shape
// (optionally input + net(input), identity at initialisation); as a potential one real per sample.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/network.hpp"
#include "monge/sdk.hpp"

namespace {

namespace nn = torch::nn;

struct MlpConfig {
  int64_t hidden = 64;
  int64_t layers = 2;
  std::string activation = "silu";
  std::string output = "image";
  bool residual = true;
};

class MlpModule final : public monge::Module {
 public:
  MlpModule(const MlpConfig& c, const monge::NetworkShape& shape) : cfg_(c), shape_(shape) {
    const int64_t in = shape.in_channels * shape.height * shape.width;
    const int64_t out = c.output == "scalar" ? 1 : shape.out_channels * shape.height * shape.width;
    // A bound on the largest layer, checked before anything is allocated (a map file's shape
    // record is read from a file that may be hostile): mlp is for small inputs.
    constexpr int64_t kMaxLayerWeights = int64_t{1} << 28;  // 1 GiB of float32
    const int64_t widest = std::max(in, out), narrow = c.layers > 0 ? c.hidden : std::min(in, out);
    if (in <= 0 || out <= 0 || widest > kMaxLayerWeights / std::max<int64_t>(1, narrow))
      throw monge::Error("mlp: a " + std::to_string(shape.in_channels) + " x " + std::to_string(shape.height) + " x " +
                         std::to_string(shape.width) + " input with " + std::to_string(c.hidden) +
                         " hidden units needs a layer of more than 2^28 weights; mlp is for small inputs (use unet)");
    int64_t width = in;
    for (int64_t l = 0; l < c.layers; ++l) {
      layers_.push_back(register_module("hidden" + std::to_string(l), nn::Linear(width, c.hidden)));
      width = c.hidden;
    }
    head_ = register_module("head", nn::Linear(width, out));
    if (residual()) {
      torch::NoGradGuard no_grad;
      head_->weight.zero_();
      head_->bias.zero_();
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    if (x.dim() != 4 || x.size(1) != shape_.in_channels || x.size(2) != shape_.height || x.size(3) != shape_.width)
      throw monge::Error("mlp: built for N x " + std::to_string(shape_.in_channels) + " x " +
                         std::to_string(shape_.height) + " x " + std::to_string(shape_.width) +
                         " inputs (fully connected layers fix the size), got " + std::to_string(x.dim()) +
                         " dimensions" + (x.dim() == 4 ? " of another size" : ""));
    at::Tensor t = x.flatten(1);
    for (auto& layer : layers_) t = act(layer->forward(t));
    t = head_->forward(t);
    if (cfg_.output == "scalar") return t.squeeze(1);
    t = t.view({x.size(0), shape_.out_channels, shape_.height, shape_.width});
    if (!residual()) return t;
    // Residual on the first output-many channels: extra inputs (a stochastic map's z) are not added.
    return (shape_.in_channels == shape_.out_channels ? x : x.narrow(1, 0, shape_.out_channels)) + t;
  }

 private:
  bool residual() const { return cfg_.output == "image" && cfg_.residual && shape_.in_channels >= shape_.out_channels; }
  at::Tensor act(const at::Tensor& t) const {
    if (cfg_.activation == "relu") return torch::relu(t);
    if (cfg_.activation == "leaky_relu") return torch::leaky_relu(t, 0.2);
    if (cfg_.activation == "tanh") return torch::tanh(t);
    return torch::silu(t);
  }

  MlpConfig cfg_;
  monge::NetworkShape shape_;
  std::vector<nn::Linear> layers_;
  nn::Linear head_{nullptr};
};

class Mlp final : public monge::Network {
 public:
  explicit Mlp(const monge::Params& p) {
    cfg_.hidden = p.integer("hidden");
    cfg_.layers = p.integer("layers");
    cfg_.activation = p.string("activation");
    cfg_.output = p.string("output");
    cfg_.residual = p.boolean("residual");
  }

  std::shared_ptr<monge::Module> build(const monge::NetworkShape& shape) const override {
    if (shape.in_channels < 1 || shape.height < 1 || shape.width < 1)
      throw monge::Error("mlp: needs the input's channels, height and width (got " + std::to_string(shape.in_channels) +
                         " x " + std::to_string(shape.height) + " x " + std::to_string(shape.width) + ")");
    const int64_t values = shape.in_channels * shape.height * shape.width;
    if (values > (1 << 16))
      throw monge::Error("mlp: " + std::to_string(values) +
                         " input values is too many for a fully connected network; use unet for images");
    return std::make_shared<MlpModule>(cfg_, shape);
  }

  // Every output depends on every input: no finite radius, not tileable.
  int64_t receptive_radius() const override { return -1; }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("hidden", 64, 1, 4096, "width of each hidden layer")
        .integer("layers", 2, 0, 16, "number of hidden layers (0: affine)")
        .choice("activation", "silu", {"silu", "relu", "leaky_relu", "tanh"}, "activation after each hidden layer")
        .choice("output", "image", {"image", "scalar"}, "image: the input's shape (a map); scalar: one real per sample (a potential)")
        .boolean("residual", true, "image output: input + net(input), the last layer starting at zero (identity map)");
  }

 private:
  MlpConfig cfg_;
};

}  // namespace

MONGE_PLUGIN(Mlp, network, "mlp", "1.0.0", "fully connected map or potential for low-dimensional data", Mlp::schema())
