#pragma once
/// PSNR and SSIM of image batches, the one implementation used by the `psnr` and `ssim` metric
/// plugins and by the host's training evaluation. Header-only; include it where needed (it is not
/// part of monge/sdk.hpp, since it pulls in the full ATen operator headers).
///
/// Inputs are batches N x C x H x W in [-1, 1] of the same shape; both are measured on the [0, 1]
/// scale (data range 1) in float64 on the CPU. Results are float64 tensors of shape [N].

#include <string>

#include <ATen/ATen.h>

#include "monge/plugin.hpp"
#include "monge/shape.hpp"

namespace monge::image_metrics {

/// The MSE floor of PSNR: identical images score -10 log10(1e-12) = 120 dB instead of infinity.
inline constexpr double kPsnrMseFloor = 1e-12;
/// SSIM's Gaussian window: sigma 1.5 truncated at 3.5 sigma, radius 5, 11 x 11 values.
inline constexpr double kSsimSigma = 1.5;
inline constexpr int64_t kSsimRadius = 5;  // skimage: int(truncate 3.5 * sigma 1.5 + 0.5)
inline constexpr int64_t kSsimWindow = 2 * kSsimRadius + 1;

namespace detail {

/// Throws monge::Error, starting with `what`, unless a and b are N x C x H x W of the same shape.
inline void check_pair(const at::Tensor& a, const at::Tensor& b, const char* what) {
  if (a.dim() != 4 || a.sizes() != b.sizes())
    throw Error(std::string(what) + ": expected two N x C x H x W batches of the same shape, got " + shape_text(a) +
                " and " + shape_text(b));
}

/// [0, 1] scale, float64, on the CPU.
inline at::Tensor unit(const at::Tensor& t) { return (t.detach().to(at::kCPU, at::kDouble) + 1) / 2; }

}  // namespace detail

/// PSNR in dB per image: -10 log10(MSE) over all C x H x W values, MSE floored at kPsnrMseFloor.
inline at::Tensor psnr_per_image(const at::Tensor& restored, const at::Tensor& reference) {
  detail::check_pair(restored, reference, "psnr");
  const at::Tensor diff = detail::unit(restored) - detail::unit(reference);
  const at::Tensor mse = diff.square().reshape({diff.size(0), -1}).mean(1).clamp_min(kPsnrMseFloor);
  return -10.0 * at::log10(mse);
}

/// SSIM per image as scikit-image's structural_similarity with gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=True (N/(N-1) with N = 121 window values), data_range=1, K1=0.01,
/// K2=0.03 and channel_axis set: an 11 x 11 Gaussian window, statistics over the "valid" positions
/// only (skimage crops the 5-pixel border), the mean over positions and channels. Throws
/// monge::Error for images smaller than 11 x 11.
inline at::Tensor ssim_per_image(const at::Tensor& restored, const at::Tensor& reference) {
  detail::check_pair(restored, reference, "ssim");
  const int64_t n = restored.size(0), c = restored.size(1), h = restored.size(2), w = restored.size(3);
  if (h < kSsimWindow || w < kSsimWindow)
    throw Error("ssim: images must be at least 11 x 11 (the Gaussian window), got " + std::to_string(h) + " x " +
                std::to_string(w));
  at::Tensor g = at::arange(-kSsimRadius, kSsimRadius + 1, at::kDouble);
  g = at::exp(-0.5 * g.square() / (kSsimSigma * kSsimSigma));
  g = g / g.sum();
  // The 11x11 window is separable: filter rows, then columns (valid positions only). The five
  // quantities x, y, x^2, y^2, xy go through one call, stacked along the batch axis.
  const at::Tensor rows = g.view({1, 1, 1, kSsimWindow}), cols = g.view({1, 1, kSsimWindow, 1});
  const at::Tensor x = detail::unit(restored), y = detail::unit(reference);
  at::Tensor stack = at::cat({x, y, x * x, y * y, x * y}, 0).reshape({5 * n * c, 1, h, w});
  stack = at::conv2d(at::conv2d(stack, rows), cols).reshape({5, n, c, h - 2 * kSsimRadius, w - 2 * kSsimRadius});
  const at::Tensor mx = stack[0], my = stack[1];
  const double count = double(kSsimWindow * kSsimWindow), cov_norm = count / (count - 1);
  const at::Tensor vx = cov_norm * (stack[2] - mx * mx);
  const at::Tensor vy = cov_norm * (stack[3] - my * my);
  const at::Tensor vxy = cov_norm * (stack[4] - mx * my);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const at::Tensor map = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
  return map.reshape({n, -1}).mean(1);
}

/// Means of the above over the batch.
inline double psnr(const at::Tensor& restored, const at::Tensor& reference) {
  return psnr_per_image(restored, reference).mean().item<double>();
}
inline double ssim(const at::Tensor& restored, const at::Tensor& reference) {
  return ssim_per_image(restored, reference).mean().item<double>();
}

}  // namespace monge::image_metrics
