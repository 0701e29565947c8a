// Fuzzes the IDX reader (host/data/idx.hpp), plain and gzip-compressed (zlib reads both): the
// magic, the element type, the dimensions, the data length. Any bytes must give a tensor of the
// declared dimensions or monge::Error, with memory bounded by what the file holds.

#include <cstdint>

#include <ATen/ATen.h>

#include "host/data/idx.hpp"
#include "monge/plugin.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = monge::fuzz::write_input("data.idx", data, size);
  for (const int64_t limit : {int64_t{0}, int64_t{3}}) {
    try {
      const at::Tensor t = monge::data::read_idx(file, limit);
      if (limit > 0 && t.size(0) > limit) std::abort();
      (void)t.sum();
    } catch (const monge::Error&) {
    }
  }
  try {
    (void)monge::data::read_idx_images(file, 2);
  } catch (const monge::Error&) {
  }
  return 0;
}
