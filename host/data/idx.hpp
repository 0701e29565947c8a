#pragma once
// Reader for IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

#include <cstdint>
#include <filesystem>
#include <vector>

#include <ATen/core/Tensor.h>

namespace monge::data {

/// Reads an IDX file of unsigned bytes (type 0x08). Throws monge::Error naming the file and the
/// problem for a missing, truncated or malformed file. `limit` > 0 reads only the first `limit`
/// items along the first dimension.
/// Returns a uint8 tensor with the file's dimensions.
at::Tensor read_idx(const std::filesystem::path& file, int64_t limit = 0);

/// Images from an IDX file as float32 NCHW in [-1, 1] (N x 1 x H x W).
at::Tensor read_idx_images(const std::filesystem::path& file, int64_t limit = 0);

/// Directory of Debian's dataset-fashion-mnist, or $MONGE_FASHION_MNIST when set.
std::filesystem::path fashion_mnist_dir();

}  // namespace monge::data
