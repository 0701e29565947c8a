#pragma once
// A data-only file of named tensors and a JSON header: what map files of format 3 are made of.
//
// Layout (all integers little-endian):
//   bytes  0..7   magic "MONGEMAP"
//   bytes  8..11  container version (1)
//   bytes 12..15  reserved (0)
//   bytes 16..23  H: length of the JSON header
//   bytes 24..31  D: length of the data section
//   bytes 32..39  checksum of the header and data bytes (see checksum())
//   bytes 40..    the header (UTF-8 JSON), then zero padding to a multiple of 64, then D data bytes
// The header is an object; its "tensors" member lists each tensor as
//   {"name": ..., "dtype": "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "uint8" | "bool",
//    "shape": [...], "offset": byte offset in the data section}
// and the bytes are the tensor's contiguous values in that order.
//
// Reading executes nothing (no pickle, no TorchScript): it checks the magic, the sizes against the
// file's and against limits, the checksum, and every tensor's place in the data section, before a
// byte of it is used. The checksum finds corruption, not tampering: safety comes from those checks
// and from the reader of each tensor stating the dtype and shape it expects (TensorFile::take).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace monge::host::tensor_file {

inline constexpr char kMagic[8] = {'M', 'O', 'N', 'G', 'E', 'M', 'A', 'P'};
inline constexpr uint32_t kContainerVersion = 1;

/// What a reader accepts; files over a limit are refused before anything is allocated for them.
struct Limits {
  uint64_t max_file_bytes = uint64_t{2} << 30;  ///< 2 GiB: a map ten times the largest unet's
  uint64_t max_header_bytes = uint64_t{16} << 20;
  size_t max_tensors = 100000;
  int64_t max_dims = 8;
};

/// A 64-bit checksum of `size` bytes, chained from `seed` (0 to start).
uint64_t checksum(const void* data, size_t size, uint64_t seed = 0);

/// Whether `file` starts with the magic (it may still be damaged).
bool has_magic(const std::filesystem::path& file);

/// The bytes of a file holding `header` (an object; its "tensors" member is written here) and
/// `tensors` (contiguous or not, on any device: copied to the CPU). Throws monge::Error for a
/// tensor of an unsupported dtype or a repeated name.
std::string encode(nlohmann::json header, const std::vector<std::pair<std::string, at::Tensor>>& tensors);

/// A file read and checked: its header and its tensors, taken one by one with the dtype and shape
/// the reader expects.
class TensorFile {
 public:
  /// Reads and checks `file`. Throws monge::Error saying what is wrong (without the file name: the
  /// caller adds it).
  static TensorFile read(const std::filesystem::path& file, const Limits& limits = {});
  /// Checks `bytes` as read() checks a file's.
  static TensorFile decode(std::string bytes, const Limits& limits = {});

  const nlohmann::json& header() const { return header_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  /// The names of the tensors, in file order.
  std::vector<std::string> names() const;
  /// The data bytes of the tensors whose names start with `prefix`.
  uint64_t bytes_under(const std::string& prefix) const;
  /// The tensor `name` as a new CPU tensor, which must have `dtype` and exactly `shape`.
  at::Tensor take(const std::string& name, at::ScalarType dtype, at::IntArrayRef shape) const;
  /// The tensor `name`, which must have `dtype` and `dims` dimensions and at most `max_numel` values.
  at::Tensor take_any(const std::string& name, at::ScalarType dtype, int64_t dims, int64_t max_numel) const;

 private:
  struct Entry {
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t offset = 0, bytes = 0;
  };
  const Entry& entry(const std::string& name) const;
  at::Tensor copy_out(const Entry& e) const;

  nlohmann::json header_;
  std::string bytes_;   // the whole file
  uint64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
};

}  // namespace monge::host::tensor_file
