#pragma once
// Shared by the map harnesses: mutated map files get past the checksum, so that mutations reach
// the header's JSON, the tensor table and the records instead of stopping there.

#include <cstdint>
#include <cstring>
#include <string>

#include "host/map/tensor_file.hpp"

namespace monge::fuzz {

/// The bytes with the checksum field set to what the header and data sections hold, when they
/// start with the MONGEMAP magic and the declared sizes fit the input (otherwise unchanged: the
/// magic and size checks come first).
inline std::string with_matching_checksum(std::string bytes) {
  if (bytes.size() < 40 || std::memcmp(bytes.data(), "MONGEMAP", 8) != 0) return bytes;
  uint64_t header = 0, data = 0;
  std::memcpy(&header, &bytes[16], 8);
  std::memcpy(&data, &bytes[24], 8);
  if (header > bytes.size() || data > bytes.size()) return bytes;
  const uint64_t data_start = (40 + header + 63) / 64 * 64;
  if (data_start + data != bytes.size()) return bytes;
  namespace tf = monge::host::tensor_file;
  uint64_t sum = tf::checksum(&bytes[40], header);
  sum = tf::checksum(bytes.data() + data_start, data, sum);
  std::memcpy(&bytes[32], &sum, 8);
  return bytes;
}

}  // namespace monge::fuzz
