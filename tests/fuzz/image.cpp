// Fuzzes image::load (host/image/vips_io.hpp): libvips' loaders with the untrusted ones blocked,
// the pixel cap on the header, and monge's conversion to a tensor. Any bytes must give an image
// of at most the cap or monge::Error. libvips and its format libraries are not instrumented:
// this checks monge's side (sizes, formats, the copy out of libvips' buffer) and that no loader
// crashes or hangs on what it is given.

#include <cstdint>

#include <ATen/ATen.h>

#include "host/image/vips_io.hpp"
#include "monge/plugin.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // No extension: libvips picks the loader from the bytes, as it does for any file.
  const auto file = monge::fuzz::write_input("image", data, size);
  constexpr int64_t kMaxPixels = int64_t{1} << 20;  // small images keep runs fast; the cap is what is checked
  try {
    const at::Tensor t = monge::image::load(file, kMaxPixels);
    if (t.dim() != 3 || t.size(1) * t.size(2) > kMaxPixels) std::abort();
    (void)t.sum();
  } catch (const monge::Error&) {
  }
  return 0;
}
