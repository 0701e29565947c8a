#pragma once
// Tiled application of a map to images of any size, in tensor space (the libvips streaming layer
// feeds it blocks of the measurement, a strip of rows by a chunk of columns, and takes the
// matching blocks of the output). The blocks are bookkeeping: each network call is a batch of
// windows of one tile plus halo, whatever block asked for them.
//
// Three pixel grids are involved: the measurement y (H x W), the lifted measurement Q(y) that the
// network reads (H ks x W ks, ks = the operator's scale factor) and the output (H ks kn x W ks kn,
// kn = the network's own scale, 1 for monge's networks). Tiles are cells of `tile` x `tile`
// pixels of the Q grid. Each is computed from a window around it:
//   - exact mode: the window is the cell grown by `halo` >= the network's receptive radius, its
//     start rounded down to a multiple of the network's tile alignment (2^depth for a U-Net), and
//     the measurement is cut with `lift_halo` more pixels for the lift. The cell's output then
//     equals the whole-image output (up to float rounding), borders included, because windows that
//     touch the image border see the same border handling as the whole image does.
//   - blend mode (receptive field unknown): windows overlap by 2 halo and are averaged with
//     Gaussian weights (sigma = window / 8, weights >= 1e-3). Not exact, but without seams.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "host/core/precision.hpp"
#include "host/map/map_file.hpp"

namespace monge::host {

struct TileOptions {
  int64_t tile = 0;    ///< tile side in pixels of the network's input grid; 0: 1024
  int64_t halo = -1;   ///< margin around each tile; -1: the network's receptive radius
  int64_t batch = 0;   ///< windows per network call; 0: as many as make about 1 MPix (CPU) or 16 MPix (GPU)
  int64_t samples = 1;         ///< a stochastic map: samples drawn per tile and reduced
  std::string reduce = "mean"; ///< "mean" of the samples, or their "std" (see reduce_samples)
  double strength = 1;         ///< the realism knob: Q(y) + strength (T(Q(y)) - Q(y)); see check_strength
  /// The network's arithmetic, resolved by plan_tiles (see resolve_precision). fp32 here; the
  /// command line and Lua default to Auto.
  Precision precision = Precision::FP32;
  /// The feature maps' layout, resolved by plan_tiles for the precision (resolve_layout).
  Layout layout = Layout::Auto;
  /// Windows are zero-padded up to multiples of this (network-input pixels) where the network
  /// offers monge::PaddedInput; 0: never; -1: on a CPU in bf16 every window to multiples of
  /// kShapeStepBf16, in fp32 windows of at most kShapeStepMaxSide a side to multiples of
  /// kShapeStep; on CUDA none.
  int64_t shape_step = -1;
};

/// Layout auto's channels-last is for images of at least this many network-input pixels. oneDNN
/// compiles channels-last bf16 kernels for each new input shape (about 5 ms on the CPUs we
/// measured, against 0.4 ms in NCHW), which a 224 x 224 image does not win back (channels-last
/// ran it 8% faster): a batch of small images of all different sizes ran 25% faster in NCHW,
/// large images up to 1.65x faster in channels-last (docs/performance.md).
inline constexpr int64_t kChannelsLastMinPixels = 256 * 256;

/// The automatic --shape-step on a CPU: windows of at most 128 pixels a side are rounded up to
/// multiples of 32 (16 shapes instead of thousands). Each new shape costs oneDNN about 4-6 ms of
/// kernel compilation, more than such a window's network: thumbnails of 32 to 128 pixels a side
/// ran 1.3x faster so. Larger windows are left alone: at 48 to 400 pixels a side the 15% more
/// pixels cost more than the compilations saved (fp32 0.91-0.95x; docs/performance.md).
inline constexpr int64_t kShapeStep = 32;
inline constexpr int64_t kShapeStepMaxSide = 128;

/// The automatic --shape-step on a CPU in bf16: every window is rounded up to a multiple of 64.
/// The unet's fused oneDNN graph (plugins/networks/unet/onednn.cpp) runs a 224 x 224 image in
/// about half LibTorch's time but builds its kernels for each new shape in about 11 ms, longer
/// than it then runs: over 333 images of 48 to 400 pixels a side (1 thread), 34.8 images/s at
/// their own sizes, 39.6 rounded to 32, 46.0 to 64, 44.5 to 96, 43.7 to 128; LibTorch's bf16 ops
/// gained too (34.9 to 37.2). Large images are hardly touched: their full windows have one shape
/// already, and an edge window grows by less than 64 pixels a side.
inline constexpr int64_t kShapeStepBf16 = 64;

struct TilePlan {
  int64_t lift_scale = 1;  ///< network-input pixels per measurement pixel and axis (the lift's factor)
  int64_t net_scale = 1;   ///< output pixels per network-input pixel and axis
  int64_t tile = 512;      ///< cell side, network-input pixels
  int64_t halo = 0;        ///< margin around each cell, network-input pixels
  int64_t align = 1;       ///< windows start at multiples of this, network-input pixels
  int64_t lift_halo = 0;   ///< extra measurement pixels read around a window for the lift
  int64_t batch = 1;       ///< windows per network call
  bool blend = false;      ///< overlapping windows blended (receptive field unknown): not exact
  std::string why;         ///< how the halo was chosen, for messages and reports
  int64_t samples = 1;     ///< samples per tile (a stochastic map)
  std::string reduce = "mean";
  double strength = 1;     ///< blend of the lift (0) and the map (1)
  /// FP32 or BF16: the network alone runs under bf16 autocast; the lift, the strength blend and
  /// the output stay fp32 (see docs/performance.md for why).
  Precision precision = Precision::FP32;
  Layout layout = Layout::Contiguous;  ///< Contiguous or ChannelsLast (see Layout)
  /// Layout auto resolved to ChannelsLast: a TileRunner for an image of fewer than
  /// kChannelsLastMinPixels network-input pixels runs NCHW instead (its plan() then says so).
  bool layout_by_size = false;
  /// Windows run zero-padded to multiples of this through the network's PaddedInput (a multiple of
  /// `align`); 0 when off or when the network does not offer it. Only windows of at most
  /// `shape_step_max_side` a side (0: any).
  int64_t shape_step = 0;
  int64_t shape_step_max_side = 0;

  int64_t scale() const { return lift_scale * net_scale; }
};

/// Draws `samples` outputs with `sample(k)`, k = 0 .. samples - 1 (values in [-1, 1]), and reduces them pixel by pixel:
/// "mean" gives their mean; "std" their sample standard deviation in units of the [0, 1]
/// intensity range, as an image in [-1, 1] (black: 0, white: 1; all black for one sample).
at::Tensor reduce_samples(int64_t samples, const std::string& reduce, const std::function<at::Tensor(int64_t)>& sample);

/// Plans the tiling of `map` from what its network and operator declare (receptive radius, tile
/// alignment, lift radius and scale) and the user's overrides, and resolves the precision for
/// `device`. Throws monge::Error for options that cannot work (a tile smaller than the alignment,
/// bf16 on a CPU without it; a halo below the receptive radius is accepted but noted in `why`).
TilePlan plan_tiles(const LoadedMap& map, const TileOptions& opt, c10::Device device);

/// Runs a map over blocks of an image of `height` x `width` measurement pixels: any rows and
/// columns of the output, each computed from the measurement pixels around it that the caller
/// hands in (see input_rows and input_cols).
class TileRunner {
 public:
  TileRunner(const LoadedMap& map, TilePlan plan, c10::Device device, int64_t height, int64_t width);

  const TilePlan& plan() const { return plan_; }
  int64_t out_height() const { return height_ * plan_.scale(); }
  int64_t out_width() const { return width_ * plan_.scale(); }

  /// Measurement rows [first, last) that output rows [oy0, oy1) depend on.
  std::pair<int64_t, int64_t> input_rows(int64_t oy0, int64_t oy1) const;
  /// Measurement columns [first, last) that output columns [ox0, ox1) depend on.
  std::pair<int64_t, int64_t> input_cols(int64_t ox0, int64_t ox1) const;

  /// Turns a window of the caller's pixels (any type and layout) into float values in [-1, 1].
  using Convert = std::function<at::Tensor(const at::Tensor&)>;

  /// Output rows [oy0, oy1) x columns [ox0, ox1) (ox1 = -1: to the right edge), N x C_out x
  /// (oy1 - oy0) x (ox1 - ox0), float32 on the CPU, clamped to [-1, 1]. `block` holds the
  /// measurement rows [row0, row0 + block.size(2)) x columns [col0, col0 + block.size(3))
  /// (N x C x rows x columns) and must cover input_rows() x input_cols(): values in [-1, 1], or
  /// raw samples that `convert` turns into them window by window (so that a wide block is never
  /// converted whole). The result is made under c10::InferenceMode: change it in place only there.
  at::Tensor run(const at::Tensor& block, int64_t row0, int64_t col0, int64_t oy0, int64_t oy1, int64_t ox0 = 0,
                 int64_t ox1 = -1, const Convert& convert = {});

  /// Windows computed so far, summed over network calls (exact tiles: each cell once when the
  /// blocks start on the cell grid and none is asked for twice).
  int64_t windows_computed() const { return windows_computed_; }

 private:
  struct Window {
    int64_t y0, y1, x0, x1;          // network-input pixels computed
    int64_t cy0, cy1, cx0, cx1;      // the cell they are computed for
  };
  struct Span {
    int64_t w0, w1;  // network-input pixels computed along one axis
    int64_t c0, c1;  // the cell they are computed for
  };
  /// The windows along an axis of `size` network-input pixels that contribute to [a0, a1).
  std::vector<Span> spans_for(int64_t a0, int64_t a1, int64_t size) const;
  /// The windows that contribute to network-input rows [q0, q1) and columns [c0, c1).
  std::vector<Window> windows_for(int64_t q0, int64_t q1, int64_t c0, int64_t c1) const;
  /// Measurement pixels [first, last) of an axis of `size` measurement pixels that output pixels
  /// [o0, o1) depend on.
  std::pair<int64_t, int64_t> input_span(int64_t o0, int64_t o1, int64_t size) const;
  std::pair<int64_t, int64_t> window_span(int64_t c0, int64_t c1, int64_t size) const;
  std::pair<int64_t, int64_t> measurement_span(int64_t w0, int64_t w1, int64_t size) const;

  /// What run() assembles: the output over network-input rows [q0, q1) and columns [c0, c1),
  /// scaled by the network's factor; with blending, `den` sums each pixel's weights.
  struct Canvas {
    int64_t q0, q1, c0, c1;
    at::Tensor num, den;
  };
  /// The measurements of a batch of windows, converted once, and where they sit.
  struct Measured {
    std::vector<at::Tensor> values;
    std::vector<std::pair<int64_t, int64_t>> origins;  // of each window's measurement in the image
    std::vector<std::pair<int64_t, int64_t>> offsets;  // of each window in its lifted measurement
  };
  /// Adds a window's network output `out` (N x C x (h kn) x (w kn)) to the canvas: its cell, or
  /// all of it weighted when blending.
  void place(Canvas& canvas, const Window& w, const at::Tensor& out) const;
  Measured measure(const std::vector<const Window*>& batch, const at::Tensor& block, int64_t row0, int64_t col0,
                   const Convert& convert) const;
  /// Sample k of a batch: each window lifted (with the sample's noise for a stochastic map), then
  /// the network on all of them in one call.
  at::Tensor sample(const std::vector<const Window*>& batch, const Measured& measured, int64_t k) const;

  const LoadedMap& map_;
  TilePlan plan_;
  c10::Device device_;
  int64_t height_, width_;  // measurement
  StochasticMap* stochastic_ = nullptr;  // the map's noise, drawn by position (see StochasticMap)
  uint64_t draw_ = 0;                    // its first draw number for this apply: sample k is draw_ + k
  int64_t windows_computed_ = 0;
};

}  // namespace monge::host
