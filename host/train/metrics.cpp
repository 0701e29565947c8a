#include "host/train/metrics.hpp"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "monge/plugin.hpp"

namespace monge::host {

namespace {

std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

void check_pair(const at::Tensor& a, const at::Tensor& b, const char* what) {
  if (a.dim() != 4 || a.sizes() != b.sizes())
    throw Error(std::string(what) + ": expected two N x C x H x W batches of the same shape, got " + shape_text(a) +
                " and " + shape_text(b));
}

// [0, 1] scale, float64, on the CPU.
at::Tensor unit(const at::Tensor& t) { return (t.detach().to(at::kCPU, at::kDouble) + 1) / 2; }

}  // namespace

at::Tensor psnr_per_image(const at::Tensor& restored, const at::Tensor& reference) {
  check_pair(restored, reference, "psnr");
  at::Tensor diff = unit(restored) - unit(reference);
  at::Tensor mse = diff.square().reshape({diff.size(0), -1}).mean(1).clamp_min(1e-12);
  return -10.0 * at::log10(mse);
}

at::Tensor ssim_per_image(const at::Tensor& restored, const at::Tensor& reference) {
  check_pair(restored, reference, "ssim");
  constexpr int64_t kRadius = 5;  // skimage: int(truncate 3.5 * sigma 1.5 + 0.5)
  constexpr double kSigma = 1.5;
  const int64_t n = restored.size(0), c = restored.size(1), h = restored.size(2), w = restored.size(3);
  if (h < 2 * kRadius + 1 || w < 2 * kRadius + 1)
    throw Error("ssim: images must be at least 11 x 11 (the Gaussian window), got " + std::to_string(h) + " x " +
                std::to_string(w));
  at::Tensor g = at::arange(-kRadius, kRadius + 1, at::kDouble);
  g = at::exp(-0.5 * g.square() / (kSigma * kSigma));
  g = g / g.sum();
  // The 11x11 window is separable: filter rows, then columns (valid positions only). The five
  // quantities x, y, x^2, y^2, xy go through one call, stacked along the batch axis.
  const at::Tensor rows = g.view({1, 1, 1, 2 * kRadius + 1}), cols = g.view({1, 1, 2 * kRadius + 1, 1});
  const at::Tensor x = unit(restored), y = unit(reference);
  at::Tensor stack = at::cat({x, y, x * x, y * y, x * y}, 0).reshape({5 * n * c, 1, h, w});
  stack = at::conv2d(at::conv2d(stack, rows), cols).reshape({5, n, c, h - 2 * kRadius, w - 2 * kRadius});
  const at::Tensor mx = stack[0], my = stack[1];
  const double cov_norm = 121.0 / 120.0;
  const at::Tensor vx = cov_norm * (stack[2] - mx * mx);
  const at::Tensor vy = cov_norm * (stack[3] - my * my);
  const at::Tensor vxy = cov_norm * (stack[4] - mx * my);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const at::Tensor map = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
  return map.reshape({n, -1}).mean(1);
}

double psnr(const at::Tensor& restored, const at::Tensor& reference) {
  return psnr_per_image(restored, reference).mean().item<double>();
}

double ssim(const at::Tensor& restored, const at::Tensor& reference) {
  return ssim_per_image(restored, reference).mean().item<double>();
}

}  // namespace monge::host
