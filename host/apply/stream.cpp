#include "host/apply/stream.hpp"

#include "host/core/temp_files.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include "host/core/int_math.hpp"
#include "host/core/text.hpp"
#include "host/core/threads.hpp"
#include "host/image/vips_io.hpp"
#include "host/image/vips_util.hpp"

namespace fs = std::filesystem;

namespace monge::host {

int64_t strips_for_band(int64_t band, int64_t strip) {
  // Bands start at multiples of `band` rows, strips at multiples of `strip`: a band that divides
  // the strip (the usual case, 128 rows against 1024) never crosses a strip's edge, nor does a
  // band that is a multiple of it; otherwise it may reach one strip more.
  if (band <= 0 || strip <= 0) return 1;
  return ceil_div(band, strip) + (strip % band == 0 || band % strip == 0 ? 0 : 1);
}

#ifdef MONGE_WITH_VIPS

namespace {

using image::ImagePtr;
using image::take_vips_error;

const char* format_name(VipsBandFormat f) {
  switch (f) {
    case VIPS_FORMAT_UCHAR: return "8-bit";
    case VIPS_FORMAT_USHORT: return "16-bit";
    case VIPS_FORMAT_FLOAT: return "float";
    default: return vips_enum_nick(VIPS_TYPE_BAND_FORMAT, f);
  }
}

at::ScalarType storage_type(VipsBandFormat f) {
  return f == VIPS_FORMAT_UCHAR ? at::kByte : f == VIPS_FORMAT_USHORT ? at::kShort : at::kFloat;
}

double full_scale(VipsBandFormat f) { return f == VIPS_FORMAT_UCHAR ? 255.0 : f == VIPS_FORMAT_USHORT ? 65535.0 : 1.0; }

// Raw samples (any shape, storage type of `f`) as float values of [0, full scale]; always a new
// tensor (the raw rows stay in the buffer for the next strip).
at::Tensor widen(const at::Tensor& raw, VipsBandFormat f) {
  return f == VIPS_FORMAT_USHORT ? raw.to(at::kInt).bitwise_and(0xFFFF).to(at::kFloat) : raw.to(at::kFloat, false, true);
}

// Values of [0, full scale of `f`] (rounded in place) stored into `dst`, of `f`'s storage type
// (16-bit through int32 so that the bit pattern of values above 32767 is kept in the int16
// tensor). In place, so that a block's float output is not copied twice more on its way out.
void store_as(at::Tensor values, VipsBandFormat f, const at::Tensor& dst) {
  if (f != VIPS_FORMAT_FLOAT) values.round_().clamp_(0, full_scale(f));
  dst.copy_(f == VIPS_FORMAT_USHORT ? values.to(at::kInt) : values);
}

// Which sample formats a saver can hold, by its libvips class name.
bool saver_holds(const std::string& saver, VipsBandFormat f, bool alpha, std::string& why) {
  const std::string s = lower(saver);
  auto any = [&](std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&](const char* n) { return s.find(n) != std::string::npos; });
  };
  if (any({"tiff", "vipssave", "vipsfile", "fits", "matrix"})) return true;
  if (any({"png"})) {
    if (f == VIPS_FORMAT_FLOAT) return why = "PNG holds 8- and 16-bit images only", false;
    return true;
  }
  if (any({"jpeg", "jpg"})) {
    if (alpha) return why = "JPEG cannot hold an alpha channel", false;
    if (f != VIPS_FORMAT_UCHAR) return why = "JPEG holds 8-bit images only", false;
    return true;
  }
  if (f != VIPS_FORMAT_UCHAR) return why = "this format (" + saver + ") is written as 8-bit only", false;
  return true;
}

// Output columns per cache tile, in cells of the tile plan: what the apply holds of the output
// and what it computes in float at a time is bounded by a chunk of this many tiles, not by the
// image's width. Each cell's window is computed in exactly one chunk (exact tiles), and chunks of
// four tiles make the same network calls as the whole-width strips did (so fp32 output is
// unchanged bit for bit).
constexpr int64_t kChunkTiles = 4;
// Input rows decoded per libvips request: libvips keeps each request in its region and its
// sequential line cache grows to the largest request, so rows are read a few at a time rather
// than a strip at once.
constexpr int64_t kReadRows = 128;

// Everything the generate callback needs; shared by libvips' worker threads, used under `mutex`.
struct Job {
  std::unique_ptr<TileRunner> runner;
  VipsImage* in = nullptr;
  int64_t width = 0, height = 0;    // input
  int bands = 0, colour = 0;        // input bands; colour bands (without alpha)
  bool alpha = false;
  bool replace_nonfinite = false;   // float input under NonFinite::Replace
  enum class Mode { Direct, PerChannel, Luminance } mode = Mode::Direct;
  VipsBandFormat in_fmt = VIPS_FORMAT_UCHAR, out_fmt = VIPS_FORMAT_UCHAR;
  int64_t strip = 0;                // output rows per cache tile
  int64_t chunk = 0;                // output columns per cache tile
  int64_t chunks = 0;               // cache tiles per strip
  int threads = 1;
  std::mutex mutex;
  at::Tensor buf;                   // input rows [buf_lo, buf_hi) at its start (rows x width x bands, storage type)
  int64_t buf_lo = 0, buf_hi = 0;
  std::set<std::pair<int64_t, int64_t>> done;  // (top, left) of the cache tiles computed
  int64_t recomputed = 0;           // cache tiles asked for again (the cache was too small)
  std::string input_name;
  std::string error;                // the first failure inside generate, as the user should see it
};

void* start_sequence(VipsImage*, void* a, void*) { return vips_region_new(static_cast<Job*>(a)->in); }

int stop_sequence(void* seq, void*, void*) {
  g_object_unref(seq);
  return 0;
}

// Input pixels [first, last) along one axis that output pixels [o0, o1) need: the network's
// (`net`: input_rows or input_cols), the alpha channel's (nearest neighbour) and, on luminance,
// the chroma's (a bicubic upsampling reads 2 pixels beyond).
std::pair<int64_t, int64_t> needed(const Job& job, std::pair<int64_t, int64_t> net, int64_t o0, int64_t o1, int64_t size) {
  const int64_t k = job.runner->plan().scale();
  const int64_t margin = job.mode == Job::Mode::Luminance && k > 1 ? 2 : 0;
  return {std::max<int64_t>(0, std::min(net.first, o0 / k) - margin), std::min(size, std::max(net.second, ceil_div(o1, k)) + margin)};
}
std::pair<int64_t, int64_t> needed_rows(const Job& job, int64_t oy0, int64_t oy1) {
  return needed(job, job.runner->input_rows(oy0, oy1), oy0, oy1, job.height);
}
std::pair<int64_t, int64_t> needed_cols(const Job& job, int64_t ox0, int64_t ox1) {
  return needed(job, job.runner->input_cols(ox0, ox1), ox0, ox1, job.width);
}

// Makes input rows [lo, hi) available in the buffer, reading forward only, and returns them. The
// buffer is allocated once (grown when a strip needs more rows) and rows move within it.
at::Tensor input_rows(Job& job, VipsRegion* region, int64_t lo, int64_t hi) {
  if (lo < job.buf_lo)
    throw Error("internal error: input row " + std::to_string(lo) + " was already released (rows are read top to bottom)");
  if (hi > job.buf_hi) {
    const int64_t held = job.buf_hi - job.buf_lo;
    if (!job.buf.defined() || job.buf.size(0) < hi - job.buf_lo) {
      at::Tensor grown = at::empty({hi - job.buf_lo, job.width, job.bands}, storage_type(job.in_fmt));
      if (held > 0) grown.narrow(0, 0, held).copy_(job.buf.narrow(0, 0, held));
      job.buf = grown;
    }
    const int64_t row_bytes = job.width * job.bands * int64_t(job.buf.element_size());
    auto* dst = static_cast<uint8_t*>(job.buf.data_ptr()) + held * row_bytes;
    for (int64_t top = job.buf_hi; top < hi; top += kReadRows) {
      VipsRect r{0, int(top), int(job.width), int(std::min(kReadRows, hi - top))};
      if (vips_region_prepare(region, &r) != 0) {
        std::string why = take_vips_error();
        for (char& c : why)
          if (c == '\n') c = ';';
        throw Error("cannot decode rows " + std::to_string(r.top) + ".." + std::to_string(r.top + r.height) + " of " +
                    job.input_name + " (" + why + "); the file is truncated or corrupt");
      }
      for (int y = 0; y < r.height; ++y, dst += row_bytes)
        std::memcpy(dst, VIPS_REGION_ADDR(region, 0, r.top + y), size_t(row_bytes));
    }
    if (job.replace_nonfinite) job.buf.narrow(0, held, hi - job.buf_hi).nan_to_num_(0.0, 1.0, 0.0);  // float samples of [0, 1]
    job.buf_hi = hi;
  }
  return job.buf.narrow(0, lo - job.buf_lo, hi - lo);
}

// Drops buffered rows that no cache tile still to come can need: those above the first strip not
// yet computed in all its chunks.
void release_rows(Job& job) {
  int64_t top = 0;
  while (int64_t(std::distance(job.done.lower_bound({top, 0}), job.done.lower_bound({top + 1, 0}))) == job.chunks) top += job.strip;
  const int64_t out_h = job.runner->out_height();
  if (top >= out_h) {
    job.buf = at::Tensor(), job.buf_lo = job.buf_hi;
    return;
  }
  const int64_t keep = std::min(needed_rows(job, top, std::min(out_h, top + job.strip)).first, job.buf_hi);
  if (keep > job.buf_lo) {
    const int64_t row_bytes = job.width * job.bands * int64_t(job.buf.element_size());
    auto* base = static_cast<uint8_t*>(job.buf.data_ptr());
    std::memmove(base, base + (keep - job.buf_lo) * row_bytes, size_t((job.buf_hi - keep) * row_bytes));
    job.buf_lo = keep;
  }
}

// RGB <-> Y'CbCr (BT.601, full range), on values in [-1, 1] (N x 3 x H x W).
at::Tensor to_ycbcr(const at::Tensor& rgb) {
  at::Tensor r = rgb.narrow(1, 0, 1), g = rgb.narrow(1, 1, 1), b = rgb.narrow(1, 2, 1);
  at::Tensor y = 0.299 * r + 0.587 * g + 0.114 * b;
  return at::cat({y, (b - y) / 1.772, (r - y) / 1.402}, 1);
}
at::Tensor from_ycbcr(const at::Tensor& ycc) {
  at::Tensor y = ycc.narrow(1, 0, 1), cb = ycc.narrow(1, 1, 1), cr = ycc.narrow(1, 2, 1);
  at::Tensor r = y + 1.402 * cr, b = y + 1.772 * cb;
  at::Tensor g = (y - 0.299 * r - 0.114 * b) / 0.587;
  return at::cat({r, g, b}, 1).clamp(-1, 1);
}

// Computes output rows [oy0, oy1) x columns [ox0, ox1) of all bands into `dst` (rows x columns x
// bands, the output's storage type; a view of libvips' region memory) from the buffered input
// rows, reading only the input columns these output columns need: the float work is bounded by the
// region, which the tile cache keeps to one chunk of a strip.
void compute_region(Job& job, VipsRegion* region, int64_t oy0, int64_t oy1, int64_t ox0, int64_t ox1, at::Tensor dst) {
  TileRunner& runner = *job.runner;
  const int64_t k = runner.plan().scale();
  const auto [lo, hi] = needed_rows(job, oy0, oy1);
  const auto [c0, c1] = needed_cols(job, ox0, ox1);
  const at::Tensor raw = input_rows(job, region, lo, hi).narrow(1, c0, c1 - c0);  // rows x columns x bands
  const double to_unit = 2.0 / full_scale(job.in_fmt);
  const VipsBandFormat in_fmt = job.in_fmt;
  auto convert = [&](const at::Tensor& window) { return widen(window, in_fmt).mul_(to_unit).sub_(1.0); };
  const at::Tensor colour_raw = raw.narrow(2, 0, job.colour).permute({2, 0, 1}).unsqueeze(0);  // 1 x C x rows x columns view
  at::Tensor out;  // 1 x C x (oy1 - oy0) x (ox1 - ox0) in [-1, 1]
  switch (job.mode) {
    case Job::Mode::Direct: out = runner.run(colour_raw, lo, c0, oy0, oy1, ox0, ox1, convert); break;
    case Job::Mode::PerChannel:
      out = runner.run(colour_raw.transpose(0, 1), lo, c0, oy0, oy1, ox0, ox1, convert).transpose(0, 1);
      break;
    case Job::Mode::Luminance: {
      at::Tensor ycc = to_ycbcr(convert(colour_raw));
      at::Tensor y = runner.run(ycc.narrow(1, 0, 1).contiguous(), lo, c0, oy0, oy1, ox0, ox1);
      at::Tensor chroma = ycc.narrow(1, 1, 2);
      if (k > 1) chroma = at::upsample_bicubic2d(chroma, {chroma.size(2) * k, chroma.size(3) * k}, false);
      out = from_ycbcr(at::cat({y, chroma.narrow(2, oy0 - lo * k, oy1 - oy0).narrow(3, ox0 - c0 * k, ox1 - ox0)}, 1));
      break;
    }
  }
  if (out.size(1) != job.colour)
    throw Error("the map returned " + std::to_string(out.size(1)) + " channel(s) for a " + std::to_string(job.colour) +
                "-channel image; only maps that keep the number of channels can be applied to files");
  store_as(out[0].add_(1.0).mul_(full_scale(job.out_fmt) / 2.0).permute({1, 2, 0}), job.out_fmt, dst.narrow(2, 0, job.colour));
  if (job.alpha) {
    at::Tensor a = raw.narrow(2, job.colour, 1);  // rows x columns x 1, untouched
    a = a.index_select(0, at::arange(oy0, oy1, at::kLong).div(k, "floor") - lo);
    a = a.index_select(1, at::arange(ox0, ox1, at::kLong).div(k, "floor") - c0);
    if (job.out_fmt == job.in_fmt) dst.narrow(2, job.colour, 1).copy_(a);
    else store_as(widen(a, job.in_fmt).mul_(full_scale(job.out_fmt) / full_scale(job.in_fmt)), job.out_fmt, dst.narrow(2, job.colour, 1));
  }
}

int generate(VipsRegion* out, void* seq, void* a, void*, gboolean*) {
  Job& job = *static_cast<Job*>(a);
  const VipsRect& r = out->valid;
  try {
    std::lock_guard<std::mutex> lock(job.mutex);
    c10::InferenceMode inference;  // thread-local; the block's output is converted in place
    set_threads(job.threads);  // LibTorch's pool is per thread under OpenMP
    // The region's memory as a rows x columns x bands tensor (rows may be padded: lskip).
    const int64_t elem = int64_t(VIPS_IMAGE_SIZEOF_ELEMENT(out->im));
    at::Tensor dst = at::from_blob(VIPS_REGION_ADDR(out, r.left, r.top), {r.height, r.width, job.bands},
                                   {int64_t(VIPS_REGION_LSKIP(out)) / elem, job.bands, 1}, storage_type(job.out_fmt));
    compute_region(job, static_cast<VipsRegion*>(seq), r.top, int64_t(r.top) + r.height, r.left, int64_t(r.left) + r.width, dst);
    if (!job.done.insert({r.top, r.left}).second) ++job.recomputed;
    release_rows(job);
    return 0;
  } catch (const std::exception& e) {
    const std::string msg = without_trace(e);
    {
      std::lock_guard<std::mutex> lock(job.mutex);
      if (job.error.empty()) job.error = msg;
    }
    vips_error("monge", "%s", msg.c_str());
    return -1;
  }
}

struct Progress {
  bool tty;
  double last = -1;
  int last_decile = -1;
};

void on_eval(VipsImage*, VipsProgress* p, void* data) {
  auto* pr = static_cast<Progress*>(data);
  const double run = g_timer_elapsed(p->start, nullptr);
  const int decile = p->percent / 10;
  if (pr->tty ? run - pr->last < 0.25 : decile == pr->last_decile) return;
  pr->last = run, pr->last_decile = decile;
  const double mpix = run > 0 ? double(p->npels) / run / 1e6 : 0;
  char line[160];
  std::snprintf(line, sizeof line, "apply: %3d%%  %.1f of %.1f MPix  %.2f MPix/s  ETA %d s", p->percent, double(p->npels) / 1e6,
                double(p->tpels) / 1e6, mpix, p->eta);
  if (pr->tty) std::fprintf(stderr, "\r%s\033[K", line);
  else std::fprintf(stderr, "%s\n", line);
}

void on_posteval(VipsImage*, VipsProgress*, void* data) {
  if (static_cast<Progress*>(data)->tty) std::fprintf(stderr, "\r\033[K");
}

// The checks that cost nothing, on the paths: the input exists, the output is another file in a
// directory we can write, with an extension libvips can save. Returns the saver's name.
const char* check_paths(const fs::path& input, const fs::path& output, const std::string& out_file) {
  std::error_code ec;
  if (!fs::is_regular_file(input, ec)) throw Error(input.string() + ": no such image file");
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec))
    throw Error("apply: the output " + out_file + " is the input file; choose another output path");
  const fs::path dir = output.has_parent_path() ? output.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) throw Error(out_file + ": the output directory " + dir.string() + " does not exist");
  {  // Can we create files there? (access() says yes to root even on read-only or special filesystems.)
    try {
      Temporary probe(output);
    } catch (const std::exception& e) {
      throw Error(out_file + ": cannot write in the output directory " + dir.string() + " (" + e.what() + ")");
    }
  }
  const char* saver = vips_foreign_find_save(out_file.c_str());
  if (!saver) {
    vips_error_clear();
    throw Error(out_file + ": no image format for the extension '" + output.extension().string() +
                "' (use .tif, .png, .jpg, .webp, ...)");
  }
  return saver;
}

// Opens the input for sequential reading and checks its header (size, sample format, coding);
// fills the job's input fields. Double samples are read as float.
ImagePtr open_input(Job& job, const std::string& in_name, const StreamOptions& opt) {
  ImagePtr in(vips_image_new_from_file(in_name.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_ERROR,
                                       nullptr));
  if (!in) {
    const std::string why = take_vips_error();
    throw Error(in_name + ": cannot read image (" + (why.empty() ? "not a format libvips can read, or corrupt" : why) + ")");
  }
  job.in = in.get();
  job.input_name = in_name;
  job.width = vips_image_get_width(in.get());
  job.height = vips_image_get_height(in.get());
  job.bands = vips_image_get_bands(in.get());
  job.in_fmt = vips_image_get_format(in.get());
  if (opt.max_pixels > 0 && job.width * job.height > opt.max_pixels)
    throw Error(in_name + ": " + std::to_string(job.width) + " x " + std::to_string(job.height) + " pixels is more than " +
                opt.spell.setting("max_pixels", std::to_string(opt.max_pixels)) + "; raise the limit if the file is trusted");
  if (job.in_fmt == VIPS_FORMAT_DOUBLE) {
    VipsImage* f = nullptr;
    if (vips_cast(in.get(), &f, VIPS_FORMAT_FLOAT, nullptr) != 0) throw Error(in_name + ": " + take_vips_error());
    in.reset(f), job.in = f, job.in_fmt = VIPS_FORMAT_FLOAT;
  }
  if (job.in_fmt != VIPS_FORMAT_UCHAR && job.in_fmt != VIPS_FORMAT_USHORT && job.in_fmt != VIPS_FORMAT_FLOAT)
    throw Error(in_name + ": " + std::string(format_name(job.in_fmt)) +
                " samples are not supported (8-bit, 16-bit and float are); convert the image first, e.g. with vips cast");
  if (vips_image_get_coding(in.get()) != VIPS_CODING_NONE)
    throw Error(in_name + ": coded images (LABQ, RAD) are not supported; decode the image first");
  return in;
}

// NaN or infinity would spread through every tile the network's receptive field reaches: they are
// counted in a first streaming pass (float files only), before anything is written.
int64_t check_nonfinite(Job& job, const StreamOptions& opt) {
  if (job.in_fmt != VIPS_FORMAT_FLOAT) return 0;
  const int64_t nonfinite = image::count_nonfinite(job.input_name);
  if (nonfinite > 0 && opt.nonfinite == image::NonFinite::Error)
    throw Error(image::nonfinite_message(job.input_name, nonfinite, job.width * job.height * job.bands,
                                         opt.spell.setting("nan", "replace", true)));
  job.replace_nonfinite = nonfinite > 0;
  return nonfinite;
}

// How the image's colour bands meet the map's channels.
void choose_mode(Job& job, const LoadedMap& map, const StreamOptions& opt, VipsImage* in) {
  const std::string& in_name = job.input_name;
  job.alpha = (job.bands == 2 || job.bands == 4) && vips_image_hasalpha(in);
  job.colour = job.bands - (job.alpha ? 1 : 0);
  const int64_t want = map.info.shape.in_channels;  // 0: a TorchScript map, takes what it is given
  if (job.colour != 1 && job.colour != 3)
    throw Error(in_name + ": " + std::to_string(job.bands) + " bands" + (job.alpha ? " with alpha" : "") +
                " is neither grey nor RGB (with or without alpha); convert it first, e.g. vips colourspace in out srgb");
  if (want == 0 || want == job.colour) {
    job.mode = Job::Mode::Direct;
  } else if (want == 1 && job.colour == 3) {
    job.mode = opt.colour == "luminance" ? Job::Mode::Luminance : Job::Mode::PerChannel;
  } else {
    throw Error(in_name + ": the map takes " + std::string(want == 1 ? "grey" : "RGB") + " images (" + std::to_string(want) +
                " channel(s)) and this image is " + (job.colour == 1 ? "grey" : "RGB") +
                "; convert it first, e.g. vips colourspace in.png out.png " + (want == 1 ? "b-w" : "srgb"));
  }
}

// The output's sample format (--depth), which the saver must be able to hold.
void choose_depth(Job& job, const StreamOptions& opt, const char* saver, const std::string& out_file) {
  if (opt.depth == "input") job.out_fmt = job.in_fmt;
  else if (opt.depth == "8") job.out_fmt = VIPS_FORMAT_UCHAR;
  else if (opt.depth == "16") job.out_fmt = VIPS_FORMAT_USHORT;
  else if (opt.depth == "float") job.out_fmt = VIPS_FORMAT_FLOAT;
  else throw Error("apply: " + opt.spell.name("depth") + " must be input, 8, 16 or float, got '" + opt.depth + "'");
  std::string why;
  if (!saver_holds(saver, job.out_fmt, job.alpha, why))
    throw Error(out_file + ": " + why + " (this output would be " + format_name(job.out_fmt) + (job.alpha ? " with alpha" : "") +
                "); write .tif or .png, or choose " + opt.spell.setting("depth", "8", true));
}

// The tile plan and the runner computing it; the cache tiles' size and the threads.
TilePlan plan_job(Job& job, const LoadedMap& map, const StreamOptions& opt) {
  const TilePlan plan = plan_tiles(map, opt.tiles, opt.device);
  job.runner = std::make_unique<TileRunner>(map, plan, opt.device, job.height, job.width);
  const int64_t out_w = job.runner->out_width(), out_h = job.runner->out_height();
  if (opt.max_pixels > 0 && out_w * out_h > opt.max_pixels)
    throw Error(job.input_name + ": the output would have " + std::to_string(out_w) + " x " + std::to_string(out_h) +
                " pixels, more than " + opt.spell.setting("max_pixels", std::to_string(opt.max_pixels)));
  if (out_w > INT32_MAX / 2 || out_h > INT32_MAX / 2) throw Error(job.input_name + ": the output would be too large for libvips");
  job.strip = plan.tile * plan.net_scale * (plan.blend ? 4 : 1);
  job.chunk = plan.tile * plan.net_scale * kChunkTiles;
  job.chunks = ceil_div(out_w, job.chunk);
  job.threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  return job.runner->plan();  // its layout is the one this image runs in
}

// The output image, generated on demand one cache tile (a chunk of a strip) at a time; a tile
// cache makes every request to `generate` exactly one such tile, whatever the saver asks for.
struct OutputImage {
  ImagePtr generated, cached;  // the saver reads `cached`
};

OutputImage output_image(Job& job, VipsImage* in, const TilePlan& plan) {
  const int64_t out_w = job.runner->out_width(), out_h = job.runner->out_height();
  ImagePtr gen(vips_image_new());
  if (vips_image_pipelinev(gen.get(), VIPS_DEMAND_STYLE_FATSTRIP, in, nullptr) != 0) throw Error(take_vips_error());
  VipsInterpretation interp = vips_image_get_interpretation(in);
  if (job.out_fmt != job.in_fmt) {
    const bool rgb = job.colour == 3;
    interp = job.out_fmt == VIPS_FORMAT_USHORT ? (rgb ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_GREY16)
                                               : (rgb ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W);
  }
  const double k = double(plan.scale());
  vips_image_init_fields(gen.get(), int(out_w), int(out_h), job.bands, job.out_fmt, VIPS_CODING_NONE, interp,
                         in->Xres * k, in->Yres * k);
  if (vips_image_generate(gen.get(), start_sequence, generate, stop_sequence, &job, nullptr) != 0)
    throw Error(take_vips_error());
  // Savers ask for bands of up to `request` rows across the whole width (vips_sink_disc's
  // buffers, or strips of them), left to right, top to bottom. Such a band spans
  // strips_for_band() strips; holding that many strips' chunks serves it without computing a
  // tile twice (tested for each saver by counting), and what is held is in the output's storage
  // type. The sequential strategy recycles the topmost tiles first.
  int tile_w = 0, tile_h = 0, request = 0;
  vips_get_tile_size(gen.get(), &tile_w, &tile_h, &request);
  const int64_t strips_held = strips_for_band(std::max<int64_t>(request, tile_h), job.strip);
  VipsImage* cached_raw = nullptr;
  if (vips_tilecache(gen.get(), &cached_raw, "tile_width", int(job.chunk), "tile_height", int(job.strip), "max_tiles",
                     int(strips_held * job.chunks), "access", VIPS_ACCESS_SEQUENTIAL, "threaded", TRUE, nullptr) != 0)
    throw Error(take_vips_error());
  return OutputImage{std::move(gen), ImagePtr(cached_raw)};
}

// Writes the output image atomically; throws when nothing was committed, with the first failure.
// `truncated_before`: image::truncation_warnings() before the input was opened.
void write_output(const Job& job, VipsImage* cached, const fs::path& output, const std::string& out_options,
                  const StreamOptions& opt, int64_t truncated_before) {
  const std::string& in_name = job.input_name;
  Progress progress{isatty(STDERR_FILENO) != 0};
  if (opt.progress) {
    vips_image_set_progress(cached, TRUE);
    g_signal_connect(cached, "eval", G_CALLBACK(on_eval), &progress);
    g_signal_connect(cached, "posteval", G_CALLBACK(on_posteval), &progress);
  }
  // One strip is computed at a time (the network uses the cores); libvips' own threads would
  // only wait on it, so the pipeline runs with one worker plus the saver's write-behind thread.
  struct Concurrency {
    int before = vips_concurrency_get();
    Concurrency() { vips_concurrency_set(1); }
    ~Concurrency() { vips_concurrency_set(before); }
  };
  bool written;
  {
    Concurrency one;
    // Temporaries of this output that a killed earlier run left (untouched for an hour: a run
    // still writing one keeps it fresh).
    remove_stale_temporaries(output, kStaleSeconds);
    // A decoder that met the end of the data early completes the image with grey and only warns:
    // such an output is not committed.
    written = image::write_atomically(cached, output, out_options,
                                      [&] { return image::truncation_warnings() == truncated_before; });
  }
  if (!written && image::truncation_warnings() != truncated_before) throw Error(image::truncated_message(in_name));
  if (!written) {
    std::string msg = take_vips_error();
    if (!job.error.empty()) msg = job.error;  // what went wrong, rather than the saver's follow-up
    for (char& c : msg)
      if (c == '\n') c = ';';
    throw Error(in_name + " -> " + output.string() + ": " + (msg.empty() ? "the write failed" : msg) +
                "; no output was written");
  }
}

}  // namespace

StreamReport apply_stream(const LoadedMap& map, const fs::path& input, const std::string& output_spec,
                          const StreamOptions& opt) {
  image::ensure_vips();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string in_name = input.string();
  const auto [out_file, out_options] = image::split_save_options(output_spec);
  const fs::path output(out_file);
  const char* saver = check_paths(input, output, out_file);
  if (opt.colour != "per-channel" && opt.colour != "luminance")
    throw Error("apply: colour mode must be 'per-channel' or 'luminance', got '" + opt.colour + "'");

  const int64_t truncated_before = image::truncation_warnings();
  Job job;
  ImagePtr in = open_input(job, in_name, opt);
  const int64_t nonfinite = check_nonfinite(job, opt);
  choose_mode(job, map, opt, in.get());
  choose_depth(job, opt, saver, out_file);
  const TilePlan plan = plan_job(job, map, opt);
  const OutputImage out = output_image(job, in.get(), plan);
  write_output(job, out.cached.get(), output, out_options, opt, truncated_before);

  StreamReport rep;
  rep.in_height = job.height, rep.in_width = job.width;
  rep.out_height = job.runner->out_height(), rep.out_width = job.runner->out_width();
  rep.bands = job.bands, rep.alpha = job.alpha, rep.plan = plan;
  rep.nonfinite = nonfinite;
  rep.cache_tiles = int64_t(job.done.size()), rep.recomputed = job.recomputed;
  rep.windows = job.runner->windows_computed();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

#else

StreamReport apply_stream(const LoadedMap&, const fs::path& input, const std::string&, const StreamOptions&) {
  throw Error(input.string() + ": this monge was built without libvips (MONGE_WITH_VIPS=OFF); image files cannot be read");
}

#endif

}  // namespace monge::host
