#pragma once
// Whole-image I/O through libvips (streaming tiled apply lives elsewhere).

#include <filesystem>

#include <ATen/core/Tensor.h>

namespace monge::image {

/// True when this build has libvips.
bool available();

/// Loads an image as float32 [C, H, W] in [-1, 1] (8- and 16-bit inputs). Throws monge::Error
/// naming the file for a missing, corrupt or unsupported file.
at::Tensor load(const std::filesystem::path& file);

/// Saves [C, H, W] or [H, W] values in [-1, 1] (clamped) as an 8-bit image whose format follows
/// the extension. Written to a temporary file in the same directory and renamed on success, so a
/// failed save never leaves a partial file behind.
void save(const at::Tensor& image, const std::filesystem::path& file);

/// Lays out a batch [N, C, H, W] as one [C, H', W'] image with `nrow` images per row.
at::Tensor grid(const at::Tensor& batch, int64_t nrow, int64_t padding, double pad_value);

}  // namespace monge::image
