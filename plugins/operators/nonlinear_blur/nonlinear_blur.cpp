// nonlinear_blur: the NB operator of BENCHMARKS.md, A(x) = tanh(a (k * x)) / tanh(a), with k a
// motion-blur kernel: `length` taps along a line at `angle` degrees, normalised to sum 1.
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/operator.hpp"
#include "monge/sdk.hpp"

namespace {

namespace F = torch::nn::functional;

class NonlinearBlur final : public monge::ForwardOperator {
 public:
  explicit NonlinearBlur(const monge::Params& p)
      : length_(p.integer("length")), angle_(p.real("angle")), strength_(p.real("strength")),
        padding_(p.string("padding")) {
    if (length_ % 2 == 0)
      throw monge::Error("nonlinear_blur: length must be odd (the line is centred on a pixel), got " +
                         std::to_string(length_) + "; use " + std::to_string(length_ + 1));
    kernel_ = make_kernel();
  }

  at::Tensor forward(const at::Tensor& x) const override {
    check_input(x.sizes());
    if (!c10::isFloatingType(x.scalar_type()))
      throw monge::Error(std::string("nonlinear_blur: expected a floating-point tensor, got ") +
                         c10::toString(x.scalar_type()));
    const int64_t c = x.size(1), r = length_ / 2;
    const at::Tensor k = kernel_.to(x.options()).expand({c, 1, length_, length_}).contiguous();
    at::Tensor padded = x;
    if (r > 0) {
      F::PadFuncOptions::mode_t mode = torch::kConstant;
      if (padding_ == "reflect") mode = torch::kReflect;
      else if (padding_ == "replicate") mode = torch::kReplicate;
      else if (padding_ == "circular") mode = torch::kCircular;
      padded = F::pad(x, F::PadFuncOptions({r, r, r, r}).mode(mode));
    }
    const std::array<int64_t, 2> ones{1, 1}, none{0, 0};  // stride, padding, dilation
    const at::Tensor blurred = at::conv2d(padded, k, c10::nullopt, ones, none, ones, c);
    return at::tanh(strength_ * blurred) / std::tanh(strength_);
  }

  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    check_input(signal);
    return signal;
  }

  // tanh(a u) / tanh(a) has slope at most a / tanh(a). The convolution of a padded image: a
  // nonnegative kernel summing to 1 is non-expansive on the padded image (Young), and padding
  // copies each pixel at most once (zeros, circular), 4 times (reflect: itself and one mirror per
  // axis) or (r + 1)^2 times (replicate, the corners), so ||P|| is 1, 2 or r + 1. Conservative for
  // reflect and replicate.
  std::optional<double> lipschitz() const override {
    const double r = static_cast<double>(length_ / 2);
    double pad = 1.0;
    if (padding_ == "reflect") pad = 2.0;
    if (padding_ == "replicate") pad = r + 1;
    return strength_ / std::tanh(strength_) * pad;
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .integer("length", 9, 1, 101, "taps of the motion kernel (odd)")
        .real("angle", 45, -360, 360, "direction of the motion in degrees (0: horizontal, 45: diagonal)")
        .real("strength", 1.5, 0.01, 20, "a in tanh(a (k * x)) / tanh(a)")
        .choice("padding", "reflect", {"reflect", "replicate", "zeros", "circular"},
                "how the image is extended beyond its border");
  }

 private:
  // `length` points t = -r..r along the direction, spaced so that one of the two coordinates
  // steps by exactly one pixel (45 degrees: the diagonal); each point is spread bilinearly.
  at::Tensor make_kernel() const {
    const int64_t r = length_ / 2, n = length_;
    const double theta = angle_ * M_PI / 180.0;
    const double dx = std::cos(theta), dy = -std::sin(theta);  // image rows grow downwards
    const double step = 1.0 / std::max(std::fabs(dx), std::fabs(dy));
    std::vector<double> k(static_cast<size_t>(n * n), 0.0);
    for (int64_t t = -r; t <= r; ++t) {
      const double px = r + t * dx * step, py = r + t * dy * step;
      const double fx = std::floor(px + 1e-9), fy = std::floor(py + 1e-9);
      const double wx = px - fx, wy = py - fy;
      auto add = [&](double yy, double xx, double w) {
        if (w <= 0 || yy < 0 || xx < 0 || yy >= n || xx >= n) return;
        k[static_cast<size_t>(yy * n + xx)] += w;
      };
      add(fy, fx, (1 - wy) * (1 - wx));
      add(fy, fx + 1, (1 - wy) * wx);
      add(fy + 1, fx, wy * (1 - wx));
      add(fy + 1, fx + 1, wy * wx);
    }
    at::Tensor kernel = at::tensor(k, at::TensorOptions().dtype(at::kDouble)).view({1, 1, n, n});
    return kernel / kernel.sum();
  }

  void check_input(at::IntArrayRef sizes) const {
    if (sizes.size() != 4) {
      std::ostringstream s;
      s << sizes;
      throw monge::Error("nonlinear_blur: expected an N x C x H x W tensor, got " + std::to_string(sizes.size()) +
                         " dimensions " + s.str());
    }
    const int64_t r = length_ / 2;
    if (padding_ == "reflect" && r > 0 && (r >= sizes[2] || r >= sizes[3]))
      throw monge::Error("nonlinear_blur: image of " + std::to_string(sizes[2]) + "x" + std::to_string(sizes[3]) +
                         " pixels is too small for length " + std::to_string(length_) +
                         " with padding='reflect' (height and width must exceed " + std::to_string(r) +
                         "); use a shorter kernel or padding='zeros'");
  }

  int64_t length_;
  double angle_, strength_;
  std::string padding_;
  at::Tensor kernel_;
};

}  // namespace

MONGE_PLUGIN(NonlinearBlur, operator, "nonlinear_blur", "1.0.0",
             "nonlinear motion blur tanh(a (k * x)) / tanh(a) (the NB task)", NonlinearBlur::schema())
