#include "host/image/vips_io.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include <ATen/ATen.h>
#include <unistd.h>

#ifdef MONGE_WITH_VIPS
#include <vips/vips.h>
#endif

#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace monge::image {

at::Tensor grid(const at::Tensor& batch, int64_t nrow, int64_t padding, double pad_value) {
  if (batch.dim() != 4) throw Error("image grid: expected a batch N x C x H x W, got " + std::to_string(batch.dim()) + " dimensions");
  if (nrow < 1) throw Error("image grid: nrow must be at least 1");
  if (padding < 0) throw Error("image grid: padding must be >= 0");
  const int64_t n = batch.size(0), c = batch.size(1), h = batch.size(2), w = batch.size(3);
  const int64_t cols = std::min(nrow, std::max<int64_t>(n, 1));
  const int64_t rows = (n + cols - 1) / cols;
  at::Tensor out = at::full({c, rows * (h + padding) + padding, cols * (w + padding) + padding}, pad_value,
                            batch.options().requires_grad(false));
  at::Tensor src = batch.detach();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / cols, col = i % cols;
    out.narrow(1, padding + r * (h + padding), h).narrow(2, padding + col * (w + padding), w).copy_(src[i]);
  }
  return out;
}

#ifdef MONGE_WITH_VIPS

namespace {

void ensure_vips() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (VIPS_INIT("monge") != 0) throw Error("cannot initialise libvips: " + std::string(vips_error_buffer()));
    // Inputs are untrusted: refuse libvips' loaders that are not fuzzed for hostile files.
    vips_block_untrusted_set(TRUE);
  });
}

std::string take_vips_error() {
  std::string msg = vips_error_buffer();
  vips_error_clear();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

struct Unref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using ImagePtr = std::unique_ptr<VipsImage, Unref>;

}  // namespace

bool available() { return true; }

at::Tensor load(const fs::path& file) {
  ensure_vips();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(file.string() + ": no such image file");
  ImagePtr im(vips_image_new_from_file(file.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, nullptr));
  if (!im) {
    const std::string why = take_vips_error();
    throw Error(file.string() + ": cannot read image (" + (why.empty() ? "not a format libvips can read, or corrupt" : why) + ")");
  }
  const int w = vips_image_get_width(im.get()), h = vips_image_get_height(im.get());
  const int bands = vips_image_get_bands(im.get());
  const VipsBandFormat fmt = vips_image_get_format(im.get());
  double scale;
  at::ScalarType type;
  if (fmt == VIPS_FORMAT_UCHAR) scale = 255.0, type = at::kByte;
  else if (fmt == VIPS_FORMAT_USHORT) scale = 65535.0, type = at::kShort;  // reinterpreted below
  else throw Error(file.string() + ": only 8- and 16-bit images are supported here (this one has libvips format " +
                   std::to_string(static_cast<int>(fmt)) + ")");
  size_t size = 0;
  void* mem = vips_image_write_to_memory(im.get(), &size);
  if (!mem) throw Error(file.string() + ": cannot decode image (" + take_vips_error() + "); the file may be truncated or corrupt");
  std::unique_ptr<void, void (*)(void*)> guard(mem, g_free);
  at::Tensor raw = at::from_blob(mem, {h, w, bands}, type).clone();
  at::Tensor values = fmt == VIPS_FORMAT_USHORT ? raw.to(at::kInt).bitwise_and(0xFFFF).to(at::kFloat) : raw.to(at::kFloat);
  return values.permute({2, 0, 1}).contiguous().div_(scale / 2).sub_(1.0);
}

void save(const at::Tensor& image, const fs::path& file) {
  ensure_vips();
  at::Tensor t = image.detach().to(at::kCPU);
  if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3) throw Error("image save: expected C x H x W or H x W values, got " + std::to_string(image.dim()) + " dimensions");
  const int64_t c = t.size(0), h = t.size(1), w = t.size(2);
  if (c < 1 || c > 4) throw Error("image save: " + std::to_string(c) + " channels cannot be saved (1 to 4: grey, grey + alpha, RGB, RGB + alpha)");
  at::Tensor bytes = t.to(at::kFloat).clamp(-1, 1).add(1).mul(127.5).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  ImagePtr im(vips_image_new_from_memory_copy(bytes.data_ptr(), static_cast<size_t>(bytes.numel()), static_cast<int>(w),
                                              static_cast<int>(h), static_cast<int>(c), VIPS_FORMAT_UCHAR));
  if (!im) throw Error("image save: " + take_vips_error());
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(file.string() + ": output directory " + dir.string() + " does not exist");
  const fs::path tmp = dir / ("." + file.stem().string() + ".tmp" + std::to_string(getpid()) + file.extension().string());
  if (vips_image_write_to_file(im.get(), tmp.c_str(), nullptr) != 0) {
    fs::remove(tmp, ec);
    throw Error(file.string() + ": cannot write image (" + take_vips_error() + ")");
  }
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(file.string() + ": cannot move the finished image into place (" + ec.message() + ")");
  }
}

#else

bool available() { return false; }
at::Tensor load(const fs::path& file) {
  throw Error(file.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be read");
}
void save(const at::Tensor&, const fs::path& file) {
  throw Error(file.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be written");
}

#endif

}  // namespace monge::image
