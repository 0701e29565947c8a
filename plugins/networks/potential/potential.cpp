// potential: the potential v of unbalanced OT (UOTM-style CNN discriminator), one real per sample.
// conv stem, then per stage a 3x3 conv and a stride-2 3x3 conv (each followed by the activation),
// then global mean pooling over space and a linear layer to one number, so any input size works.
// No normalisation layers, so samples in a batch never influence each other.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/layers.hpp"
#include "monge/network.hpp"
#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

namespace nn = torch::nn;

struct PotentialConfig {
  int64_t channels = 32;
  int64_t depth = 3;
  std::string activation = "leaky_relu";
};

// Width after stage l: channels * 2^l, capped at 1024.
int64_t stage_width(const PotentialConfig& c, int64_t level) { return monge::doubling_width(c.channels, level); }

class PotentialModule final : public monge::Module {
 public:
  PotentialModule(const PotentialConfig& c, int64_t in_channels) : cfg_(c), in_channels_(in_channels) {
    stem_ = register_module("stem", monge::conv3x3(in_channels, stage_width(c, 0)));
    for (int64_t l = 0; l < c.depth; ++l) {
      const int64_t w = stage_width(c, l);
      const std::string s = std::to_string(l);
      convs_.push_back(register_module("stage" + s + "_conv", monge::conv3x3(w, w)));
      downs_.push_back(register_module("stage" + s + "_down", monge::conv3x3(w, stage_width(c, l + 1), 2)));
    }
    head_ = register_module("head", nn::Linear(stage_width(c, c.depth), 1));
  }

  at::Tensor forward(const at::Tensor& x) override {
    if (x.dim() != 4 || x.size(1) != in_channels_ || x.size(2) < 1 || x.size(3) < 1)
      throw monge::Error("potential: expected an N x " + std::to_string(in_channels_) + " x H x W tensor, got " +
                         shape_text(x.sizes()));
    at::Tensor t = act(stem_->forward(x));
    for (size_t l = 0; l < convs_.size(); ++l) {
      t = act(convs_[l]->forward(t));
      t = act(downs_[l]->forward(t));
    }
    t = t.mean({2, 3});                 // N x C
    return head_->forward(t).squeeze(1);  // N
  }

 private:
  at::Tensor act(const at::Tensor& t) const {
    if (cfg_.activation == "silu") return torch::silu(t);
    return torch::leaky_relu(t, 0.2);
  }

  PotentialConfig cfg_;
  int64_t in_channels_;
  nn::Conv2d stem_{nullptr};
  std::vector<nn::Conv2d> convs_, downs_;
  nn::Linear head_{nullptr};
};

class Potential final : public monge::Network {
 public:
  explicit Potential(const monge::Params& p) {
    cfg_.channels = p.integer("channels");
    cfg_.depth = p.integer("depth");
    cfg_.activation = p.string("activation");
  }

  // shape.out_channels, scale, height and width are not used: the output is one number per sample
  // for any input size.
  std::shared_ptr<monge::Module> build(const monge::NetworkShape& shape) const override {
    if (shape.in_channels < 1)
      throw monge::Error("potential: in_channels must be positive, got " + std::to_string(shape.in_channels));
    return std::make_shared<PotentialModule>(cfg_, shape.in_channels);
  }

  int64_t receptive_radius() const override { return -1; }
  bool tileable() const override { return false; }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("channels", 32, 4, 512, "width of the stem (doubles per stage, capped at 1024)")
        .integer("depth", 3, 1, 6, "number of stride-2 stages")
        .choice("activation", "leaky_relu", {"leaky_relu", "silu"}, "activation (leaky_relu slope 0.2)");
  }

 private:
  PotentialConfig cfg_;
};

}  // namespace

MONGE_PLUGIN(Potential, network, "potential", "1.0.0", "CNN potential (one real per sample, global mean pool)",
             Potential::schema())
