#pragma once
// The unpaired Wiener filter: the linear minimum-mean-square-error restoration from
//   - the forward operator's own response (any linear shift-invariant operator, optionally followed
//     by decimation, e.g. gaussian_blur or downsample: measured by probing it with impulses),
//   - a stationary prior on the clean signals (mean and autocovariance) estimated from the clean
//     set X alone, and
//   - the noise model's variance.
// No pairs are needed. Two forms:
//   - restore_fft(): the whole image at once by FFT, with reflect (or circular) padding: the
//     classical baseline of the benchmarks;
//   - Filter: the same filter cut to a finite kernel with a declared radius, so a large image
//     restored in tiles with that halo equals the whole-image result. WienerLift makes it the lift
//     Q of an operator: the map then learns a residual on top of the Wiener restoration.
//
// Conventions (docs/training.md#the-wiener-lift): with scale s (1 for a blur, the factor for
// downsampling) and taps k of radius r,
//   A(x)[c, i, j] = sum_{u,v in [-r, r]} k[u, v] x[c, s i + u, s j + v].
// On a periodic N x N grid (N = s M) its transfer function is K(f) = sum_d k[d] e^{-2 pi i f.d / N}
// and the LMMSE restoration of y = A(x) + n (white noise of variance sigma^2, x with mean mu and
// power spectrum S per value) is
//   x^ = mu + IDFT_N[ G(f) DFT_N(u)(f) ],   G(f) = K(f) S(f) / ( s^-2 sum_a |K(f_a)|^2 S(f_a) + sigma^2 ),
// where u is y - mu sum(k) with s - 1 zeros inserted between samples and f_a = f + a M runs over
// the s^2 frequencies that decimation folds onto f.

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "monge/noise.hpp"
#include "monge/operator.hpp"

namespace monge::host::wiener {

/// A linear shift-invariant operator followed by decimation by `scale`, as measured.
struct Response {
  at::Tensor taps;     ///< [2 radius + 1, 2 radius + 1] float64, k[u + radius, v + radius]
  int64_t radius = 0;
  int64_t scale = 1;
  /// sum of the taps: what a constant signal is multiplied by.
  double gain() const;
};

/// Measures `op`'s response on `channels`-channel signals by feeding it impulses, and checks that
/// it is linear, shift invariant, acts on each channel alike and on its own. Throws monge::Error
/// saying which property fails (e.g. hdr_clip is not linear) and that the Wiener filter needs it.
Response measure_response(const ForwardOperator& op, int64_t channels);

/// The clean signals' second-order statistics.
struct Prior {
  at::Tensor mean;     ///< [C] float64
  at::Tensor autocov;  ///< [C, 2 lag + 1, 2 lag + 1] float64; autocov[c, lag, lag] is the variance
  int64_t lag = 0;
};

/// Estimates the prior from clean signals N x C x H x W: the per-channel mean, and the
/// autocovariance of mean-free, Hann-tapered patches of side P = min(H, W, `patch`) averaged over
/// up to `max_patches` patches (Welch's estimator: its spectrum is the averaged periodogram, so
/// never negative), at every lag up to P - 1.
Prior estimate_prior(const at::Tensor& clean, int64_t patch = 64, int64_t max_patches = 20000);

/// The averaged periodogram of mean-free, Hann-tapered patches of side P = min(H, W, `patch`) of
/// `images` (N x C x H x W; each channel's mean over the set removed; normalised by the taper's
/// energy, so white noise of variance v gives v everywhere), zero-padded to 2P so that it is the
/// DFT of the tapered autocovariance at lags -(P - 1) .. P - 1: [C, 2P, 2P] float64. What estimate_prior() and calibration compare.
at::Tensor power_spectrum(const at::Tensor& images, int64_t patch = 64, int64_t max_patches = 20000);

/// The prior's power spectrum per value on a periodic n x m grid: [C, n, m] float64 (the DFT of
/// the autocovariance wrapped onto the grid), floored at 1e-12 of its peak.
at::Tensor spectrum(const Prior& prior, int64_t n, int64_t m);

/// K(f) on an n x m grid: [n, m] complex128.
at::Tensor transfer(const Response& response, int64_t n, int64_t m);

/// The Wiener gain G(f) on a high-resolution n x m grid (multiples of `scale`) from K (transfer())
/// and S (spectrum(), [C, n, m]): [C, n, m] complex128. noise_variance 0 gives the pseudo-inverse
/// weighted by the prior.
at::Tensor gain(const at::Tensor& K, const at::Tensor& S, double noise_variance, int64_t scale);

/// Restores measurements y (N x C x h x w) by FFT over the whole image; `padding` "reflect"
/// (default: `pad` measurement pixels of mirrored border on each side, -1: enough for the
/// operator's and the prior's reach) or "circular" (the periodic model exactly). Returns
/// N x C x (s h) x (s w) float32, not clamped.
at::Tensor restore_fft(const at::Tensor& y, const Response& response, const Prior& prior, double noise_variance,
                       const std::string& padding = "reflect", int64_t pad = -1);

/// The Wiener filter cut to a finite kernel: exact in tiles with a halo of `radius` measurement
/// pixels. Borders are mirrored (reflect, repeated for images smaller than the kernel).
struct Filter {
  at::Tensor weight;  ///< [C s^2, 1, 2 radius + 1, 2 radius + 1] float32: polyphase taps, channel c phase (a, b) at c s^2 + a s + b
  at::Tensor mean;    ///< [C] float64: the prior's mean
  double gain = 1;    ///< the response's gain: y is restored as mean + filter(y - gain mean)
  int64_t radius = 0; ///< in measurement pixels
  int64_t scale = 1;
  /// N x C x h x w measurements -> N x C x (s h) x (s w) float32 (the input's device).
  at::Tensor apply(const at::Tensor& y) const;
};

/// Designs the finite filter: G on a fine grid, its impulse response cut where what lies outside
/// radius R (in signal pixels) holds less than `tolerance` of its energy, R at most `max_radius`.
Filter design_filter(const Response& response, const Prior& prior, double noise_variance, double tolerance = 1e-4,
                     int64_t max_radius = 48);

/// How a lift's filter was made.
enum class LiftKind {
  Wiener,  ///< designed from the operator's response, the clean prior and the noise variance; reads y
  Fitted,  ///< fitted by least squares on pairs simulated from the clean set; reads the operator's own lift Q0(y)
};

/// Everything a Wiener lift is made of; what a map file records. A Fitted lift has no response
/// or prior (empty tensors): only its filter (mean = the bias per channel, gain 0).
struct Lift {
  LiftKind kind = LiftKind::Wiener;
  Response response;
  Prior prior;
  double noise_variance = 0;
  Filter filter;
};

/// Builds the Wiener lift of `op` for `clean` (N x C x H x W) and noise of `noise_variance`.
std::shared_ptr<Lift> make_lift(const ForwardOperator& op, const at::Tensor& clean, double noise_variance,
                                double tolerance = 1e-4, int64_t max_radius = 48);

/// The linear lift of an operator that is not linear shift invariant (hdr_clip, nonlinear_blur; any
/// operator of scale factor 1): the least-squares FIR filter (one `size` x `size` kernel shared by
/// the channels, plus a bias) from the operator's own lift Q0(y) to x, fitted on pairs simulated
/// from the clean set alone, y = noise(A(x)) for the first images of `clean` (up to `pixels` pixels,
/// noise drawn from `seed`). The same knowledge as the Wiener filter (A, the noise model, X), no
/// real pairs. Solves (P'P/n + ridge tr(P'P/n)/(size^2 + 1) I) w = P'x/n in float64, P the reflect-padded
/// patches of Q0(y) and a 1. The filter then reads Q0(y) with radius (size - 1) / 2.
std::shared_ptr<Lift> fit_lift(const ForwardOperator& op, const NoiseModel& noise, const at::Tensor& clean,
                               int64_t size = 15, double ridge = 1e-4, int64_t pixels = 100000, uint64_t seed = 0);

/// An operator whose forward is `inner`'s and whose lift Q is the finite Wiener filter: the map
/// T(y) = Q(y) + R(Q(y)) then starts (R = 0) as the Wiener restoration, and a quadratic cost given
/// this operator is anchored at the Wiener restoration rather than at the measurement.
class WienerLift final : public ForwardOperator {
 public:
  /// `inner_name` and `inner_params` are what a map file records of the inner operator.
  WienerLift(std::shared_ptr<ForwardOperator> inner, std::shared_ptr<const Lift> lift);

  at::Tensor forward(const at::Tensor& x) const override { return inner_->forward(x); }
  at::Tensor lift(const at::Tensor& y) const override;
  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    return inner_->measurement_shape(signal);
  }
  std::optional<double> lipschitz() const override { return inner_->lipschitz(); }
  bool monotone() const override { return inner_->monotone(); }
  int64_t scale_factor() const override { return inner_->scale_factor(); }
  int64_t lift_radius() const override;

  const std::shared_ptr<ForwardOperator>& inner() const { return inner_; }
  const std::shared_ptr<const Lift>& model() const { return lift_; }

 private:
  std::shared_ptr<ForwardOperator> inner_;
  std::shared_ptr<const Lift> lift_;
};

}  // namespace monge::host::wiener
