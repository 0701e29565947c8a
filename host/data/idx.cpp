#include "host/data/idx.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <zlib.h>

#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace monge::data {

namespace {

// More data than any IDX data set holds (Fashion-MNIST's training images are 47 MB).
constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 36;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// Reads exactly n bytes; false on a short read. gzread reads plain files unchanged.
bool read_exact(gzFile f, void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    const int got = gzread(f, p, chunk);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

}  // namespace

at::Tensor read_idx(const fs::path& file, int64_t limit) {
  const std::string where = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw Error(where + ": no such IDX file" +
                (file.string().find("fashion-mnist") != std::string::npos
                     ? std::string(" (install Debian's dataset-fashion-mnist: scripts/install-deps.sh)")
                     : std::string()));
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(file.c_str(), "rb"));
  if (!f) throw Error(where + ": cannot open (" + std::strerror(errno) + ")");
  unsigned char magic[4];
  if (!read_exact(f.get(), magic, 4)) throw Error(where + ": truncated IDX file (no header)");
  if (magic[0] != 0 || magic[1] != 0)
    throw Error(where + ": not an IDX file (bad magic number); expected MNIST-style IDX data");
  if (magic[2] != 0x08)
    throw Error(where + ": IDX element type 0x" + std::to_string(magic[2]) + " is not supported (only unsigned bytes, 0x08)");
  const int ndim = magic[3];
  if (ndim < 1 || ndim > 4) throw Error(where + ": IDX file declares " + std::to_string(ndim) + " dimensions (1 to 4 supported)");
  std::vector<int64_t> dims(ndim);
  for (int i = 0; i < ndim; ++i) {
    unsigned char b[4];
    if (!read_exact(f.get(), b, 4)) throw Error(where + ": truncated IDX header");
    dims[i] = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
    if (dims[i] <= 0 || dims[i] > (1 << 28)) throw Error(where + ": implausible IDX dimension " + std::to_string(dims[i]));
  }
  if (limit > 0 && limit < dims[0]) dims[0] = limit;
  // Four dimensions of up to 2^28 overflow 64 bits: bound the product as it is formed.
  uint64_t total = 1;
  for (const int64_t d : dims) {
    if (total > kMaxIdxBytes / static_cast<uint64_t>(d))
      throw Error(where + ": the IDX header declares more than " + std::to_string(kMaxIdxBytes) + " data bytes");
    total *= static_cast<uint64_t>(d);
  }
  // The data is read as it comes, in chunks that double from 1 MiB, and the tensor made once it
  // is all there: a short file claiming huge dimensions costs about the bytes it holds.
  std::vector<uint8_t> bytes;
  while (bytes.size() < total) {
    const size_t at = bytes.size();
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(total - at, std::max<uint64_t>(at, uint64_t{1} << 20)));
    bytes.resize(at + chunk);
    if (!read_exact(f.get(), bytes.data() + at, chunk))
      throw Error(where + ": truncated IDX file (expected " + std::to_string(total) + " data bytes)");
  }
  at::Tensor out = at::empty(dims, at::kByte);
  if (total > 0) std::memcpy(out.data_ptr<uint8_t>(), bytes.data(), total);
  return out;
}

at::Tensor read_idx_images(const fs::path& file, int64_t limit) {
  at::Tensor raw = read_idx(file, limit);
  if (raw.dim() != 3) throw Error(file.string() + ": expected images (3 dimensions N x H x W), found " + std::to_string(raw.dim()));
  return raw.unsqueeze(1).to(at::kFloat).div_(127.5).sub_(1.0);
}

fs::path fashion_mnist_dir() {
  if (const char* env = std::getenv("MONGE_FASHION_MNIST")) return env;
  return "/usr/share/datasets/fashion-mnist";
}

}  // namespace monge::data
