// inpaint: missing pixels. A(x) = m * x + (1 - m) * fill with a fixed binary mask m (1 = observed),
// drawn as random boxes from a seed, or read from a mask file (binary PGM, white = observed).
//
// The mask is the same for every sample: UOTIP's likelihood cost compares A(T(y)) with y, so the
// operator must reproduce the mask that made y; a fresh mask per sample could not be recovered.
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/operator.hpp"
#include "monge/sdk.hpp"

namespace {

// Reads a binary PGM (P5, maxval < 256) as an H x W tensor of 0/1 (nonzero = observed).
at::Tensor read_pgm_mask(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw monge::Error("inpaint: cannot open the mask file " + file);
  auto token = [&]() {
    std::string t;
    while (in >> t) {
      if (t[0] != '#') return t;
      std::string rest;
      std::getline(in, rest);
    }
    return std::string();
  };
  const std::string magic = token();
  if (magic != "P5")
    throw monge::Error("inpaint: " + file + " is not a binary PGM (P5) file; convert the mask first, e.g. "
                       "'vips copy mask.png mask.pgm'");
  int64_t w = 0, h = 0, maxval = 0;
  try {
    w = std::stoll(token());
    h = std::stoll(token());
    maxval = std::stoll(token());
  } catch (const std::exception&) {
    throw monge::Error("inpaint: " + file + " has a malformed PGM header");
  }
  if (w < 1 || h < 1 || w > 65536 || h > 65536 || maxval < 1 || maxval > 255)
    throw monge::Error("inpaint: " + file + " must be an 8-bit PGM of at most 65536 x 65536 pixels");
  in.get();  // the single whitespace after maxval
  std::vector<uint8_t> bytes(static_cast<size_t>(w * h));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    throw monge::Error("inpaint: " + file + " is truncated (expected " + std::to_string(w * h) + " pixel bytes)");
  return at::tensor(bytes, at::TensorOptions().dtype(at::kByte)).view({h, w}).gt(0).to(at::kDouble);
}

class Inpaint final : public monge::ForwardOperator {
 public:
  explicit Inpaint(const monge::Params& p)
      : boxes_(p.integer("boxes")), box_size_(p.integer("box_size")), seed_(p.integer("seed")),
        fill_(p.real("fill")), mask_file_(p.string("mask")) {
    if (!mask_file_.empty()) file_mask_ = read_pgm_mask(mask_file_);
  }

  at::Tensor forward(const at::Tensor& x) const override {
    if (x.dim() != 4)
      throw monge::Error("inpaint: expected an N x C x H x W tensor, got " + std::to_string(x.dim()) + " dimensions");
    if (!c10::isFloatingType(x.scalar_type()))
      throw monge::Error(std::string("inpaint: expected a floating-point tensor, got ") + c10::toString(x.scalar_type()));
    const at::Tensor m = mask(x.size(2), x.size(3)).to(x.options()).view({1, 1, x.size(2), x.size(3)});
    return x * m + (1 - m) * fill_;
  }

  /// The mask for images of h x w pixels (1 = observed), the same on every call.
  at::Tensor mask(int64_t h, int64_t w) const {
    if (file_mask_.defined()) {
      if (file_mask_.size(0) != h || file_mask_.size(1) != w)
        throw monge::Error("inpaint: the mask " + mask_file_ + " is " + std::to_string(file_mask_.size(1)) + "x" +
                           std::to_string(file_mask_.size(0)) + " pixels, the images are " + std::to_string(w) + "x" +
                           std::to_string(h));
      return file_mask_;
    }
    at::Tensor m = at::ones({h, w}, at::kDouble);
    std::mt19937_64 rng(static_cast<uint64_t>(seed_));
    const int64_t bh = std::min(box_size_, h), bw = std::min(box_size_, w);
    for (int64_t b = 0; b < boxes_; ++b) {
      const int64_t top = static_cast<int64_t>(rng() % static_cast<uint64_t>(h - bh + 1));
      const int64_t left = static_cast<int64_t>(rng() % static_cast<uint64_t>(w - bw + 1));
      m.narrow(0, top, bh).narrow(1, left, bw).zero_();
    }
    return m;
  }

  std::optional<double> lipschitz() const override { return 1.0; }
  // A(x1) - A(x2) = m (x1 - x2) with m in {0, 1}: <m d, d> >= 0.
  bool monotone() const override { return true; }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("boxes", 1, 0, 1000, "number of missing boxes (ignored with a mask file)")
        .integer("box_size", 12, 1, 100000, "side of each box in pixels (clipped to the image)")
        .integer("seed", 0, 0, 2147483647, "seed of the box positions (the same mask for every sample)")
        .real("fill", 0, -1, 1, "value of missing pixels in A(x) (0 is mid-grey on [-1, 1])")
        .string("mask", "", "binary PGM (P5) mask, white = observed; overrides the boxes");
  }

 private:
  int64_t boxes_, box_size_, seed_;
  double fill_;
  std::string mask_file_;
  at::Tensor file_mask_;
};

}  // namespace

MONGE_PLUGIN(Inpaint, operator, "inpaint", "1.0.0", "missing pixels: a fixed mask of random boxes or from a file",
             Inpaint::schema())
