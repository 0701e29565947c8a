#include "host/apply/apply.hpp"

#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

namespace monge::host {

c10::Device resolve_device(const std::string& name, const std::string& who) {
  if (name == "cpu") return c10::kCPU;
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw Error(who + ": device 'cuda' requested, but this LibTorch has no usable CUDA device; use device 'cpu' or 'auto'");
    return c10::kCUDA;
  }
  throw Error(who + ": device must be 'auto', 'cpu' or 'cuda', got '" + name + "'");
}

at::Tensor restore(Module& map, const ForwardOperator* op, const at::Tensor& y, c10::Device device, int64_t chunk) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < y.size(0); i += chunk) {
    at::Tensor part = y.narrow(0, i, std::min(chunk, y.size(0) - i)).to(device, at::kFloat);
    part = map_input(map, op, part);
    out.push_back(map.forward(part).clamp(-1, 1).to(c10::kCPU));
  }
  return at::cat(out, 0);
}

at::Tensor apply_to_image(const LoadedMap& map, const at::Tensor& image, c10::Device device) {
  if (image.dim() != 3) throw Error("apply: expected a C x H x W image");
  const int64_t want = map.info.shape.in_channels, have = image.size(0);
  at::Tensor colour = image, alpha;
  if (want > 0 && have == want + 1 && (have == 2 || have == 4)) {
    colour = image.narrow(0, 0, want);
    alpha = image.narrow(0, want, 1);
  } else if (want > 0 && have != want) {
    throw Error("apply: the map takes " + std::to_string(want) + "-channel images (" + (want == 1 ? "grey" : "RGB") +
                "), this image has " + std::to_string(have) + " channel(s); convert it first (e.g. vips colourspace)");
  }
  at::Tensor out = restore(*map.module, map.op.get(), colour.unsqueeze(0), device, 1)[0];
  if (alpha.defined()) {
    if (out.size(1) % alpha.size(1) != 0 || out.size(2) % alpha.size(2) != 0 ||
        out.size(1) / alpha.size(1) != out.size(2) / alpha.size(2))
      throw Error("apply: the map's output is not a whole multiple of the image's size, so alpha cannot follow it");
    const int64_t k = out.size(1) / alpha.size(1);
    if (k > 1) alpha = alpha.repeat_interleave(k, 1).repeat_interleave(k, 2);
    out = at::cat({out, alpha.to(out.scalar_type())}, 0);
  }
  return out;
}

}  // namespace monge::host
