#pragma once
// The unet's bf16 inference path on a CPU, run through oneDNN directly rather than op by op
// through LibTorch: each convolution is one oneDNN primitive with its bias and activation fused
// (the decoder's convolution of [skip, up] is two convolutions into one output, the second adding
// to the first, so nothing is concatenated), on channels-last bf16 feature maps that stay in
// oneDNN from the first layer to the last. The last 1x1 convolution writes fp32 and the residual
// sum is fp32, as in LibTorch's autocast path. LibTorch 1.13 offers no fused convolution with a
// SiLU from C++; this is where the "fusion through oneDNN" is done.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace unet {

struct Layer {
  at::Tensor weight, bias;  // fp32, out x in x k x k and out
  int64_t stride = 1;
};

/// A unet's layers in the order its forward runs them: stem; for each level: the two encoder
/// convolutions and the stride-2 one; the two bottleneck convolutions; for each level from the
/// deepest: the up convolution and the two decoder convolutions; the 1x1 output convolution.
struct Layers {
  int64_t depth = 0;
  std::string activation;  // silu, relu or leaky_relu (slope 0.2)
  bool residual = true;
  std::vector<Layer> conv;
};

class OneDnnGraph {
 public:
  OneDnnGraph();
  ~OneDnnGraph();
  OneDnnGraph(const OneDnnGraph&) = delete;
  OneDnnGraph& operator=(const OneDnnGraph&) = delete;

  /// Whether a forward of x should take this path: a float CPU tensor, no gradient recorded, and
  /// LibTorch's CPU autocast on with bfloat16 (what `monge apply --precision bf16` and
  /// `map:restore{precision = "bf16"}` set); not when MONGE_ONEDNN=0.
  static bool applies(const at::Tensor& x);

  /// The network on `input` (N x C x H x W, sides multiples of 2^depth). When the image is only
  /// the top-left valid_height x valid_width of it (0: all of it), every feature map is zeroed
  /// beyond the image at its level, as the LibTorch path does for monge::PaddedInput. Returns an
  /// undefined tensor when oneDNN has no native bf16 kernels here (the caller then runs LibTorch).
  at::Tensor forward(const Layers& layers, const at::Tensor& input, int64_t valid_height, int64_t valid_width);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unet
