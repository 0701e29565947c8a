#include "host/map/map_module.hpp"

#include <algorithm>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace monge::host {

StochasticMap::StochasticMap(std::shared_ptr<Module> network, int64_t latent, double input_noise, uint64_t seed)
    : network_(std::move(network)),
      latent_(latent),
      input_noise_(input_noise),
      seed_(seed),
      gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  if (latent_ < 0 || !(input_noise_ >= 0) || (latent_ == 0 && input_noise_ == 0))
    throw Error("StochasticMap: needs latent channels or a positive input noise");
  register_module("network", network_);
}

void StochasticMap::reseed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  gen_ = at::make_generator<at::CPUGeneratorImpl>(seed);
  seed_ = seed;
  next_draw_ = 0;
}

uint64_t StochasticMap::reserve_draws(uint64_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t first = next_draw_;
  next_draw_ += count;
  return first;
}

namespace {
// splitmix64's finaliser: a well-mixed 64-bit value of a 64-bit key.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
constexpr int64_t kBlock = 256;  // side of the noise blocks of positional draws
int64_t floor_block(int64_t v) { return (v >= 0 ? v : v - kBlock + 1) / kBlock; }
}  // namespace

at::Tensor StochasticMap::field(uint64_t draw, uint64_t stream, int64_t n, int64_t c, int64_t h, int64_t w,
                                int64_t row0, int64_t col0) const {
  at::Tensor out = at::empty({n, c, h, w}, at::TensorOptions().dtype(at::kFloat));
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    seed = seed_;
  }
  for (int64_t by = floor_block(row0); by <= floor_block(row0 + h - 1); ++by) {
    for (int64_t bx = floor_block(col0); bx <= floor_block(col0 + w - 1); ++bx) {
      uint64_t key = mix64(seed ^ 0x6D6F6E6765ull);  // "monge"
      for (uint64_t part : {draw, stream, static_cast<uint64_t>(by), static_cast<uint64_t>(bx)}) key = mix64(key ^ part);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(key);
      const at::Tensor block = at::randn({n, c, kBlock, kBlock}, gen, at::TensorOptions().dtype(at::kFloat));
      // The part of this block inside the requested region.
      const int64_t y0 = std::max(row0, by * kBlock), y1 = std::min(row0 + h, (by + 1) * kBlock);
      const int64_t x0 = std::max(col0, bx * kBlock), x1 = std::min(col0 + w, (bx + 1) * kBlock);
      out.narrow(2, y0 - row0, y1 - y0)
          .narrow(3, x0 - col0, x1 - x0)
          .copy_(block.narrow(2, y0 - by * kBlock, y1 - y0).narrow(3, x0 - bx * kBlock, x1 - x0));
    }
  }
  return out;
}

at::Tensor StochasticMap::perturb_at(const at::Tensor& y, uint64_t draw, int64_t row0, int64_t col0) const {
  if (input_noise_ == 0) return y;
  if (y.dim() != 4) throw Error("stochastic map: expected an N x C x H x W measurement");
  const at::Tensor n = field(draw, 0, y.size(0), y.size(1), y.size(2), y.size(3), row0, col0);
  return y + input_noise_ * n.to(y.device(), y.scalar_type());
}

at::Tensor StochasticMap::input_at(const at::Tensor& q, uint64_t draw, int64_t row0, int64_t col0) const {
  if (latent_ == 0) return q;
  const at::Tensor z = field(draw, 1, q.size(0), latent_, q.size(2), q.size(3), row0, col0);
  return at::cat({q, z.to(q.device(), q.scalar_type())}, 1);
}

at::Tensor StochasticMap::draw(at::IntArrayRef shape) {
  std::lock_guard<std::mutex> lock(mutex_);
  return at::randn(shape, gen_, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor StochasticMap::perturb(const at::Tensor& y) {
  if (input_noise_ == 0) return y;
  return y + input_noise_ * draw(y.sizes()).to(y.device(), y.scalar_type());
}

at::Tensor StochasticMap::forward(const at::Tensor& q) {
  if (latent_ == 0) return network_->forward(q);
  if (q.dim() != 4) throw Error("stochastic map: expected an N x C x H x W input");
  const at::Tensor z = draw({q.size(0), latent_, q.size(2), q.size(3)});
  return network_->forward(at::cat({q, z.to(q.device(), q.scalar_type())}, 1));
}

std::shared_ptr<Module> build_module(const std::shared_ptr<const Network>& network, const NetworkShape& shape) {
  return keep_library(network->build(shape), library_of(network));
}

std::shared_ptr<Module> stochastic_map(std::shared_ptr<Module> network, int64_t latent, double input_noise,
                                       uint64_t seed) {
  if (latent <= 0 && input_noise <= 0) return network;
  return std::make_shared<StochasticMap>(std::move(network), latent, input_noise, seed);
}

at::Tensor map_input(Module& map, const ForwardOperator* op, const at::Tensor& y) {
  auto* stochastic = dynamic_cast<StochasticMap*>(&map);
  const at::Tensor smoothed = stochastic ? stochastic->perturb(y) : y;
  return op ? op->lift(smoothed) : smoothed;
}
void use_layout(Module& network, Layout layout) {
  if (auto* stochastic = dynamic_cast<StochasticMap*>(&network)) return use_layout(*stochastic->network(), layout);
  const auto format = layout == Layout::ChannelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (at::Tensor& p : network.parameters())
    if (p.dim() == 4 && !p.is_contiguous(format)) p.set_data(p.contiguous(format));
}

at::Tensor forward_in(Precision precision, c10::Device device, Module& network, const at::Tensor& input, Layout layout,
                      const PaddedShape& padded) {
  use_layout(network, layout);
  const bool nhwc = layout == Layout::ChannelsLast && input.dim() == 4;
  const int64_t h = input.dim() == 4 ? input.size(2) : 0, w = input.dim() == 4 ? input.size(3) : 0;
  const int64_t step = padded.via != nullptr && input.dim() == 4 ? padded.step : 0;
  const bool small = padded.max_side == 0 || (h <= padded.max_side && w <= padded.max_side);
  const bool pad = step > 1 && small && (h % step != 0 || w % step != 0);
  const int64_t H = pad ? (h + step - 1) / step * step : h, W = pad ? (w + step - 1) / step * step : w;
  at::Tensor x = pad ? at::constant_pad_nd(input, {0, W - w, 0, H - h}) : input;
  if (nhwc) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto call = [&] { return pad ? padded.via->forward(network, x, h, w) : network.forward(x); };
  at::Tensor out;
  if (precision != Precision::BF16) {
    out = call();
  } else {
    PrecisionGuard bf16(precision, device);
    out = call().to(at::kFloat);
  }
  if (pad) {
    const int64_t k = out.size(2) / H;  // the network's scale
    out = out.narrow(2, 0, h * k).narrow(3, 0, w * k);
  }
  return nhwc || pad ? out.contiguous() : out;
}

at::Tensor restore(Module& map, const ForwardOperator* op, const at::Tensor& y, c10::Device device, int64_t chunk,
                   double strength, Precision precision, Layout layout) {
  torch::NoGradGuard no_grad;
  layout = resolve_layout(layout, precision, device);
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < y.size(0); i += chunk) {
    at::Tensor part = y.narrow(0, i, std::min(chunk, y.size(0) - i)).to(device, at::kFloat);
    part = map_input(map, op, part);
    at::Tensor t = forward_in(precision, device, map, part, layout);
    if (strength != 1) t = part + strength * (t - part);
    out.push_back(t.clamp(-1, 1).to(c10::kCPU));
  }
  return at::cat(out, 0);
}

}  // namespace monge::host
