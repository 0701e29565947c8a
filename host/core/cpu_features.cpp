#include "host/core/cpu_features.hpp"

#include <cpuid.h>
#include <dlfcn.h>

#include <mutex>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

namespace monge::host {

bool cpu_bf16_kernels() {
  static bool supported = false;
  static std::once_flag once;
  std::call_once(once, [] {
    const bool was = at::autocast::is_cpu_enabled();
    // The probe needs autograd, whatever mode the first caller is in (inference runs without).
    c10::InferenceMode not_inference(false);
    at::AutoGradMode grad(true);
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

namespace {

// oneDNN's dnnl_cpu_isa_t bits (the same in oneDNN 2.x and 3.x) for AVX-512 with BF16.
constexpr unsigned kDnnlAvx512CoreBf16 = 0xe7;

// AVX512_BF16 (CPUID leaf 7, subleaf 1, EAX bit 5) or AMX-BF16 (leaf 7, subleaf 0, EDX bit 22).
bool cpuid_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1)) return true;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1);
}

}  // namespace

bool cpu_bf16_native() {
  static const bool native = [] {
    if (!cpu_bf16_kernels()) return false;
    using Isa = int (*)();
    if (auto effective = reinterpret_cast<Isa>(dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa")))
      return (unsigned(effective()) & kDnnlAvx512CoreBf16) == kDnnlAvx512CoreBf16;
    return cpuid_bf16();
  }();
  return native;
}

}  // namespace monge::host
