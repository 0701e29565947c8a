// gaussian_blur: depthwise Gaussian blur, A(x) = g * x per channel, with a normalised sampled
// Gaussian kernel g applied as two separable 1-D convolutions on a padded input.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

enum class Padding { Reflect, Replicate, Zeros, Circular };

Padding parse_padding(const std::string& s) {
  if (s == "reflect") return Padding::Reflect;
  if (s == "replicate") return Padding::Replicate;
  if (s == "circular") return Padding::Circular;
  return Padding::Zeros;  // the schema admits nothing else
}

// Index of the input sample that padded position `p` (in [-r, n + r)) copies along an axis of
// length `n`, or -1 for a zero. Both the forward pass and the Lipschitz bound use this one
// definition, so the bound is about exactly the operator that runs. Reflect needs r < n, which
// the caller checks; circular wraps as often as needed, so any kernel fits any image.
int64_t source_index(int64_t p, int64_t n, Padding mode) {
  switch (mode) {
    case Padding::Reflect: return p < 0 ? -p : (p >= n ? 2 * (n - 1) - p : p);
    case Padding::Replicate: return std::clamp<int64_t>(p, 0, n - 1);
    case Padding::Circular: return ((p % n) + n) % n;
    case Padding::Zeros: return (p >= 0 && p < n) ? p : -1;
  }
  return -1;
}

class GaussianBlur final : public monge::ForwardOperator {
 public:
  explicit GaussianBlur(const monge::Params& p)
      : size_(p.integer("size")), sigma_(p.real("sigma")), padding_(parse_padding(p.string("padding"))) {
    if (size_ % 2 == 0)
      throw monge::ParamError("gaussian_blur: parameter 'size' must be odd, got " + std::to_string(size_));
    radius_ = size_ / 2;
    taps_.resize(size_);
    double total = 0;
    for (int64_t i = 0; i < size_; ++i) {
      const double d = double(i - radius_);
      taps_[i] = std::exp(-d * d / (2 * sigma_ * sigma_));
      total += taps_[i];
    }
    // The centre tap is exp(0) = 1, so the total never underflows even for tiny sigma.
    for (double& t : taps_) t /= total;
    kernel_ = at::tensor(taps_, at::TensorOptions().dtype(at::kDouble));
    lipschitz_ = compute_lipschitz();
  }

  at::Tensor forward(const at::Tensor& x) const override {
    check_input(x.sizes());
    if (!c10::isFloatingType(x.scalar_type()))
      throw monge::Error(std::string("gaussian_blur: expected a floating-point tensor, got ") +
                         c10::toString(x.scalar_type()));
    if (radius_ == 0 || x.numel() == 0) return x.clone();
    const int64_t channels = x.size(1);
    const at::Tensor g = kernel_.to(x.options());
    // groups = C with one copy of the taps per channel: channels never mix.
    const at::Tensor vertical = g.view({1, 1, size_, 1}).expand({channels, 1, size_, 1}).contiguous();
    const at::Tensor horizontal = g.view({1, 1, 1, size_}).expand({channels, 1, 1, size_}).contiguous();
    // Padding one axis right before its own 1-D pass gives the same result as padding both axes
    // first (every padded column is a copy of an input column, or zero), with less work.
    const std::array<int64_t, 2> ones{1, 1}, none{0, 0};  // stride, padding, dilation
    at::Tensor y = at::conv2d(pad_axis(x, 2), vertical, c10::nullopt, ones, none, ones, channels);
    return at::conv2d(pad_axis(y, 3), horizontal, c10::nullopt, ones, none, ones, channels);
  }

  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    check_input(signal);
    return signal;
  }

  std::optional<double> lipschitz() const override { return lipschitz_; }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("size", 13, 1, 101, "kernel width and height in pixels (odd)")
        .real("sigma", 1.5, 0.01, 100, "standard deviation of the Gaussian in pixels")
        .choice("padding", "reflect", {"reflect", "replicate", "zeros", "circular"},
                "how the image is extended beyond its border");
  }

 private:
  void check_input(at::IntArrayRef sizes) const {
    if (sizes.size() != 4)
      throw monge::Error("gaussian_blur: expected an N x C x H x W tensor, got " + std::to_string(sizes.size()) +
                         " dimensions " + shape_text(sizes));
    if (padding_ == Padding::Reflect && radius_ > 0 && (radius_ >= sizes[2] || radius_ >= sizes[3]))
      throw monge::Error("gaussian_blur: image of " + std::to_string(sizes[2]) + "x" + std::to_string(sizes[3]) +
                         " pixels is too small for kernel size " + std::to_string(size_) +
                         " with padding='reflect' (height and width must exceed " + std::to_string(radius_) +
                         "); use a smaller size (at most " +
                         std::to_string(2 * std::max<int64_t>(std::min(sizes[2], sizes[3]) - 1, 0) + 1) +
                         ") or padding='zeros'");
  }

  // Extends axis `dim` by radius_ on both sides.
  at::Tensor pad_axis(const at::Tensor& x, int64_t dim) const {
    if (padding_ == Padding::Zeros)
      return dim == 2 ? at::constant_pad_nd(x, {0, 0, radius_, radius_}) : at::constant_pad_nd(x, {radius_, radius_});
    const int64_t n = x.size(dim);
    std::vector<int64_t> index(n + 2 * radius_);
    for (int64_t p = -radius_; p < n + radius_; ++p) index[p + radius_] = source_index(p, n, padding_);
    return x.index_select(dim, at::tensor(index, at::TensorOptions().dtype(at::kLong)).to(x.device()));
  }

  // A bound on ||A||_2 valid for every image size the operator accepts.
  //
  // Along one axis of length n the operator is y = M x with M = K P: P (n + 2r by n) pads, each
  // row holding a single 1 (reflect, replicate, circular) or none (zeros), and K (n by n + 2r) is
  // the valid convolution with the taps g >= 0, sum g = 1. So M >= 0 and each row of M sums to 1
  // (at most 1 for zeros). Padding and kernel are separable, so on each channel A = M_H (x) M_W
  // and ||A||_2 = ||M_H||_2 ||M_W||_2: a bound b >= ||M_n||_2^2 for every n gives ||A||_2 <= b.
  //   zeros, circular: columns sum to at most 1 as well (circular: M is circulant), so the Schur
  //     test ||M||_2^2 <= (max row sum) (max column sum) gives b = 1.
  //   reflect, replicate: pixels near a border are copied into the padding, so their columns sum
  //     to more than 1, and the plain Schur test is loose (about size / 8 for a wide kernel with
  //     replicate). We use its weighted form, the Collatz-Wielandt bound: for the nonnegative
  //     B = M^T M and any q > 0, ||M||_2^2 = rho(B) <= max_j (B q)_j / q_j. With q = 1 this is
  //     the Schur bound (B 1 holds the column sums); q = B^t 1 (a few power steps) makes it
  //     nearly exact. We compute it for every n up to a size N beyond which it cannot change:
  //     M is banded (|i - j| <= r) and B too (2r); q_t is exactly 1 from r + 1 + 2r(t - 1)
  //     pixels away from a border; and near one border q_t, B q_t depend on n only through the
  //     other border, whose influence reaches at most 3r + 2rt pixels in. So for all
  //     n >= N = 6r + 4rt + 2 the ratios are those of one border alone, and 1 in between:
  //     n = N stands for every larger size.
  double compute_lipschitz() const {
    if (padding_ == Padding::Zeros || padding_ == Padding::Circular || radius_ == 0) return 1.0;
    const int64_t r = radius_;
    // Power steps: the tail argument needs a fixed count; small sizes, where the borders overlap
    // and the norm is largest, are cheap, so they get more.
    constexpr int kTailSteps = 2, kSmallSteps = 8;
    const int64_t last = 6 * r + 4 * r * kTailSteps + 2;
    double worst = 1.0;
    for (int64_t n = padding_ == Padding::Reflect ? r + 1 : 1; n <= last; ++n)
      worst = std::max(worst, collatz_bound(n, n <= 2 * r + 2 ? kSmallSteps : kTailSteps));
    // Headroom for rounding in the sums (relative error around 1e-15).
    return worst * (1 + 1e-12);
  }

  // max_j (B q)_j / q_j for B = M^T M on an axis of length n and q = B^steps 1. q stays positive:
  // B's diagonal holds at least the squared centre tap.
  double collatz_bound(int64_t n, int steps) const {
    std::vector<double> q(n, 1.0), mq(n), bq(n);
    const double* g = taps_.data();
    const int64_t r = radius_;
    // Rows at least r from both ends read plain windows; only border rows need source_index.
    auto inside = [&](int64_t i) { return i >= r && i + r < n; };
    auto apply_b = [&] {
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        if (inside(i)) {
          const double* v = q.data() + (i - r);
          for (int64_t k = 0; k < size_; ++k) s += g[k] * v[k];
        } else {
          for (int64_t k = 0; k < size_; ++k) s += g[k] * q[source_index(i + k - r, n, padding_)];
        }
        mq[i] = s;
      }
      std::fill(bq.begin(), bq.end(), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        if (inside(i)) {
          double* out = bq.data() + (i - r);
          for (int64_t k = 0; k < size_; ++k) out[k] += g[k] * mq[i];
        } else {
          for (int64_t k = 0; k < size_; ++k) bq[source_index(i + k - r, n, padding_)] += g[k] * mq[i];
        }
      }
    };
    for (int s = 0; s < steps; ++s) {
      apply_b();
      const double top = *std::max_element(bq.begin(), bq.end());
      for (int64_t j = 0; j < n; ++j) q[j] = bq[j] / top;  // rescaling leaves the ratios as they are
    }
    apply_b();
    double ratio = 0;
    for (int64_t j = 0; j < n; ++j) ratio = std::max(ratio, bq[j] / q[j]);
    return ratio;
  }

  int64_t size_;
  double sigma_;
  Padding padding_;
  int64_t radius_ = 0;
  std::vector<double> taps_;
  at::Tensor kernel_;
  double lipschitz_ = 1.0;
};

}  // namespace

MONGE_PLUGIN(GaussianBlur, operator, "gaussian_blur", "1.0.0", "depthwise Gaussian blur (separable, padded)",
             GaussianBlur::schema())
