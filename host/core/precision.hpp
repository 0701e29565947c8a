#pragma once
// The arithmetic a map runs in at inference: fp32, or bf16 (autocast) where the hardware has it.

#include <string>

#include <c10/core/Device.h>

namespace monge::host {

/// What the user asked for (Auto) or what was chosen (FP32, BF16).
enum class Precision { Auto, FP32, BF16 };

/// "auto", "fp32" or "bf16"; throws monge::Error for anything else, its message starting with
/// `who` (e.g. "apply: --precision").
Precision parse_precision(const std::string& text, const std::string& who);

/// "auto", "fp32" or "bf16".
const char* precision_name(Precision p);

/// What `asked` means on `device`: Auto is BF16 on CUDA and on CPUs whose LibTorch kernels run
/// bf16 convolutions natively (cpu_bf16_native(): AVX-512 BF16 or AMX, and no DNNL_MAX_CPU_ISA /
/// ATEN_CPU_CAPABILITY limit below that), FP32 elsewhere. BF16 asked on a CPU without them throws
/// monge::Error naming `who` (it would run in slow emulation, if at all); FP32 is FP32.
Precision resolve_precision(Precision asked, c10::Device device, const std::string& who);

/// The memory layout of the network's feature maps. ChannelsLast (NHWC) lets oneDNN run its
/// convolutions without reordering each layer's input and output; on this project's CPUs it ran
/// the unets 1.3-1.7x as fast, in fp32 and in bf16, but fp32 results then differ from NCHW's by
/// float rounding (a unit in the last place). So Auto is ChannelsLast where the network runs in
/// bf16 on a CPU (whose results differ from fp32 anyway) and Contiguous (NCHW, fp32 bit for bit
/// as before) elsewhere; ChannelsLast in fp32 is the user's choice.
enum class Layout { Auto, Contiguous, ChannelsLast };

/// "auto", "nchw" or "channels-last"; throws monge::Error for anything else, its message starting
/// with `who`.
Layout parse_layout(const std::string& text, const std::string& who);
/// "auto", "nchw" or "channels-last".
const char* layout_name(Layout l);
/// What `asked` means for a network running in `precision` (resolved) on `device` (see Layout).
Layout resolve_layout(Layout asked, Precision precision, c10::Device device);

/// While alive, runs LibTorch operations of this thread on `device` under autocast to bfloat16
/// when `p` is BF16 (convolutions and matrix products in bf16, the rest in the inputs' type);
/// nothing at all for FP32. Restores the thread's previous autocast state when it ends.
class PrecisionGuard {
 public:
  PrecisionGuard(Precision p, c10::Device device);
  ~PrecisionGuard();
  PrecisionGuard(const PrecisionGuard&) = delete;
  PrecisionGuard& operator=(const PrecisionGuard&) = delete;

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Undefined;
};

}  // namespace monge::host
