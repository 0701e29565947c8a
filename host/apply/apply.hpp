#pragma once
// Applying a trained map: to batches of measurements, and to whole image files that fit in memory
// (the streaming, tiled version for large images builds on these).

#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "host/train/map_file.hpp"

namespace monge::host {

/// "auto" (CUDA when available), "cpu" or "cuda"; throws monge::Error naming `who` otherwise, or
/// when CUDA is asked for and missing.
c10::Device resolve_device(const std::string& name, const std::string& who);

/// T(Q(y)) clamped to [-1, 1] for a batch of measurements y (N x C x h x w), without gradients,
/// `chunk` samples at a time on `device`; the result is on the CPU, float32.
at::Tensor restore(Module& map, const ForwardOperator* op, const at::Tensor& y, c10::Device device,
                   int64_t chunk = 256);

/// Restores one image [C, H, W] in [-1, 1]. An extra last channel beyond what the map takes
/// (grey + alpha, RGB + alpha) is treated as alpha and carried through untouched (resized to the
/// output size when the map changes the size). Other channel mismatches are errors.
at::Tensor apply_to_image(const LoadedMap& map, const at::Tensor& image, c10::Device device);

struct ApplyReport {
  int64_t in_height = 0, in_width = 0, out_height = 0, out_width = 0, channels = 0;
  double seconds = 0;
};

/// Reads `input`, restores it and writes `output` atomically (temporary file + rename; nothing is
/// left behind on failure). The output format follows the extension. Refuses to overwrite the
/// input itself.
ApplyReport apply_file(const LoadedMap& map, const std::filesystem::path& input, const std::filesystem::path& output,
                       c10::Device device);

}  // namespace monge::host
