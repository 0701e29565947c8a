#pragma once
// A trained map as a module to run: the stochastic wrapper (noise drawn per call, or by position
// for tiles), the input it reads (Q(y + s n)) and restore() on batches of measurements. Used by the
// trainer (evaluation while training), the apply library and the Lua bindings; map files
// (map_file.hpp) build these modules.

#include <cstdint>
#include <memory>
#include <mutex>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "host/core/precision.hpp"
#include "host/core/registry.hpp"
#include "monge/network.hpp"
#include "monge/operator.hpp"

namespace monge::host {

/// A stochastic map as users apply it. It wraps the map network and draws its noise on the CPU
/// from its own generator, so that a given seed gives the same samples on every device:
///   - latent channels (NOT, KNOT): the network takes `latent` more input channels than q, fed
///     with z ~ N(0, 1) at each forward();
///   - input noise (OTP): the measurement is smoothed, y + s n with n ~ N(0, 1), before the lift;
///     see perturb() and map_input().
/// Each call of forward()/perturb() draws new noise from the generator. Tiled apply uses the
/// positional draws instead (field(), perturb_at(), forward_at()): there the noise at a pixel is a
/// function of the seed, the draw and the pixel's place in the image only, so overlapping tiles
/// see the same values and a tiled stochastic restoration equals the whole-image one.
class StochasticMap final : public Module {
 public:
  StochasticMap(std::shared_ptr<Module> network, int64_t latent, double input_noise, uint64_t seed = 0);
  at::Tensor forward(const at::Tensor& q) override;
  /// y + s n: the smoothing of the measurement (y itself when the input noise is 0).
  at::Tensor perturb(const at::Tensor& y);
  /// Restarts the noise stream: the same seed gives the same sequence of noise (and of draws).
  void reseed(uint64_t seed);

  /// Positional noise for draw `draw`: N(0, 1) values [n, c, h, w] for grid rows [row0, row0 + h)
  /// and columns [col0, col0 + w), assembled from 256 x 256 blocks, each drawn from a generator
  /// seeded by (seed, draw, stream, block row, block column). Stream 0 is the measurement's noise,
  /// stream 1 the latent z.
  at::Tensor field(uint64_t draw, uint64_t stream, int64_t n, int64_t c, int64_t h, int64_t w, int64_t row0,
                   int64_t col0) const;
  /// y + s field(...) for the measurement window y whose top-left pixel is (row0, col0).
  at::Tensor perturb_at(const at::Tensor& y, uint64_t draw, int64_t row0, int64_t col0) const;
  /// The network's input for the lifted window q at (row0, col0): q and, for latent channels,
  /// positional z after it.
  at::Tensor input_at(const at::Tensor& q, uint64_t draw, int64_t row0, int64_t col0) const;
  /// Reserves `count` fresh draw numbers for one apply (K samples) and returns the first; they
  /// start at 0 after reseed().
  uint64_t reserve_draws(uint64_t count);
  const std::shared_ptr<Module>& network() const { return network_; }
  int64_t latent() const { return latent_; }
  double input_noise() const { return input_noise_; }

 private:
  at::Tensor draw(at::IntArrayRef shape);
  std::shared_ptr<Module> network_;
  int64_t latent_;
  double input_noise_;
  uint64_t seed_;
  uint64_t next_draw_ = 0;
  at::Generator gen_;
  mutable std::mutex mutex_;  // batch apply may call forward() from several threads
};

/// `network`->build(shape): a fresh module that keeps the network plugin's library loaded for as
/// long as it lives, after the plugin object and its registry are gone (keep_library).
std::shared_ptr<Module> build_module(const std::shared_ptr<const Network>& network, const NetworkShape& shape);

/// `network` wrapped in a StochasticMap when it takes latent channels or input noise; `network`
/// itself otherwise.
std::shared_ptr<Module> stochastic_map(std::shared_ptr<Module> network, int64_t latent, double input_noise,
                                       uint64_t seed = 0);

/// What `map` reads for measurements `y`: Q(y + s n) for a map with input noise s, Q(y) otherwise
/// (y when `op` is null).
at::Tensor map_input(Module& map, const ForwardOperator* op, const at::Tensor& y);
/// `network` on `input` in `precision` (FP32 or BF16, already resolved): under bf16 autocast
/// (PrecisionGuard) the result comes back as float32. FP32 is a plain forward(). With `layout`
/// ChannelsLast the network's 4-D weights and the input are made NHWC first (the weights stay so
/// until a call in Contiguous layout turns them back; the output is returned contiguous); with
/// Contiguous (or Auto, read as Contiguous) the weights are made NCHW, as they were loaded. With
/// `padded`, a window whose sides are not multiples of `padded.step` runs zero-padded up to them
/// through the network plugin's PaddedInput and is cut back (same output, fewer distinct shapes).
/// Not for concurrent calls on one network.
struct PaddedShape {
  const PaddedInput* via = nullptr;  ///< the network plugin's capability; nullptr: no padding
  int64_t step = 0;                  ///< sides rounded up to multiples of this (a multiple of the alignment)
  int64_t max_side = 0;              ///< only windows of at most this many pixels a side (0: all)
};
at::Tensor forward_in(Precision precision, c10::Device device, Module& network, const at::Tensor& input,
                      Layout layout = Layout::Contiguous, const PaddedShape& padded = {});
/// Makes the 4-D weights of `network` (of a stochastic map's network) NHWC (ChannelsLast) or NCHW
/// (Contiguous, Auto), copying only those not already so.
void use_layout(Module& network, Layout layout);

/// T(Q(y)) clamped to [-1, 1] for a batch of measurements y (N x C x h x w), without gradients,
/// `chunk` samples at a time on `device`; the result is on the CPU, float32. With `strength` s
/// below 1 the result is Q(y) + s (T(Q(y)) - Q(y)) (see check_strength in host/apply/apply.hpp).
/// `precision` (FP32 or BF16, resolved) is the network's alone: the lift and the blend run in fp32;
/// `layout` is resolved for it (resolve_layout).
at::Tensor restore(Module& map, const ForwardOperator* op, const at::Tensor& y, c10::Device device,
                   int64_t chunk = 256, double strength = 1, Precision precision = Precision::FP32,
                   Layout layout = Layout::Auto);

}  // namespace monge::host
