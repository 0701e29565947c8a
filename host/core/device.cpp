#include "host/core/device.hpp"

#include <torch/cuda.h>

#include "monge/plugin.hpp"

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

}  // namespace monge::host
