#pragma once
/// Network: a factory for the neural networks used as maps T and potentials v.

#include <cstdint>
#include <memory>

#include <torch/nn/module.h>

#include "monge/plugin.hpp"

namespace monge {

/// A module with one tensor in and one tensor out (NCHW).
class MONGE_SDK_API Module : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

/// Shapes a network is asked to handle.
struct NetworkShape {
  int64_t in_channels = 1;
  int64_t out_channels = 1;  ///< 1 for a potential's per-pixel map; potentials reduce to [N]
  int64_t scale = 1;         ///< output side / input side, e.g. for super-resolution maps
  int64_t height = 0;        ///< input height the network will be trained on (0: not known)
  int64_t width = 0;         ///< input width the network will be trained on (0: not known)
};

/// A network plugin builds modules; it also declares what tiled application needs to know.
class MONGE_SDK_API Network : public Plugin {
 public:
  Kind kind() const override { return Kind::Network; }

  /// A freshly initialised module for the given shape.
  virtual std::shared_ptr<Module> build(const NetworkShape& shape) const = 0;

  /// Radius in input pixels that one output pixel depends on; -1 when unbounded.
  virtual int64_t receptive_radius() const { return -1; }

  /// False when the network mixes statistics over the whole image, so tiles cannot reproduce
  /// whole-image output exactly.
  virtual bool tileable() const { return receptive_radius() >= 0; }

  /// Tiles cut from an image must start at multiples of this many input pixels for the network to
  /// reproduce its whole-image output (2^d for a network with d stride-2 downsamplings, whose
  /// feature grids are anchored at the image's top-left corner).
  virtual int64_t tile_alignment() const { return 1; }
};

/// Capability of a network plugin (SDK 7.1): run its modules on an image that fills only the
/// top-left corner of a larger input, as if the input were that corner alone. monge apply rounds
/// the windows it cuts up to a few sizes this way, so that a batch of images of all different
/// sizes reuses the convolution kernels oneDNN compiles per input shape (about 10-14 ms for each
/// new shape on a CPU, as much as the network itself on a 224 x 224 image).
struct PaddedInput {
  static constexpr const char* kName = "monge.network.padded_input";
  static constexpr int kVersion = 1;
  /// `module` (built by this plugin) on `x`, N x C x H x W, whose rows [0, height) and columns
  /// [0, width) hold the image; H and W are multiples of tile_alignment(), at least the image's
  /// size rounded up to it, and the pixels beyond the image are zeros. Returns N x C_out x H x W
  /// (times the network's scale) whose top-left height x width pixels are module.forward() of the
  /// image alone, equal up to float rounding (bit for bit where the kernels sum in the same order);
  /// the rest is unspecified.
  at::Tensor (*forward)(Module& module, const at::Tensor& x, int64_t height, int64_t width) = nullptr;
};

}  // namespace monge
