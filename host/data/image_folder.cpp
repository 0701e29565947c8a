#include "host/data/image_folder.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <random>

#include <ATen/ATen.h>

#include "host/core/text.hpp"
#include "host/image/vips_io.hpp"
#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace monge::data {

namespace {

std::string size_text(const at::Tensor& chw) { return std::to_string(chw.size(2)) + "x" + std::to_string(chw.size(1)); }

// [C, H, W] to `channels` channels: alpha dropped, grey repeated, RGB to luma (ITU-R BT.601).
at::Tensor to_channels(const at::Tensor& image, int64_t channels) {
  at::Tensor colour = image;
  if (colour.size(0) == 2 || colour.size(0) == 4) colour = colour.narrow(0, 0, colour.size(0) - 1);
  if (colour.size(0) == channels) return colour;
  if (channels == 3) return colour.expand({3, colour.size(1), colour.size(2)}).contiguous();
  const at::Tensor w = at::tensor({0.299f, 0.587f, 0.114f}).view({3, 1, 1});
  return (colour * w).sum(0, true);
}

}  // namespace

std::vector<fs::path> list_images(const ImageFolderOptions& o) {
  const int sources = !o.dir.empty() + !o.list.empty() + !o.files.empty();
  if (sources != 1) throw Error("images: give exactly one of 'dir', 'list' or 'files'");
  std::vector<fs::path> out;
  std::error_code ec;
  if (!o.files.empty()) {
    out = o.files;
  } else if (!o.list.empty()) {
    std::ifstream in(o.list);
    if (!in) throw Error("images: cannot open the list file " + o.list.string());
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      fs::path p(line);
      out.push_back(p.is_relative() ? o.list.parent_path() / p : p);  // relative to the list
    }
    if (out.empty()) throw Error("images: the list " + o.list.string() + " names no files");
  } else {
    if (!fs::is_directory(o.dir, ec)) throw Error("images: no such folder " + o.dir.string());
    auto wanted = [&](const fs::directory_entry& e) {
      if (!e.is_regular_file(ec)) return false;
      const std::string ext = host::lower(e.path().extension().string());
      return std::find(o.extensions.begin(), o.extensions.end(), ext) != o.extensions.end();
    };
    if (o.recursive) {
      for (const auto& e : fs::recursive_directory_iterator(o.dir, fs::directory_options::skip_permission_denied, ec))
        if (wanted(e)) out.push_back(e.path());
    } else {
      for (const auto& e : fs::directory_iterator(o.dir, ec))
        if (wanted(e)) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    if (out.empty()) {
      std::string exts;
      for (const auto& e : o.extensions) exts += (exts.empty() ? "" : " ") + e;
      throw Error("images: no images in " + o.dir.string() + (o.recursive ? " or its subfolders" : "") +
                  " (looked for " + exts + (o.recursive ? "" : "; set recursive = true for subfolders") + ")");
    }
  }
  if (o.limit > 0 && static_cast<int64_t>(out.size()) > o.limit) out.resize(static_cast<size_t>(o.limit));
  return out;
}

ImageSet load_images(const ImageFolderOptions& o) {
  if (o.channels != 0 && o.channels != 1 && o.channels != 3) throw Error("images: channels must be 1 or 3");
  if ((o.crop_height > 0) != (o.crop_width > 0) || o.crop_height < 0 || o.crop_width < 0)
    throw Error("images: the crop size needs a positive height and width");
  if (o.crops < 1) throw Error("images: crops must be at least 1");
  const bool crop = o.crop_height > 0;
  std::mt19937_64 rng(o.seed);
  ImageSet set;
  std::vector<at::Tensor> images;
  int64_t channels = o.channels;
  for (const auto& file : list_images(o)) {
    at::Tensor image;
    try {
      image = image::load(file);
    } catch (const Error& e) {
      if (!o.skip_bad) throw Error(std::string("images: ") + e.what() + " (set skip_bad = true to skip such files)");
      set.skipped.push_back(e.what());
      std::cerr << "images: warning: skipped " << e.what() << "\n";
      continue;
    }
    if (channels == 0) channels = (image.size(0) == 1 || image.size(0) == 2) ? 1 : 3;
    image = to_channels(image, channels);
    if (!crop) {
      if (!images.empty() && image.sizes() != images.front().sizes().slice(1))
        throw Error("images: " + file.string() + " is " + size_text(image) + " but " + set.files.front() + " is " +
                    size_text(images.front()[0]) + "; give a crop size (size = {h, w}) to train on images of different sizes");
      images.push_back(image.unsqueeze(0));
      set.files.push_back(file.string());
      continue;
    }
    const int64_t h = image.size(1), w = image.size(2);
    if (h < o.crop_height || w < o.crop_width)
      throw Error("images: " + file.string() + " is " + size_text(image) + ", smaller than the crop " +
                  std::to_string(o.crop_width) + "x" + std::to_string(o.crop_height));
    for (int64_t k = 0; k < o.crops; ++k) {
      const int64_t top = static_cast<int64_t>(rng() % static_cast<uint64_t>(h - o.crop_height + 1));
      const int64_t left = static_cast<int64_t>(rng() % static_cast<uint64_t>(w - o.crop_width + 1));
      images.push_back(image.narrow(1, top, o.crop_height).narrow(2, left, o.crop_width).unsqueeze(0));
      set.files.push_back(file.string());
    }
  }
  if (images.empty()) throw Error("images: every file was skipped as unreadable; nothing to load");
  set.images = at::cat(images, 0).contiguous();
  return set;
}

}  // namespace monge::data
