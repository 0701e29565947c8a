#include "host/map/tensor_file.hpp"

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "monge/plugin.hpp"
#include "monge/shape.hpp"

namespace monge::host::tensor_file {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tensor files are little-endian; this build is not");

namespace {

constexpr uint64_t kPrefix = 40, kAlign = 64;

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {at::kFloat, "float32"}, {at::kDouble, "float64"}, {at::kHalf, "float16"}, {at::kBFloat16, "bfloat16"},
    {at::kLong, "int64"},    {at::kInt, "int32"},      {at::kByte, "uint8"},   {at::kBool, "bool"},
};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return nullptr;
}

void put_u32(std::string& out, size_t at, uint32_t v) { std::memcpy(&out[at], &v, 4); }
void put_u64(std::string& out, size_t at, uint64_t v) { std::memcpy(&out[at], &v, 8); }
uint32_t get_u32(const std::string& in, size_t at) {
  uint32_t v;
  std::memcpy(&v, &in[at], 4);
  return v;
}
uint64_t get_u64(const std::string& in, size_t at) {
  uint64_t v;
  std::memcpy(&v, &in[at], 8);
  return v;
}
uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A non-negative integer member of a JSON object, or an error naming it.
uint64_t unsigned_member(const nlohmann::json& j, const char* key, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) throw Error(what + ": '" + key + "' must be a non-negative integer");
  return it->get<uint64_t>();
}

}  // namespace

uint64_t checksum(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = mix(seed ^ 0x6D6F6E67654D4150ull) ^ size;
  uint64_t lanes[4] = {h, h ^ 0x9E3779B97F4A7C15ull, h ^ 0xC2B2AE3D27D4EB4Full, h ^ 0x165667B19E3779F9ull};
  size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * k, 8);
      lanes[k] = (lanes[k] ^ w) * 0x9FB21C651E98DF25ull;
      lanes[k] ^= lanes[k] >> 29;
    }
  }
  for (int k = 0; k < 4; ++k) h = mix(h ^ lanes[k]);
  for (; i < size; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return mix(h);
}

bool has_magic(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[sizeof kMagic] = {};
  return in.read(head, sizeof head) && std::memcmp(head, kMagic, sizeof kMagic) == 0;
}

std::string encode(nlohmann::json header, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  if (!header.is_object()) throw Error("tensor file: the header must be a JSON object");
  std::vector<at::Tensor> cpu;
  nlohmann::json table = nlohmann::json::array();
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!seen.insert(name).second) throw Error("tensor file: tensor '" + name + "' is given twice");
    const char* dtype = dtype_name(t.scalar_type());
    if (!dtype) throw Error("tensor file: tensor '" + name + "' has a dtype the format does not hold");
    cpu.push_back(t.detach().to(at::kCPU).contiguous());
    table.push_back({{"name", name}, {"dtype", dtype}, {"shape", t.sizes().vec()}, {"offset", offset}});
    offset = align_up(offset + cpu.back().nbytes());
  }
  header["tensors"] = std::move(table);
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error& e) {  // text that is not UTF-8 (316)
    throw Error(std::string("tensor file: the header cannot be written as JSON: ") + e.what());
  }
  const uint64_t data_start = align_up(kPrefix + text.size());
  std::string out(data_start + offset, '\0');
  std::memcpy(&out[0], kMagic, sizeof kMagic);
  put_u32(out, 8, kContainerVersion);
  put_u64(out, 16, text.size());
  put_u64(out, 24, offset);
  std::memcpy(&out[kPrefix], text.data(), text.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    const uint64_t at = data_start + header["tensors"][i]["offset"].get<uint64_t>();
    if (cpu[i].nbytes() > 0) std::memcpy(&out[at], cpu[i].data_ptr(), cpu[i].nbytes());
  }
  uint64_t sum = checksum(&out[kPrefix], text.size());
  sum = checksum(out.data() + data_start, offset, sum);
  put_u64(out, 32, sum);
  return out;
}

TensorFile TensorFile::read(const std::filesystem::path& file, const Limits& limits) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw Error("cannot read the file (" + ec.message() + ")");
  if (size > limits.max_file_bytes)
    throw Error("the file is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
  std::ifstream in(file, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in || !in.read(&bytes[0], static_cast<std::streamsize>(size))) throw Error("cannot read the file");
  return decode(std::move(bytes), limits);
}

TensorFile TensorFile::decode(std::string bytes, const Limits& limits) {
  if (bytes.size() < kPrefix || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw Error("not a monge tensor file (no MONGEMAP magic)");
  if (bytes.size() > limits.max_file_bytes) throw Error("the file is over the size limit");
  const uint32_t version = get_u32(bytes, 8);
  if (version != kContainerVersion)
    throw Error("container version " + std::to_string(version) + " is not one this monge reads (" +
                std::to_string(kContainerVersion) + ")");
  const uint64_t header_bytes = get_u64(bytes, 16), data_bytes = get_u64(bytes, 24), sum = get_u64(bytes, 32);
  if (header_bytes > limits.max_header_bytes)
    throw Error("its header declares " + std::to_string(header_bytes) + " bytes, over the limit of " +
                std::to_string(limits.max_header_bytes));
  const uint64_t data_start = align_up(kPrefix + header_bytes);
  if (data_bytes > bytes.size() || data_start != bytes.size() - data_bytes)
    throw Error("the file is " + std::to_string(bytes.size()) + " bytes, not the " +
                std::to_string(data_start) + " + " + std::to_string(data_bytes) +
                " its header declares: it is truncated or damaged");
  uint64_t actual = checksum(&bytes[kPrefix], header_bytes);
  actual = checksum(bytes.data() + data_start, data_bytes, actual);
  if (actual != sum) throw Error("checksum mismatch: the file is damaged");

  TensorFile out;
  try {
    out.header_ = nlohmann::json::parse(bytes.begin() + kPrefix, bytes.begin() + static_cast<std::ptrdiff_t>(kPrefix + header_bytes));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("its header is not valid JSON (") + e.what() + ")");
  }
  if (!out.header_.is_object()) throw Error("its header is not a JSON object");
  const auto table = out.header_.find("tensors");
  if (table == out.header_.end() || !table->is_array()) throw Error("its header has no 'tensors' list");
  if (table->size() > limits.max_tensors) throw Error("it lists more tensors than the limit of " + std::to_string(limits.max_tensors));
  for (const auto& t : *table) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) throw Error("a tensor record has no name");
    const std::string name = t["name"].get<std::string>();
    const std::string what = "tensor '" + name + "'";
    Entry e;
    const auto dtype = t.find("dtype");
    bool known = false;
    for (const auto& d : kDtypes) {
      if (dtype != t.end() && dtype->is_string() && dtype->get<std::string>() == d.name) {
        e.dtype = d.type;
        known = true;
      }
    }
    if (!known) throw Error(what + ": unknown dtype");
    const auto shape = t.find("shape");
    if (shape == t.end() || !shape->is_array() || static_cast<int64_t>(shape->size()) > limits.max_dims)
      throw Error(what + ": 'shape' must be a list of at most " + std::to_string(limits.max_dims) + " sizes");
    uint64_t numel = 1;
    for (const auto& s : *shape) {
      if (!s.is_number_unsigned()) throw Error(what + ": a size is not a non-negative integer");
      const uint64_t v = s.get<uint64_t>();
      if (v > data_bytes || (v > 0 && numel > data_bytes / v)) throw Error(what + ": its shape holds more values than the file");
      numel *= v;
      e.shape.push_back(static_cast<int64_t>(v));
    }
    e.offset = unsigned_member(t, "offset", what);
    e.bytes = numel * at::elementSize(e.dtype);
    if (e.offset > data_bytes || e.bytes > data_bytes - e.offset)
      throw Error(what + ": its bytes lie outside the data section (offset " + std::to_string(e.offset) + ", " +
                  std::to_string(e.bytes) + " bytes of " + std::to_string(data_bytes) + ")");
    if (!out.entries_.emplace(name, std::move(e)).second) throw Error(what + " is listed twice");
    out.order_.push_back(name);
  }
  out.bytes_ = std::move(bytes);
  out.data_start_ = data_start;
  return out;
}

std::vector<std::string> TensorFile::names() const { return order_; }

uint64_t TensorFile::bytes_under(const std::string& prefix) const {
  uint64_t total = 0;
  for (const auto& [name, e] : entries_)
    if (name.compare(0, prefix.size(), prefix) == 0) total += e.bytes;
  return total;
}

const TensorFile::Entry& TensorFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw Error("tensor '" + name + "' is missing");
  return it->second;
}

at::Tensor TensorFile::copy_out(const Entry& e) const {
  at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
  if (e.bytes > 0) std::memcpy(t.data_ptr(), bytes_.data() + data_start_ + e.offset, e.bytes);
  return t;
}

namespace {
}  // namespace

at::Tensor TensorFile::take(const std::string& name, at::ScalarType dtype, at::IntArrayRef shape) const {
  const Entry& e = entry(name);
  if (e.dtype != dtype)
    throw Error("tensor '" + name + "' is " + dtype_name(e.dtype) + ", expected " + dtype_name(dtype));
  if (at::IntArrayRef(e.shape) != shape)
    throw Error("tensor '" + name + "' has shape " + shape_text(e.shape) + ", expected " + shape_text(shape));
  return copy_out(e);
}

at::Tensor TensorFile::take_any(const std::string& name, at::ScalarType dtype, int64_t dims, int64_t max_numel) const {
  const Entry& e = entry(name);
  if (e.dtype != dtype)
    throw Error("tensor '" + name + "' is " + dtype_name(e.dtype) + ", expected " + dtype_name(dtype));
  if (static_cast<int64_t>(e.shape.size()) != dims)
    throw Error("tensor '" + name + "' has " + std::to_string(e.shape.size()) + " dimensions, expected " + std::to_string(dims));
  if (e.bytes / at::elementSize(e.dtype) > static_cast<uint64_t>(max_numel))
    throw Error("tensor '" + name + "' holds more than " + std::to_string(max_numel) + " values");
  return copy_out(e);
}

}  // namespace monge::host::tensor_file
