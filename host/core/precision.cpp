#include "host/core/precision.hpp"

#include <ATen/autocast_mode.h>

#include "host/core/cpu_features.hpp"
#include "monge/plugin.hpp"

namespace monge::host {

Precision parse_precision(const std::string& text, const std::string& who) {
  if (text == "auto") return Precision::Auto;
  if (text == "fp32") return Precision::FP32;
  if (text == "bf16") return Precision::BF16;
  throw Error(who + " must be 'auto', 'fp32' or 'bf16', got '" + text + "'");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
    default: return "auto";
  }
}

Precision resolve_precision(Precision asked, c10::Device device, const std::string& who) {
  if (asked == Precision::FP32) return asked;
  const bool native = device.is_cuda() || cpu_bf16_native();
  if (asked == Precision::Auto) return native ? Precision::BF16 : Precision::FP32;
  if (asked == Precision::BF16 && !native)
    throw Error(who + ": precision 'bf16' needs bfloat16 convolutions in hardware, which LibTorch's oneDNN has only on CPUs "
                      "with AVX-512 BF16 or AMX; this CPU (or its DNNL_MAX_CPU_ISA / ATEN_CPU_CAPABILITY limit) has none, and "
                      "emulating them would be slower than fp32. Use precision 'auto' or 'fp32', or a GPU");
  return asked;
}

Layout parse_layout(const std::string& text, const std::string& who) {
  if (text == "auto") return Layout::Auto;
  if (text == "nchw") return Layout::Contiguous;
  if (text == "channels-last") return Layout::ChannelsLast;
  throw Error(who + " must be 'auto', 'nchw' or 'channels-last', got '" + text + "'");
}

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "nchw";
    case Layout::ChannelsLast: return "channels-last";
    default: return "auto";
  }
}

Layout resolve_layout(Layout asked, Precision precision, c10::Device device) {
  if (asked != Layout::Auto) return asked;
  // CUDA's bf16 convolutions prefer NHWC too, but that is unmeasured here (no GPU was lent).
  return precision == Precision::BF16 && device.is_cpu() ? Layout::ChannelsLast : Layout::Contiguous;
}

PrecisionGuard::PrecisionGuard(Precision p, c10::Device device) : active_(p == Precision::BF16), cuda_(device.is_cuda()) {
  if (!active_) return;
  was_enabled_ = cuda_ ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  was_dtype_ = cuda_ ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
  if (cuda_) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

PrecisionGuard::~PrecisionGuard() {
  if (!active_) return;
  // The weights' bf16 copies are cached while autocast is on; the outermost region drops them.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(was_dtype_);
  }
}

}  // namespace monge::host
