#pragma once
/// Building blocks the convolutional network plugins share.

#include <algorithm>
#include <cstdint>

#include <torch/nn/modules/conv.h>

namespace monge {

/// A 3x3 convolution with zero padding 1 (`stride` 2 halves the grid).
inline torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).padding_mode(torch::kZeros));
}

/// The width of level `level` of a network that doubles its channels per level from `channels`:
/// channels * 2^level, capped at 1024 (but never below channels).
inline int64_t doubling_width(int64_t channels, int64_t level) {
  const int64_t cap = std::max<int64_t>(channels, 1024);
  int64_t w = channels;
  for (int64_t i = 0; i < level && w < cap; ++i) w = std::min(cap, w * 2);
  return w;
}

}  // namespace monge
