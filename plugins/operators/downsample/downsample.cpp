// downsample: A(x) = mean of each factor x factor block (average pooling, stride = factor), the
// usual super-resolution degradation; Q(y) = bicubic upsampling back to the signal size.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

class Downsample final : public monge::ForwardOperator {
 public:
  explicit Downsample(const monge::Params& p) : factor_(p.integer("factor")) {}

  at::Tensor forward(const at::Tensor& x) const override {
    check_signal(x.sizes());
    if (x.numel() == 0) return x.new_empty(measurement_shape(x.sizes().vec()));
    return at::avg_pool2d(x, {factor_, factor_}, {factor_, factor_});
  }

  at::Tensor lift(const at::Tensor& y) const override {
    if (y.dim() != 4)
      throw monge::Error("downsample: lift expected an N x C x H x W tensor, got " + std::to_string(y.dim()) +
                         " dimensions " + shape_text(y.sizes()));
    const std::vector<int64_t> out = {y.size(2) * factor_, y.size(3) * factor_};
    if (y.numel() == 0) return y.new_empty({y.size(0), y.size(1), out[0], out[1]});
    return at::upsample_bicubic2d(y, out, /*align_corners=*/false);
  }

  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    check_signal(signal);
    return {signal[0], signal[1], signal[2] / factor_, signal[3] / factor_};
  }

  // Each output pixel is the mean of its own block of m = factor^2 inputs, and the blocks are
  // disjoint. By Cauchy-Schwarz (sum of m values / m)^2 <= (sum of their squares) / m, so
  // ||A x||^2 <= ||x||^2 / m, i.e. ||A||_2 <= 1 / factor, with equality for constant images.
  std::optional<double> lipschitz() const override { return 1.0 / double(factor_); }

  int64_t scale_factor() const override { return factor_; }

  // Bicubic upsampling (align_corners = false) reads the 4 x 4 measurements around
  // (i + 0.5) / factor - 0.5, i.e. at most 2 pixels from i / factor.
  int64_t lift_radius() const override { return 2; }

  static monge::Schema schema() {
    return monge::Schema{}.integer("factor", 2, 2, 16, "downsampling factor per side (height and width must be multiples)");
  }

 private:
  void check_signal(at::IntArrayRef sizes) const {
    if (sizes.size() != 4)
      throw monge::Error("downsample: expected an N x C x H x W tensor, got " + std::to_string(sizes.size()) +
                         " dimensions " + shape_text(sizes));
    if (sizes[2] % factor_ != 0 || sizes[3] % factor_ != 0)
      throw monge::Error("downsample: image shape " + shape_text(sizes) + " is not divisible by factor " +
                         std::to_string(factor_) + " (height " + std::to_string(sizes[2]) + ", width " +
                         std::to_string(sizes[3]) + "); crop it to " + std::to_string(sizes[2] / factor_ * factor_) +
                         "x" + std::to_string(sizes[3] / factor_ * factor_) + " first");
  }

  int64_t factor_;
};

}  // namespace

MONGE_PLUGIN(Downsample, operator, "downsample", "1.0.0", "average-pool downsampling by an integer factor",
             Downsample::schema())
