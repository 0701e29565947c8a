#pragma once
// What this CPU's LibTorch kernels can do, asked once per process.

namespace monge::host {

/// Whether LibTorch's CPU kernels run bfloat16 convolutions here, forward and backward. oneDNN has
/// bf16 convolutions only from AVX-512 on, and a process may be limited below what the CPU has
/// (DNNL_MAX_CPU_ISA, ATEN_CPU_CAPABILITY), so this is probed: one tiny convolution under bf16
/// autocast, the first time it is asked (with autograd on, whatever the caller's mode). A failed
/// probe is an answer (false), never an error.
bool cpu_bf16_kernels();

/// Whether those bf16 convolutions run natively, i.e. faster than fp32: oneDNN's effective ISA (the
/// CPU's, limited by DNNL_MAX_CPU_ISA) has AVX-512 BF16 or AMX. On other AVX-512 CPUs oneDNN
/// emulates bf16 (cpu_bf16_kernels() is true there, e.g. under DNNL_MAX_CPU_ISA=AVX512_CORE), which
/// inference must not pick. Where oneDNN's symbols are hidden (a LibTorch with oneDNN linked in
/// statically), the CPU's own flags (CPUID) stand in for the effective ISA.
bool cpu_bf16_native();

}  // namespace monge::host
