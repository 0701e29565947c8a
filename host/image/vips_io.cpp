#include "host/image/vips_io.hpp"

#include "host/core/temp_files.hpp"

#include <cfloat>
#include <cmath>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include <ATen/ATen.h>

#include "host/image/vips_util.hpp"

#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace monge::image {

std::pair<std::string, std::string> split_save_options(const std::string& spec) {
  if (!spec.empty() && spec.back() == ']') {
    const auto open = spec.rfind('[');
    if (open != std::string::npos && open > 0) return {spec.substr(0, open), spec.substr(open)};
  }
  return {spec, ""};
}

int64_t Difference::max() const {
  for (size_t d = histogram.size(); d-- > 0;)
    if (histogram[d] > 0) return int64_t(d);
  return 0;
}

double Difference::mean() const {
  double sum = 0;
  for (size_t d = 0; d < histogram.size(); ++d) sum += double(d) * double(histogram[d]);
  return samples > 0 ? sum / double(samples) : 0.0;
}

int64_t Difference::quantile(double q) const {
  int64_t seen = 0;
  for (size_t d = 0; d < histogram.size(); ++d)
    if ((seen += histogram[d]) >= q * double(samples)) return int64_t(d);
  return max();
}

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

NonFinite parse_nonfinite(const std::string& text, const std::string& who) {
  if (text == "error") return NonFinite::Error;
  if (text == "replace") return NonFinite::Replace;
  throw Error(who + " must be error (refuse a float image holding NaN or infinite samples) or replace (NaN and -Inf to 0, "
              "+Inf to full scale), got '" + text + "'");
}

#ifdef MONGE_WITH_VIPS

std::string nonfinite_message(const std::string& name, int64_t bad, int64_t total, const std::string& remedy) {
  char share[32];
  std::snprintf(share, sizeof share, "%.3g%%", 100.0 * double(bad) / double(std::max<int64_t>(total, 1)));
  return name + ": " + std::to_string(bad) + " of " + std::to_string(total) + " samples (" + share +
         ") are NaN or infinite; nothing was restored. Clean the image, or pass " + remedy +
         " to read NaN and -Inf as 0 and +Inf as full scale";
}

int64_t count_nonfinite(const fs::path& file) {
  ensure_vips();
  ImagePtr im(vips_image_new_from_file(file.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_ERROR, nullptr));
  if (!im) throw Error(file.string() + ": cannot read image (" + take_vips_error() + ")");
  const VipsBandFormat fmt = vips_image_get_format(im.get());
  if (fmt != VIPS_FORMAT_FLOAT && fmt != VIPS_FORMAT_DOUBLE && fmt != VIPS_FORMAT_COMPLEX && fmt != VIPS_FORMAT_DPCOMPLEX)
    return 0;
  // NaN != NaN; |x| > DBL_MAX only for infinities. 255 where either holds, so the mean over all
  // samples is 255 x the share of non-finite ones.
  VipsImage *nan = nullptr, *abs = nullptr, *inf = nullptr, *any = nullptr;
  auto unref = [](VipsImage* p) {
    if (p) g_object_unref(p);
  };
  double mean = 0;
  const bool ok = vips_notequal(im.get(), im.get(), &nan, nullptr) == 0 && vips_abs(im.get(), &abs, nullptr) == 0 &&
                  vips_more_const1(abs, &inf, DBL_MAX, nullptr) == 0 && vips_orimage(nan, inf, &any, nullptr) == 0 &&
                  vips_avg(any, &mean, nullptr) == 0;
  for (VipsImage* p : {nan, abs, inf, any}) unref(p);
  if (!ok) throw Error(file.string() + ": cannot read image (" + take_vips_error() + ")");
  const double samples = double(vips_image_get_width(im.get())) * vips_image_get_height(im.get()) * vips_image_get_bands(im.get());
  return int64_t(std::llround(mean / 255.0 * samples));
}

namespace {

// Decoder warnings that an image's data ended early, taken from libvips' error buffer
// (truncation_warnings()), and the last one's text.
std::mutex truncation_mutex;
int64_t truncations = 0;
std::string last_truncation;

// libvips reports each failed tile of a broken file as a warning; the error that follows says it
// once. Show the first few warnings, then only count them.
void vips_warning(const gchar*, GLogLevelFlags, const gchar* message, gpointer) {
  // An empty one: libvips logging its error buffer after truncation_warnings() took it.
  if (!message || message[strspn(message, " \n")] == '\0') return;
  static std::atomic<int> seen{0};
  const int n = ++seen;
  if (n <= 3) std::fprintf(stderr, "monge: libvips warning: %s\n", message);
  else if (n == 4) std::fprintf(stderr, "monge: (further libvips warnings not shown)\n");
}

}  // namespace

void ensure_vips() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (VIPS_INIT("monge") != 0) throw Error("cannot initialise libvips: " + std::string(vips_error_buffer()));
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, vips_warning, nullptr);
    // No operation cache: it would serve a file's old contents after the file was replaced (a
    // re-run writing the same outputs), and nothing monge does repeats an operation.
    vips_cache_set_max(0);
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

bool write_atomically(VipsImage* im, const fs::path& file, const std::string& options,
                      const std::function<bool()>& before_commit) {
  host::Temporary tmp(file);
  if (vips_image_write_to_file(im, (tmp.path().string() + options).c_str(), nullptr) != 0) return false;
  if (before_commit && !before_commit()) return false;
  tmp.commit();
  return true;
}

// libjpeg's warnings reach libvips' error buffer while the image decodes (the log only when the
// image is closed, too late to keep its output from being committed).
int64_t truncation_warnings() {
  std::lock_guard<std::mutex> lock(truncation_mutex);
  const char* buffer = vips_error_buffer();
  if (buffer && std::strstr(buffer, "remature end") != nullptr) {
    last_truncation = take_vips_error();  // counted once: the buffer is consumed
    ++truncations;
  }
  return truncations;
}

std::string truncation_warning() {
  std::lock_guard<std::mutex> lock(truncation_mutex);
  return last_truncation;
}

std::string truncated_message(const std::string& name) {
  std::string why = truncation_warning();
  for (char& c : why)
    if (c == '\n') c = ';';
  return name + ": its image data ends before the image does (" + why +
         "): the file is truncated or corrupt, and the decoder would have completed it with grey; nothing was written";
}

bool available() { return true; }

at::Tensor load(const fs::path& file, int64_t max_pixels, NonFinite nonfinite) {
  ensure_vips();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(file.string() + ": no such image file");
  // fail_on error: a file that ends early is an error, not an image completed with grey.
  ImagePtr im(vips_image_new_from_file(file.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_ERROR, nullptr));
  if (!im) {
    const std::string why = take_vips_error();
    throw Error(file.string() + ": cannot read image (" + (why.empty() ? "not a format libvips can read, or corrupt" : why) + ")");
  }
  const int w = vips_image_get_width(im.get()), h = vips_image_get_height(im.get());
  const int bands = vips_image_get_bands(im.get());
  if (max_pixels > 0 && int64_t{w} * h > max_pixels)
    throw Error(file.string() + ": " + std::to_string(w) + " x " + std::to_string(h) + " pixels, more than the limit of " +
                std::to_string(max_pixels) + " for an image loaded whole into memory (checked on the header, nothing was "
                "decoded); restore large images with monge apply (streamed), or raise max_pixels if the file is trusted");
  const VipsBandFormat fmt = vips_image_get_format(im.get());
  double scale;
  at::ScalarType type;
  if (fmt == VIPS_FORMAT_UCHAR) scale = 255.0, type = at::kByte;
  else if (fmt == VIPS_FORMAT_USHORT) scale = 65535.0, type = at::kShort;  // reinterpreted below
  else if (fmt == VIPS_FORMAT_FLOAT) scale = 1.0, type = at::kFloat;       // float images hold [0, 1]
  else if (fmt == VIPS_FORMAT_DOUBLE) scale = 1.0, type = at::kDouble;
  else throw Error(file.string() + ": only 8-bit, 16-bit and float images are supported (this one has libvips format " +
                   std::string(vips_enum_nick(VIPS_TYPE_BAND_FORMAT, fmt)) + "); convert it first, e.g. with vips cast");
  size_t size = 0;
  const int64_t truncated_before = truncation_warnings();
  void* mem = vips_image_write_to_memory(im.get(), &size);
  if (!mem) throw Error(file.string() + ": cannot decode image (" + take_vips_error() + "); the file may be truncated or corrupt");
  std::unique_ptr<void, void (*)(void*)> guard(mem, g_free);
  if (truncation_warnings() != truncated_before) throw Error(truncated_message(file.string()));
  at::Tensor raw = at::from_blob(mem, {h, w, bands}, type).clone();
  at::Tensor values = fmt == VIPS_FORMAT_USHORT ? raw.to(at::kInt).bitwise_and(0xFFFF).to(at::kFloat) : raw.to(at::kFloat);
  if (fmt == VIPS_FORMAT_FLOAT || fmt == VIPS_FORMAT_DOUBLE) {
    const int64_t bad = values.numel() - values.isfinite().sum().item<int64_t>();
    if (bad > 0 && nonfinite == NonFinite::Error) throw Error(nonfinite_message(file.string(), bad, values.numel(), "nan = \"replace\""));
    if (bad > 0) values.nan_to_num_(0.0, 1.0, 0.0);
  }
  return values.permute({2, 0, 1}).contiguous().div_(scale / 2).sub_(1.0);
}

void save(const at::Tensor& image, const fs::path& file, int bits) {
  ensure_vips();
  at::Tensor t = image.detach().to(at::kCPU);
  if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3) throw Error("image save: expected C x H x W or H x W values, got " + std::to_string(image.dim()) + " dimensions");
  const int64_t c = t.size(0), h = t.size(1), w = t.size(2);
  if (c < 1 || c > 4) throw Error("image save: " + std::to_string(c) + " channels cannot be saved (1 to 4: grey, grey + alpha, RGB, RGB + alpha)");
  at::Tensor v = t.to(at::kFloat).clamp(-1, 1).add(1);
  VipsBandFormat fmt;
  if (bits == 8) v = v.mul(127.5).round().to(at::kByte), fmt = VIPS_FORMAT_UCHAR;
  else if (bits == 16) v = v.mul(32767.5).round().to(at::kInt).to(at::kShort), fmt = VIPS_FORMAT_USHORT;  // bits kept
  else if (bits == 32) v = v.mul(0.5), fmt = VIPS_FORMAT_FLOAT;
  else throw Error("image save: bits must be 8, 16 or 32 (float), got " + std::to_string(bits));
  at::Tensor bytes = v.permute({1, 2, 0}).contiguous();
  ImagePtr im(vips_image_new_from_memory_copy(bytes.data_ptr(), static_cast<size_t>(bytes.nbytes()), static_cast<int>(w),
                                              static_cast<int>(h), static_cast<int>(c), fmt));
  if (!im) throw Error("image save: " + take_vips_error());
  // Say what the samples are, or savers that go by the interpretation (PNG) write 16-bit as 8.
  const bool colour = c >= 3;
  im->Type = fmt == VIPS_FORMAT_USHORT ? (colour ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_GREY16)
                                       : (colour ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(file.string() + ": output directory " + dir.string() + " does not exist");
  if (!write_atomically(im.get(), file)) throw Error(file.string() + ": cannot write image (" + take_vips_error() + ")");
}

Header header(const fs::path& file) {
  ensure_vips();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(file.string() + ": no such image file");
  ImagePtr im(vips_image_new_from_file(file.c_str(), nullptr));
  if (!im) throw Error(file.string() + ": cannot read image header (" + take_vips_error() + ")");
  Header h;
  h.width = vips_image_get_width(im.get());
  h.height = vips_image_get_height(im.get());
  h.bands = vips_image_get_bands(im.get());
  h.format = vips_enum_nick(VIPS_TYPE_BAND_FORMAT, vips_image_get_format(im.get()));
  h.alpha = vips_image_hasalpha(im.get()) != 0;
  return h;
}

void synthetic(const std::string& spec, int64_t width, int64_t height, int64_t bands, uint64_t seed) {
  ensure_vips();
  if (width < 1 || height < 1 || width > INT32_MAX / 2 || height > INT32_MAX / 2 || bands < 1 || bands > 4)
    throw Error("synthetic image: width and height must be 1 .. 1073741823 and bands 1 .. 4");
  // Not a structured binding: the lambda below captures `file` (clang before 16 refuses that).
  const auto split = split_save_options(spec);
  const std::string& file = split.first;
  const std::string& options = split.second;
  // Smooth bands (a sine of x + y) plus Gaussian noise, computed on demand by libvips.
  VipsImage* base = vips_image_new();
  VipsObject* scope = VIPS_OBJECT(base);  // everything below is unreffed with it
  VipsImage** t = reinterpret_cast<VipsImage**>(vips_object_local_array(scope, 8));
  auto fail = [&](const std::string& what) {
    const std::string why = take_vips_error();
    g_object_unref(base);
    throw Error("synthetic image " + file + ": " + what + " (" + why + ")");
  };
  if (vips_xyz(&t[0], int(width), int(height), nullptr) || vips_extract_band(t[0], &t[1], 0, "n", 1, nullptr) ||
      vips_extract_band(t[0], &t[2], 1, nullptr) || vips_add(t[1], t[2], &t[3], nullptr) ||
      vips_linear1(t[3], &t[4], 360.0 / 97.0, 0.0, nullptr) || vips_math(t[4], &t[5], VIPS_OPERATION_MATH_SIN, nullptr) ||
      vips_gaussnoise(&t[6], int(width), int(height), "sigma", 20.0, "mean", 0.0, "seed", int(seed % 2147483647), nullptr))
    fail("cannot build the pattern");
  VipsImage** u = reinterpret_cast<VipsImage**>(vips_object_local_array(scope, 4));
  if (vips_linear1(t[5], &u[0], 80.0, 128.0, nullptr) || vips_add(u[0], t[6], &u[1], nullptr) ||
      vips_cast(u[1], &u[2], VIPS_FORMAT_UCHAR, nullptr))
    fail("cannot build the pattern");
  VipsImage* out = u[2];
  VipsImage** v = reinterpret_cast<VipsImage**>(vips_object_local_array(scope, 2));
  if (bands > 1) {
    VipsImage* copies[4] = {out, out, out, out};
    if (vips_bandjoin(copies, &v[0], int(bands), nullptr)) fail("cannot join bands");
    out = v[0];
  }
  bool written = false;
  try {
    written = write_atomically(out, file, options);
  } catch (...) {
    g_object_unref(base);
    throw;
  }
  if (!written) fail("cannot write it");
  g_object_unref(base);
}

Difference difference(const fs::path& a, const fs::path& b) {
  ensure_vips();
  const std::string what = "comparing " + a.string() + " with " + b.string();
  auto open = [&](const fs::path& f) {
    ImagePtr im(vips_image_new_from_file(f.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_ERROR, nullptr));
    if (!im) throw Error(f.string() + ": cannot read image (" + take_vips_error() + ")");
    return im;
  };
  ImagePtr x = open(a), y = open(b);
  const VipsBandFormat fmt = vips_image_get_format(x.get());
  if (vips_image_get_width(x.get()) != vips_image_get_width(y.get()) || vips_image_get_height(x.get()) != vips_image_get_height(y.get()) ||
      vips_image_get_bands(x.get()) != vips_image_get_bands(y.get()) || fmt != vips_image_get_format(y.get()))
    throw Error(what + ": the images differ in size, bands or sample format");
  if (fmt != VIPS_FORMAT_UCHAR && fmt != VIPS_FORMAT_USHORT) throw Error(what + ": only 8- and 16-bit images can be compared");
  // |x - y| cast back to the format (it fits), then one histogram per band, summed below.
  VipsImage *diff = nullptr, *abs = nullptr, *cast = nullptr, *hist = nullptr;
  const bool ok = vips_subtract(x.get(), y.get(), &diff, nullptr) == 0 && vips_abs(diff, &abs, nullptr) == 0 &&
                  vips_cast(abs, &cast, fmt, nullptr) == 0 && vips_hist_find(cast, &hist, nullptr) == 0;
  ImagePtr held[] = {ImagePtr(diff), ImagePtr(abs), ImagePtr(cast), ImagePtr(hist)};
  if (!ok) throw Error(what + ": " + take_vips_error());
  VipsImage* counts = nullptr;  // the histogram as doubles, one band per input band
  if (vips_cast(hist, &counts, VIPS_FORMAT_DOUBLE, nullptr) != 0) throw Error(what + ": " + take_vips_error());
  ImagePtr counts_held(counts);
  size_t bytes = 0;
  std::unique_ptr<double, decltype(&g_free)> data(static_cast<double*>(vips_image_write_to_memory(counts, &bytes)), &g_free);
  if (!data) throw Error(what + ": " + take_vips_error());
  const int64_t bands = vips_image_get_bands(counts), bins = vips_image_get_width(counts);
  Difference d;
  d.histogram.assign(size_t(bins), 0);
  for (int64_t i = 0; i < bins * bands; ++i) d.histogram[size_t(i / bands)] += int64_t(data.get()[i]);
  for (int64_t n : d.histogram) d.samples += n;
  return d;
}

#else

Difference difference(const fs::path& a, const fs::path&) {
  throw Error(a.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be read");
}

Header header(const fs::path& file) {
  throw Error(file.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be read");
}
void synthetic(const std::string& spec, int64_t, int64_t, int64_t, uint64_t) {
  throw Error(spec + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be written");
}

bool available() { return false; }
at::Tensor load(const fs::path& file, int64_t, NonFinite) {
  throw Error(file.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be read");
}
void save(const at::Tensor&, const fs::path& file, int) {
  throw Error(file.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be written");
}

#endif

}  // namespace monge::image
