#pragma once
// Whole-image I/O through libvips (streaming tiled apply lives elsewhere).

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace monge::image {

/// True when this build has libvips.
bool available();

/// The default cap on the pixels of an image load() decodes whole: 2^28 (268 MPix, 3.2 GB as a
/// float RGB tensor), checked on the header before anything is decoded, so a small file that
/// claims a huge image cannot exhaust memory. Larger images go through `monge apply` (streamed).
inline constexpr int64_t kLoadMaxPixels = int64_t{1} << 28;

/// What to do with NaN and infinite samples of a float image (integer images cannot hold any).
/// Error: refuse the image, naming how many there are. Replace: NaN and -Inf become 0 (black) and
/// +Inf the full scale (white), as numpy's nan_to_num does for an image of [0, 1].
enum class NonFinite { Error, Replace };

/// "error" or "replace"; throws monge::Error naming `who` for anything else.
NonFinite parse_nonfinite(const std::string& text, const std::string& who);

/// Loads an image as float32 [C, H, W] in [-1, 1] (8-bit, 16-bit, and float images holding
/// [0, 1]). Throws monge::Error naming the file for a missing, corrupt, truncated or unsupported
/// file, for one of more than `max_pixels` pixels (0: no limit), and for a float file holding NaN
/// or infinite samples unless `nonfinite` is Replace.
at::Tensor load(const std::filesystem::path& file, int64_t max_pixels = kLoadMaxPixels,
                NonFinite nonfinite = NonFinite::Error);

/// Saves [C, H, W] or [H, W] values in [-1, 1] (clamped) as an image of `bits` 8, 16 or 32
/// (float, [0, 1]) per sample whose format follows the extension. Written to a temporary file in the same directory and renamed on success, so a
/// failed save never leaves a partial file behind.
void save(const at::Tensor& image, const std::filesystem::path& file, int bits = 8);

/// Splits "out.tif[tile,compression=deflate]" into the file name and its libvips save options
/// ("[...]", or "" when there are none).
std::pair<std::string, std::string> split_save_options(const std::string& spec);

/// What a file holds, read from its header only.
struct Header {
  int64_t width = 0, height = 0, bands = 0;
  std::string format;  ///< "uchar", "ushort", "float", ... (libvips' band format nicknames)
  bool alpha = false;
};
Header header(const std::filesystem::path& file);

/// Writes a synthetic test image of any size without holding it in memory: 8-bit smooth
/// patterns plus noise, seeded. `spec` is a file name with optional libvips save options, e.g.
/// "big.tif[tile,bigtiff]". Written atomically like save().
void synthetic(const std::string& spec, int64_t width, int64_t height, int64_t bands, uint64_t seed);

/// How two images differ sample by sample, in levels of their (shared, integer) format.
struct Difference {
  int64_t samples = 0;
  std::vector<int64_t> histogram;  ///< histogram[d]: the samples that differ by d levels
  int64_t max() const;             ///< the largest difference
  double mean() const;
  /// The smallest d with at least the share `q` (0 .. 1) of the samples differing by d or less.
  int64_t quantile(double q) const;
};

/// Compares two 8- or 16-bit images of the same size, bands and format in one streaming pass
/// (flat memory whatever their size). Throws monge::Error naming the files when they cannot be
/// read or do not match.
Difference difference(const std::filesystem::path& a, const std::filesystem::path& b);

/// Lays out a batch [N, C, H, W] as one [C, H', W'] image with `nrow` images per row.
at::Tensor grid(const at::Tensor& batch, int64_t nrow, int64_t padding, double pad_value);

}  // namespace monge::image
