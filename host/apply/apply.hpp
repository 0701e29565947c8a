#pragma once
// Applying a trained map to batches of measurements and to images held in memory. Image files of
// any size go through the streaming, tiled apply (stream.hpp).

#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "host/core/precision.hpp"
#include "host/train/map_file.hpp"

namespace monge::host {

/// "auto" (CUDA when available), "cpu" or "cuda"; throws monge::Error naming `who` otherwise, or
/// when CUDA is asked for and missing.
c10::Device resolve_device(const std::string& name, const std::string& who);

/// `network` on `input` in `precision` (FP32 or BF16, already resolved): under bf16 autocast
/// (PrecisionGuard) the result comes back as float32. FP32 is a plain forward().
at::Tensor forward_in(Precision precision, c10::Device device, Module& network, const at::Tensor& input);

/// T(Q(y)) clamped to [-1, 1] for a batch of measurements y (N x C x h x w), without gradients,
/// `chunk` samples at a time on `device`; the result is on the CPU, float32. With `strength` s
/// below 1 the result is Q(y) + s (T(Q(y)) - Q(y)) (see check_strength). `precision` (FP32 or
/// BF16, resolved) is the network's alone: the lift and the blend run in fp32.
at::Tensor restore(Module& map, const ForwardOperator* op, const at::Tensor& y, c10::Device device,
                   int64_t chunk = 256, double strength = 1, Precision precision = Precision::FP32);

/// The apply-time realism knob: a map applied at strength s in [0, 1] gives
/// Q(y) + s (T(Q(y)) - Q(y)), its lift at 0 (e.g. the Wiener restoration), the trained map at 1.
/// Throws monge::Error, naming `who`, for s outside [0, 1] or (s < 1) a map whose output is not
/// the size and channels of its input or that draws noise (a stochastic map).
void check_strength(double strength, const Module& map, const MapInfo& info, const std::string& who);

/// Restores one image [C, H, W] in [-1, 1] in one network call. An extra last channel beyond what
/// the map takes (grey + alpha, RGB + alpha) is treated as alpha and carried through untouched
/// (each value repeated k x k when the map enlarges k times). Other channel mismatches are errors.
at::Tensor apply_to_image(const LoadedMap& map, const at::Tensor& image, c10::Device device);

}  // namespace monge::host
