#include "host/core/cpu_features.hpp"

#include <mutex>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace monge::host {

bool cpu_bf16_kernels() {
  static bool supported = false;
  static std::once_flag once;
  std::call_once(once, [] {
    const bool was = at::autocast::is_cpu_enabled();
    try {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
      const at::Tensor x = at::rand({1, 4, 12, 12}).requires_grad_(true);
      const at::Tensor w = at::rand({4, 4, 3, 3}).requires_grad_(true);
      at::Tensor y = at::conv2d(x, w, {}, 1, 1);
      y.to(at::kFloat).square().sum().backward();
      supported = y.scalar_type() == at::kBFloat16 && x.grad().defined() && w.grad().defined();
    } catch (const std::exception&) {
      supported = false;
    }
    at::autocast::set_cpu_enabled(was);
    at::autocast::clear_cache();
  });
  return supported;
}

}  // namespace monge::host
