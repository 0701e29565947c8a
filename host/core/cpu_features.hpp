#pragma once
// What this CPU's LibTorch kernels can do, asked once per process.

namespace monge::host {

/// Whether LibTorch's CPU kernels run bfloat16 convolutions here, forward and backward. oneDNN has
/// bf16 convolutions only from AVX-512 on, and a process may be limited below what the CPU has
/// (DNNL_MAX_CPU_ISA, ATEN_CPU_CAPABILITY), so this is probed: one tiny convolution under bf16
/// autocast, the first time it is asked. A failed probe is an answer (false), never an error.
bool cpu_bf16_kernels();

}  // namespace monge::host
