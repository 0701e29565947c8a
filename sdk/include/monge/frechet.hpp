#pragma once
/// The Fréchet distance between two Gaussians fitted to feature sets: the arithmetic of FID
/// (Heusel et al. 2017), used by the `fid` metric plugin. Header-only; not part of monge/sdk.hpp.
///
///   d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})
///
/// in float64, with S the unbiased sample covariance (divided by N - 1, as numpy.cov). The trace of
/// (S1 S2)^{1/2} is computed without a non-symmetric square root: S1 S2 is similar to the symmetric
/// positive semi-definite M = S1^{1/2} S2 S1^{1/2}, so tr (S1 S2)^{1/2} = sum_i sqrt(lambda_i(M)),
/// with S1^{1/2} and the lambda_i from symmetric eigendecompositions and round-off negatives
/// clamped to 0. This stays finite and real for singular covariances (fewer images than feature
/// dimensions), where scipy.linalg.sqrtm needs an offset or returns complex noise.

#include <algorithm>
#include <string>
#include <utility>

#include <ATen/ATen.h>

#include "monge/plugin.hpp"

namespace monge::frechet {

/// Mean [D] and unbiased covariance [D, D] of features [N, D] (N >= 2), in float64 on the CPU.
inline std::pair<at::Tensor, at::Tensor> mean_cov(const at::Tensor& features, const std::string& who = "fid") {
  if (features.dim() != 2)
    throw Error(who + ": features must be N x D, got " + std::to_string(features.dim()) + " dimensions");
  if (features.size(0) < 2)
    throw Error(who + ": a set needs at least 2 images for a covariance, got " + std::to_string(features.size(0)));
  const at::Tensor f = features.detach().to(at::kCPU, at::kDouble);
  const at::Tensor mu = f.mean(0);
  const at::Tensor centred = f - mu;
  const at::Tensor cov = centred.t().matmul(centred) / static_cast<double>(f.size(0) - 1);
  return {mu, cov};
}

/// Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// round-off clamped to 0).
inline at::Tensor sqrt_psd(const at::Tensor& s) {
  const at::Tensor sym = (s + s.t()) / 2;
  auto [values, vectors] = at::linalg_eigh(sym);
  return vectors.matmul(at::diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
}

/// tr (S1 S2)^{1/2} for symmetric positive semi-definite S1, S2.
inline double trace_sqrt_product(const at::Tensor& s1, const at::Tensor& s2) {
  const at::Tensor r = sqrt_psd(s1);
  at::Tensor m = r.matmul(s2).matmul(r);
  m = (m + m.t()) / 2;
  return at::linalg_eigvalsh(m).clamp_min(0).sqrt().sum().item<double>();
}

/// The Fréchet distance between N(mu1, s1) and N(mu2, s2).
inline double distance(const at::Tensor& mu1, const at::Tensor& s1, const at::Tensor& mu2, const at::Tensor& s2) {
  const double mean_term = (mu1 - mu2).square().sum().item<double>();
  const double trace_term = (s1.trace() + s2.trace()).item<double>() - 2 * trace_sqrt_product(s1, s2);
  // The trace term is >= 0 in exact arithmetic; round-off can leave a tiny negative.
  return mean_term + std::max(0.0, trace_term);
}

/// FID of two feature sets [N1, D] and [N2, D].
inline double fid(const at::Tensor& features1, const at::Tensor& features2, const std::string& who = "fid") {
  if (features1.dim() == 2 && features2.dim() == 2 && features1.size(1) != features2.size(1))
    throw Error(who + ": the two feature sets have " + std::to_string(features1.size(1)) + " and " +
                std::to_string(features2.size(1)) + " dimensions");
  const auto [mu1, s1] = mean_cov(features1, who);
  const auto [mu2, s2] = mean_cov(features2, who);
  return distance(mu1, s1, mu2, s2);
}

}  // namespace monge::frechet
