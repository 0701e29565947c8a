#pragma once
// Image-quality measures used by evaluation. Inputs are batches N x C x H x W in [-1, 1]; both are
// measured on the [0, 1] scale (data range 1), per image, then averaged over the batch.

#include <ATen/core/Tensor.h>

namespace monge::host {

/// PSNR in dB per image ([N], float64); the MSE is floored at 1e-12 (about 120 dB).
at::Tensor psnr_per_image(const at::Tensor& restored, const at::Tensor& reference);

/// SSIM per image ([N], float64) as scikit-image's structural_similarity with
/// gaussian_weights=True, sigma=1.5, data_range=1, K1=0.01, K2=0.03 and its default sample
/// covariance (N/(N-1) with N=121 window values): an 11x11 Gaussian window, statistics over the
/// "valid" positions only (the 5-pixel border is excluded, as skimage crops it), channels averaged.
/// Throws monge::Error for images smaller than 11x11.
at::Tensor ssim_per_image(const at::Tensor& restored, const at::Tensor& reference);

/// Means of the above over the batch.
double psnr(const at::Tensor& restored, const at::Tensor& reference);
double ssim(const at::Tensor& restored, const at::Tensor& reference);

}  // namespace monge::host
