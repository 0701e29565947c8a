// Fuzzes the MONGEMAP container (host/map/tensor_file.hpp): any bytes must be refused with
// monge::Error or read into a table whose every tensor can be taken without touching memory
// outside the file. Each input is decoded as it is, then with its checksum made to match, so that
// mutations reach the header's JSON and the tensor table instead of stopping at the checksum.

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "host/map/tensor_file.hpp"
#include "monge/plugin.hpp"
#include "tests/fuzz/map_checksum.hpp"

namespace tf = monge::host::tensor_file;

namespace {

void exercise(std::string bytes) {
  tf::Limits limits;
  limits.max_file_bytes = 1 << 20;
  limits.max_header_bytes = 1 << 16;
  limits.max_tensors = 256;
  try {
    const auto file = tf::TensorFile::decode(std::move(bytes), limits);
    (void)file.header().dump();
    for (const auto& name : file.names()) {
      for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kByte, at::kBool}) {
        for (int64_t dims = 0; dims <= 8; ++dims) {
          try {
            const at::Tensor t = file.take_any(name, dtype, dims, 1 << 20);
            (void)file.take(name, dtype, t.sizes());
            if (t.numel() > 0) (void)t.sum();  // reads every byte taken
          } catch (const monge::Error&) {
          }
        }
      }
    }
  } catch (const monge::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  exercise(bytes);
  exercise(monge::fuzz::with_matching_checksum(bytes));
  return 0;
}
