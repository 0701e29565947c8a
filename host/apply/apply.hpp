#pragma once
// Applying a trained map to images held in memory, and the checks of apply's options. Batches of
// measurements go through restore() (host/map/map_module.hpp); image files of any size through
// the streaming, tiled apply (stream.hpp).

#include <filesystem>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "host/map/map_file.hpp"
#include "host/map/map_module.hpp"

namespace monge::host {

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
