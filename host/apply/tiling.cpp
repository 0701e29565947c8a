#include "host/apply/tiling.hpp"

#include "host/apply/apply.hpp"
#include "host/core/int_math.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace monge::host {

namespace {

// 1-D Gaussian weights over a window [w0, w1) centred on its cell [c0, c1), clamped below.
at::Tensor blend_weights(int64_t w0, int64_t w1, int64_t c0, int64_t c1, int64_t span) {
  const double centre = 0.5 * double(c0 + c1 - 1), sigma = double(span) / 8.0;
  at::Tensor pos = at::arange(w0, w1, at::kDouble);
  return at::exp(-0.5 * at::pow((pos - centre) / sigma, 2)).clamp_min(1e-3).to(at::kFloat);
}

}  // namespace

at::Tensor reduce_samples(int64_t samples, const std::string& reduce, const std::function<at::Tensor(int64_t)>& sample) {
  at::Tensor first = sample(0);
  if (samples <= 1) return reduce == "std" ? at::full_like(first, -1.0) : first;
  at::Tensor sum = first.to(at::kDouble), squares = sum.square();
  for (int64_t k = 1; k < samples; ++k) {
    const at::Tensor s = sample(k).to(at::kDouble);
    sum.add_(s);
    squares.add_(s.square());
  }
  const double n = double(samples);
  const at::Tensor mean = sum / n;
  if (reduce != "std") return mean.to(at::kFloat);
  // Sample standard deviation in units of the [0, 1] intensity range (half the [-1, 1] range),
  // written as an image: black 0, white 1.
  const at::Tensor sd = ((squares - sum * mean) / (n - 1)).clamp_min(0).sqrt() / 2;
  return (2 * sd - 1).clamp(-1, 1).to(at::kFloat);
}

TilePlan plan_tiles(const LoadedMap& map, const TileOptions& opt, c10::Device device) {
  TilePlan p;
  p.lift_scale = map.op ? std::max<int64_t>(1, map.op->scale_factor()) : 1;
  p.net_scale = std::max<int64_t>(1, map.info.shape.scale);
  p.align = std::max<int64_t>(1, map.tile_alignment);
  const bool gpu = device.is_cuda();
  p.tile = opt.tile > 0 ? opt.tile : 1024;
  if (p.tile < p.align || p.tile % p.align != 0)
    throw Error("apply: --tile " + std::to_string(p.tile) + " must be a positive multiple of " + std::to_string(p.align) +
                " for this network (its tiles must start on its downsampling grid)");
  const int64_t lift_radius = map.op ? map.op->lift_radius() : 0;
  const std::string net = "network '" + map.info.network.name + "'";  // used as "the <net>"
  if (opt.halo >= 0) {
    p.halo = opt.halo;
    if (map.receptive_radius >= 0 && lift_radius >= 0) {
      p.why = "halo " + std::to_string(p.halo) + " (--halo; the " + net + " reaches " +
              std::to_string(map.receptive_radius) + " pixels" +
              (p.halo < map.receptive_radius ? ", so tiles will differ slightly from whole-image output)" : ")");
    } else {
      p.blend = true;
      p.why = "blended tiles overlapping by 2 x " + std::to_string(p.halo) + " (--halo; the " + net +
              (map.receptive_radius < 0 ? " declares no finite receptive radius)" : " is behind a lift that declares no radius)");
    }
  } else if (map.receptive_radius >= 0 && lift_radius >= 0) {
    p.halo = map.receptive_radius;
    p.why = "exact tiles with halo " + std::to_string(p.halo) + " (the receptive radius of the " + net + ")";
  } else {
    p.blend = true;
    p.halo = p.tile / 4;
    p.why = "blended tiles overlapping by 2 x " + std::to_string(p.halo) + " (the " + net +
            (map.receptive_radius < 0 ? " declares no finite receptive radius" : " is behind a lift that declares no radius") +
            "; give --halo to choose the overlap)";
  }
  if (p.blend && p.halo >= p.tile)
    throw Error("apply: the overlap (--halo " + std::to_string(p.halo) + ") must be smaller than the tile (" +
                std::to_string(p.tile) + ")");
  p.lift_halo = std::max<int64_t>(0, lift_radius) + 1;
  const int64_t window = p.tile + 2 * p.halo + p.align;
  const double budget = gpu ? 16e6 : 1e6;
  p.batch = opt.batch > 0 ? opt.batch : std::max<int64_t>(1, int64_t(budget / double(window * window)));
  if (opt.samples < 1 || opt.samples > 100000) throw Error("apply: --samples must be 1 to 100000");
  if (opt.reduce != "mean" && opt.reduce != "std")
    throw Error("apply: the samples' reduction must be 'mean' or 'std', got '" + opt.reduce + "'");
  if (opt.samples > 1 && !dynamic_cast<const StochasticMap*>(map.module.get()))
    throw Error("apply: --samples " + std::to_string(opt.samples) +
                " needs a stochastic map (trained by not, knot or otp); this map is deterministic, so every sample "
                "would be the same");
  p.samples = opt.samples;
  p.reduce = opt.reduce;
  check_strength(opt.strength, *map.module, map.info, "apply");
  p.strength = opt.strength;
  p.precision = resolve_precision(opt.precision, device, "apply");
  p.layout = resolve_layout(opt.layout, p.precision, device);
  p.layout_by_size = opt.layout == Layout::Auto && p.layout == Layout::ChannelsLast;
  const bool bf16_cpu = !gpu && p.precision == Precision::BF16;
  const int64_t step = opt.shape_step >= 0 ? opt.shape_step : gpu ? 0 : bf16_cpu ? kShapeStepBf16 : kShapeStep;
  p.shape_step = map.padded_input != nullptr && step > 1 ? ceil_div(step, p.align) * p.align : 0;
  p.shape_step_max_side = opt.shape_step >= 0 || bf16_cpu ? 0 : kShapeStepMaxSide;
  return p;
}

TileRunner::TileRunner(const LoadedMap& map, TilePlan plan, c10::Device device, int64_t height, int64_t width)
    : map_(map), plan_(std::move(plan)), device_(device), height_(height), width_(width) {
  if (height < 1 || width < 1) throw Error("apply: empty image");
  const int64_t ks = plan_.lift_scale;
  if (plan_.layout_by_size && height * ks * width * ks < kChannelsLastMinPixels) plan_.layout = Layout::Contiguous;
  // A stochastic map's noise is drawn by position, so that tiles agree where they overlap; each
  // apply takes fresh draw numbers, one per sample.
  stochastic_ = dynamic_cast<StochasticMap*>(map_.module.get());
  if (stochastic_) draw_ = stochastic_->reserve_draws(static_cast<uint64_t>(std::max<int64_t>(1, plan_.samples)));
}

// The window of network-input pixels computed for cell [c0, c1) of an axis of `size` pixels.
std::pair<int64_t, int64_t> TileRunner::window_span(int64_t c0, int64_t c1, int64_t size) const {
  const int64_t w0 = std::max<int64_t>(0, c0 - plan_.halo) / plan_.align * plan_.align;
  return {w0, std::min(size, c1 + plan_.halo)};
}

// Measurement pixels the lift needs for network-input window [w0, w1) of an axis of `size`
// measurement pixels.
std::pair<int64_t, int64_t> TileRunner::measurement_span(int64_t w0, int64_t w1, int64_t size) const {
  const int64_t k = plan_.lift_scale;
  return {std::max<int64_t>(0, floor_div(w0, k) - plan_.lift_halo), std::min(size, ceil_div(w1, k) + plan_.lift_halo)};
}

std::vector<TileRunner::Span> TileRunner::spans_for(int64_t a0, int64_t a1, int64_t size) const {
  const int64_t t = plan_.tile;
  // Exact: the cells that hold [a0, a1). Blend: every window reaching into [a0, a1); a window
  // reaches halo + align pixels beyond its cell at most.
  const int64_t reach = plan_.blend ? plan_.halo + plan_.align : 0;
  std::vector<Span> out;
  for (int64_t c0 = std::max<int64_t>(0, floor_div(a0 - reach, t)) * t; c0 < std::min(size, a1 + reach); c0 += t) {
    const int64_t c1 = std::min(size, c0 + t);
    const auto [w0, w1] = window_span(c0, c1, size);
    if (plan_.blend ? (w0 < a1 && w1 > a0) : (c0 < a1 && c1 > a0)) out.push_back({w0, w1, c0, c1});
  }
  return out;
}

std::vector<TileRunner::Window> TileRunner::windows_for(int64_t q0, int64_t q1, int64_t c0, int64_t c1) const {
  const std::vector<Span> ys = spans_for(q0, q1, height_ * plan_.lift_scale);
  const std::vector<Span> xs = spans_for(c0, c1, width_ * plan_.lift_scale);
  std::vector<Window> out;
  for (const Span& y : ys)
    for (const Span& x : xs) out.push_back({y.w0, y.w1, x.w0, x.w1, y.c0, y.c1, x.c0, x.c1});
  return out;
}

std::pair<int64_t, int64_t> TileRunner::input_span(int64_t o0, int64_t o1, int64_t size) const {
  const int64_t sq = size * plan_.lift_scale;
  const int64_t a0 = floor_div(o0, plan_.net_scale), a1 = std::min(sq, ceil_div(o1, plan_.net_scale));
  int64_t first = size, last = 0;
  for (const Span& s : spans_for(a0, a1, sq)) {
    const auto [m0, m1] = measurement_span(s.w0, s.w1, size);
    first = std::min(first, m0), last = std::max(last, m1);
  }
  return {std::min(first, last), last};
}

std::pair<int64_t, int64_t> TileRunner::input_rows(int64_t oy0, int64_t oy1) const { return input_span(oy0, oy1, height_); }

std::pair<int64_t, int64_t> TileRunner::input_cols(int64_t ox0, int64_t ox1) const { return input_span(ox0, ox1, width_); }

void TileRunner::place(Canvas& canvas, const Window& w, const at::Tensor& out) const {
  const int64_t kn = plan_.net_scale, q0 = canvas.q0, q1 = canvas.q1, c0 = canvas.c0, c1 = canvas.c1;
  if (!plan_.blend) {  // the cell inside rows [q0, q1) and columns [c0, c1)
    const int64_t ys = std::max(q0, w.cy0), ye = std::min(q1, w.cy1);
    const int64_t xs = std::max(c0, w.cx0), xe = std::min(c1, w.cx1);
    canvas.num.narrow(2, (ys - q0) * kn, (ye - ys) * kn)
        .narrow(3, (xs - c0) * kn, (xe - xs) * kn)
        .copy_(out.narrow(2, (ys - w.y0) * kn, (ye - ys) * kn).narrow(3, (xs - w.x0) * kn, (xe - xs) * kn));
    return;
  }
  const int64_t t = plan_.tile;
  const int64_t ys = std::max(q0, w.y0), ye = std::min(q1, w.y1);
  const int64_t xs = std::max(c0, w.x0), xe = std::min(c1, w.x1);
  const int64_t span = (t + 2 * plan_.halo) * kn;
  at::Tensor wy = blend_weights(ys * kn, ye * kn, w.cy0 * kn, (w.cy0 + t) * kn, span);
  at::Tensor wx = blend_weights(xs * kn, xe * kn, w.cx0 * kn, (w.cx0 + t) * kn, span);
  at::Tensor weight = wy.unsqueeze(1) * wx.unsqueeze(0);
  canvas.num.narrow(2, (ys - q0) * kn, (ye - ys) * kn)
      .narrow(3, (xs - c0) * kn, (xe - xs) * kn)
      .add_(out.narrow(2, (ys - w.y0) * kn, (ye - ys) * kn).narrow(3, (xs - w.x0) * kn, (xe - xs) * kn) * weight);
  canvas.den.narrow(0, (ys - q0) * kn, (ye - ys) * kn).narrow(1, (xs - c0) * kn, (xe - xs) * kn).add_(weight);
}

TileRunner::Measured TileRunner::measure(const std::vector<const Window*>& batch, const at::Tensor& block, int64_t row0,
                                         int64_t col0, const Convert& convert) const {
  const int64_t ks = plan_.lift_scale;
  Measured m;
  for (const Window* window : batch) {
    const Window& w = *window;
    const auto [my0, my1] = measurement_span(w.y0, w.y1, height_);
    const auto [mx0, mx1] = measurement_span(w.x0, w.x1, width_);
    if (my0 < row0 || my1 > row0 + block.size(2) || mx0 < col0 || mx1 > col0 + block.size(3))
      throw Error("apply: internal error: rows " + std::to_string(row0) + ".." + std::to_string(row0 + block.size(2)) +
                  " x columns " + std::to_string(col0) + ".." + std::to_string(col0 + block.size(3)) +
                  " do not cover the needed " + std::to_string(my0) + ".." + std::to_string(my1) + " x " +
                  std::to_string(mx0) + ".." + std::to_string(mx1));
    at::Tensor y = block.narrow(2, my0 - row0, my1 - my0).narrow(3, mx0 - col0, mx1 - mx0);
    m.values.push_back((convert ? convert(y) : y).to(device_, at::kFloat));
    m.origins.emplace_back(my0, mx0);
    m.offsets.emplace_back(w.y0 - my0 * ks, w.x0 - mx0 * ks);
  }
  return m;
}

at::Tensor TileRunner::sample(const std::vector<const Window*>& batch, const Measured& measured, int64_t k) const {
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < measured.values.size(); ++i) {
    const Window& w = *batch[i];
    const uint64_t draw = draw_ + static_cast<uint64_t>(k);
    const at::Tensor y = stochastic_ ? stochastic_->perturb_at(measured.values[i], draw, measured.origins[i].first,
                                                               measured.origins[i].second)
                                     : measured.values[i];
    const at::Tensor q = (map_.op ? map_.op->lift(y) : y)
                             .narrow(2, measured.offsets[i].first, w.y1 - w.y0)
                             .narrow(3, measured.offsets[i].second, w.x1 - w.x0);
    inputs.push_back(stochastic_ ? stochastic_->input_at(q, draw, w.y0, w.x0) : q);
  }
  Module& network = stochastic_ ? *stochastic_->network() : *map_.module;
  const at::Tensor input = at::cat(inputs, 0);
  at::Tensor t = forward_in(plan_.precision, device_, network, input, plan_.layout,
                            {map_.padded_input, plan_.shape_step, plan_.shape_step_max_side});
  if (plan_.strength != 1) t = input + plan_.strength * (t - input);
  return t.clamp(-1, 1).to(c10::kCPU, at::kFloat);
}

at::Tensor TileRunner::run(const at::Tensor& block, int64_t row0, int64_t col0, int64_t oy0, int64_t oy1, int64_t ox0,
                           int64_t ox1, const Convert& convert) {
  c10::InferenceMode guard;  // thread-local: set here, in whichever thread calls
  const int64_t ks = plan_.lift_scale, kn = plan_.net_scale;
  const int64_t hq = height_ * ks, wq = width_ * ks;
  if (block.dim() != 4 || col0 < 0 || col0 + block.size(3) > width_)
    throw Error("apply: a block of the image must be N x C x rows x columns, inside its " + std::to_string(width_) + " columns");
  if (oy0 < 0 || oy1 <= oy0 || oy1 > out_height())
    throw Error("apply: output rows " + std::to_string(oy0) + ".." + std::to_string(oy1) + " are outside the image");
  const int64_t n = block.size(0);
  const int64_t q0 = floor_div(oy0, kn), q1 = std::min(hq, ceil_div(oy1, kn));
  if (ox1 < 0) ox1 = out_width();
  if (ox0 < 0 || ox1 <= ox0 || ox1 > out_width())
    throw Error("apply: output columns " + std::to_string(ox0) + ".." + std::to_string(ox1) + " are outside the image");
  const int64_t c0 = floor_div(ox0, kn), c1 = std::min(wq, ceil_div(ox1, kn));
  const int64_t out_w = (c1 - c0) * kn;
  const std::vector<Window> windows = windows_for(q0, q1, c0, c1);
  Canvas canvas{q0, q1, c0, c1, {}, {}};

  // Lifted network inputs of each window, grouped by shape so that equal windows share a call.
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> groups;
  for (size_t i = 0; i < windows.size(); ++i)
    groups[{windows[i].y1 - windows[i].y0, windows[i].x1 - windows[i].x0}].push_back(i);

  // Network calls by shape. Exact cells are placed at once (they do not overlap); blended windows
  // are kept and added in window order, so that a pixel's value does not depend on which strip
  // asked for it.
  std::vector<at::Tensor> results(plan_.blend ? windows.size() : 0);
  for (const auto& [shape, members] : groups) {
    for (size_t b = 0; b < members.size(); b += size_t(plan_.batch)) {
      const size_t e = std::min(members.size(), b + size_t(plan_.batch));
      std::vector<const Window*> batch;
      for (size_t m = b; m < e; ++m) batch.push_back(&windows[members[m]]);
      // The windows' measurements, converted once; then each sample lifts them (with fresh noise
      // for a stochastic map) and runs the network.
      const Measured measured = measure(batch, block, row0, col0, convert);
      at::Tensor out = reduce_samples(plan_.samples, plan_.reduce, [&](int64_t k) { return sample(batch, measured, k); });
      windows_computed_ += int64_t(e - b);
      const int64_t want_h = shape.first * kn, want_w = shape.second * kn;
      if (out.dim() != 4 || out.size(0) != int64_t(e - b) * n || out.size(2) != want_h || out.size(3) != want_w)
        throw Error("apply: the map returned a " + std::to_string(out.dim() == 4 ? out.size(2) : -1) + " x " +
                    std::to_string(out.dim() == 4 ? out.size(3) : -1) + " output for a " + std::to_string(shape.first) +
                    " x " + std::to_string(shape.second) + " tile, expected " + std::to_string(want_h) + " x " +
                    std::to_string(want_w) + " (only maps whose output is a fixed multiple of their input can be tiled)");
      if (!canvas.num.defined()) {
        canvas.num = at::zeros({n, out.size(1), (q1 - q0) * kn, out_w}, at::kFloat);
        if (plan_.blend) canvas.den = at::zeros({(q1 - q0) * kn, out_w}, at::kFloat);
      }
      for (size_t m = b; m < e; ++m) {
        at::Tensor one = out.narrow(0, int64_t(m - b) * n, n);
        if (plan_.blend) results[members[m]] = one;
        else place(canvas, windows[members[m]], one);
      }
    }
  }
  for (size_t i = 0; i < results.size(); ++i) place(canvas, windows[i], results[i]);
  if (plan_.blend) canvas.num.div_(canvas.den);
  // Output rows [oy0, oy1) and columns [ox0, ox1) out of network-input [q0, q1) x [c0, c1) scaled by kn.
  return canvas.num.narrow(2, oy0 - q0 * kn, std::min(oy1, q1 * kn) - oy0).narrow(3, ox0 - c0 * kn, ox1 - ox0);
}

}  // namespace monge::host
