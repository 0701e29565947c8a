#pragma once
// Image folders and lists as training data: every image read with libvips, converted to a common
// channel count, and either used whole (all the same size) or cut into seeded random crops.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace monge::data {

struct ImageFolderOptions {
  std::filesystem::path dir;                 ///< a folder of images (sorted by path)
  std::filesystem::path list;                ///< or a text file with one path per line
  std::vector<std::filesystem::path> files;  ///< or explicit files
  bool recursive = false;                    ///< walk subfolders of `dir`
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"};
  int64_t channels = 0;                      ///< 1 or 3; 0: the first image's (alpha dropped)
  int64_t crop_height = 0, crop_width = 0;   ///< 0: whole images, which must share one size
  int64_t crops = 1;                         ///< random crops per image
  uint64_t seed = 0;                         ///< crop positions
  int64_t limit = 0;                         ///< at most this many files (0: all)
  bool skip_bad = false;                     ///< unreadable files: skip with a warning instead of failing
};

struct ImageSet {
  at::Tensor images;                ///< N x C x H x W float32 in [-1, 1]
  std::vector<std::string> files;   ///< the file behind each image (a file repeats for its crops)
  std::vector<std::string> skipped; ///< "file: reason" for each file skipped with skip_bad
};

/// The files `options` names, in order (sorted for a folder). Throws monge::Error for a missing
/// folder or list, or when nothing matches.
std::vector<std::filesystem::path> list_images(const ImageFolderOptions& options);

/// Loads the images. Throws monge::Error naming the file for an unreadable image (unless
/// skip_bad), an image smaller than the crop, or (without crops) images of different sizes.
ImageSet load_images(const ImageFolderOptions& options);

}  // namespace monge::data
