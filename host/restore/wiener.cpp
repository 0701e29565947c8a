#include "host/restore/wiener.hpp"

#include "host/core/int_math.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace monge::host::wiener {

namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(3);
  s << v;
  return s.str();
}

// Index of the sample that position p (any integer) mirrors on an axis of n samples: reflect
// padding without repeating the edge, repeated as often as needed (so any pad fits any size).
int64_t reflect(int64_t p, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  int64_t q = ((p % period) + period) % period;
  return q >= n ? period - q : q;
}

// x (N x C x H x W) with `pad` mirrored samples on every side.
at::Tensor reflect_pad(const at::Tensor& x, int64_t pad) {
  if (pad == 0) return x;
  at::Tensor out = x;
  for (int64_t dim : {2, 3}) {
    const int64_t n = x.size(dim);
    std::vector<int64_t> index(static_cast<size_t>(n + 2 * pad));
    for (int64_t p = -pad; p < n + pad; ++p) index[static_cast<size_t>(p + pad)] = reflect(p, n);
    out = out.index_select(dim, at::tensor(index, at::TensorOptions().dtype(at::kLong)).to(x.device()));
  }
  return out;
}

// Sums a centred [..., 2r + 1, 2r + 1] array of values at offsets -r..r onto a periodic n x m
// grid (offset d lands at d mod n): [..., n, m].
at::Tensor wrap(const at::Tensor& centred, int64_t n, int64_t m) {
  const int64_t r = (centred.size(-1) - 1) / 2;
  auto index = [r](int64_t size) {
    std::vector<int64_t> v;
    for (int64_t d = -r; d <= r; ++d) v.push_back(((d % size) + size) % size);
    return at::tensor(v, at::TensorOptions().dtype(at::kLong));
  };
  auto sizes = centred.sizes().vec();
  sizes[sizes.size() - 2] = n;
  at::Tensor rows = at::zeros(sizes, centred.options());
  rows.index_add_(-2, index(n), centred);
  sizes.back() = m;
  at::Tensor out = at::zeros(sizes, centred.options());
  out.index_add_(-1, index(m), rows);
  return out;
}

void check_batch(const at::Tensor& t, const char* who, const char* what) {
  if (t.dim() != 4) {
    std::ostringstream s;
    s << who << ": " << what << " must be an N x C x H x W tensor, got shape " << t.sizes();
    throw Error(s.str());
  }
}

}  // namespace

double Response::gain() const { return taps.sum().item<double>(); }

namespace {

// The probes of measure_response: n x n images (n = s m) measured as m x m; `why` ends its errors.
struct Probe {
  const ForwardOperator& op;
  int64_t channels, s, m, n;
  std::string why;
};

void check_probe_shape(const Probe& p) {
  const std::vector<int64_t> expected{1, p.channels, p.m, p.m};
  std::vector<int64_t> got;
  try {
    got = p.op.measurement_shape({1, p.channels, p.n, p.n});
  } catch (const std::exception& e) {
    throw Error(std::string("wiener: the operator cannot take a ") + std::to_string(p.n) + "x" + std::to_string(p.n) +
                " probe image (" + e.what() + ")");
  }
  if (got != expected)
    throw Error("wiener: the operator's measurements of an " + std::to_string(p.n) + "x" + std::to_string(p.n) +
                " image are not " + std::to_string(p.m) + "x" + std::to_string(p.m) + " (scale factor " +
                std::to_string(p.s) + ")" + p.why);
}

// The impulse response on a (2n + 1) x (2n + 1) grid centred at (n, n), from impulses at
// (c0 + a, c0 + b) for every phase (a, b): A(x)[i, j] = k[c0 + a - s i, c0 + b - s j]. Checks that
// each channel is measured alone and alike.
at::Tensor impulse_response(const Probe& p) {
  const int64_t s = p.s, m = p.m, n = p.n, channels = p.channels;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const int64_t c0 = s * (m / 2);
  at::Tensor full = at::zeros({2 * n + 1, 2 * n + 1}, at::TensorOptions().dtype(at::kDouble));
  auto fa = full.accessor<double, 2>();
  for (int64_t a = 0; a < s; ++a) {
    for (int64_t b = 0; b < s; ++b) {
      at::Tensor first;
      for (int64_t ch = 0; ch < channels; ++ch) {
        at::Tensor x = at::zeros({1, channels, n, n}, f32);
        x[0][ch][c0 + a][c0 + b] = 1;
        const at::Tensor y = p.op.forward(x).to(at::kCPU, at::kDouble);
        const at::Tensor own = y[0][ch];
        const double peak = own.abs().max().item<double>();
        if (channels > 1) {
          const double other = (y.abs().sum(1)[0] - own.abs()).max().item<double>();
          if (other > 1e-6 * std::max(peak, 1e-30))
            throw Error("wiener: the operator mixes channels (an impulse in channel " + std::to_string(ch) +
                        " reaches the others)" + p.why);
        }
        if (ch == 0) {
          first = own;
          auto ya = own.accessor<double, 2>();
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < m; ++j) fa[c0 + a - s * i + n][c0 + b - s * j + n] = ya[i][j];
        } else if ((own - first).abs().max().item<double>() > 1e-6 * std::max(peak, 1e-30)) {
          throw Error("wiener: the operator acts differently on channel " + std::to_string(ch) + " than on channel 0" + p.why);
        }
      }
    }
  }
  return full;
}

// Checks that the operator is linear (A(x1 + alpha x2) = A(x1) + alpha A(x2), A(0) = 0) and shift
// invariant: away from the borders, A(x1) is the measured taps applied to x1.
void check_linear_shift_invariant(const Probe& p, const Response& out) {
  const int64_t s = p.s, n = p.n, channels = p.channels, r = out.radius;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor x1 = at::rand({2, channels, n, n}, gen, f32) * 2 - 1;
  const at::Tensor x2 = at::rand({2, channels, n, n}, gen, f32) * 2 - 1;
  const double alpha = 0.7;
  const at::Tensor y1 = p.op.forward(x1).to(at::kCPU, at::kDouble), y2 = p.op.forward(x2).to(at::kCPU, at::kDouble);
  const at::Tensor y12 = p.op.forward(x1 + alpha * x2).to(at::kCPU, at::kDouble);
  const double scale = y1.abs().max().item<double>() + y2.abs().max().item<double>();
  const double nonlinear = (y12 - y1 - alpha * y2).abs().max().item<double>();
  const double offset = p.op.forward(at::zeros({1, channels, n, n}, f32)).abs().max().item<double>();
  if (nonlinear > 1e-4 * scale || offset > 1e-6 * scale)
    throw Error("wiener: the operator is not linear (A(x1 + 0.7 x2) differs from A(x1) + 0.7 A(x2) by " + fmt(nonlinear) +
                ", A(0) = " + fmt(offset) + ")" + p.why);
  const int64_t i0 = ceil_div(r, s), rows = (n - r - 1) / s - i0 + 1;
  if (rows <= 0) return;
  const at::Tensor x = x1.to(at::kDouble).narrow(2, s * i0 - r, n - (s * i0 - r)).narrow(3, s * i0 - r, n - (s * i0 - r));
  const at::Tensor w = out.taps.view({1, 1, 2 * r + 1, 2 * r + 1});
  const std::array<int64_t, 2> stride{s, s}, none{0, 0}, ones{1, 1};
  const at::Tensor pred = at::conv2d(x.reshape({-1, 1, x.size(2), x.size(3)}), w, c10::nullopt, stride, none, ones, 1)
                              .narrow(2, 0, rows).narrow(3, 0, rows)
                              .reshape({2, channels, rows, rows});
  const double shift = (pred - y1.narrow(2, i0, rows).narrow(3, i0, rows)).abs().max().item<double>();
  if (shift > 1e-4 * scale)
    throw Error("wiener: the operator is not shift invariant (its response to an image differs from its impulse "
                "response applied to that image by " + fmt(shift) + ")" + p.why);
}

}  // namespace

Response measure_response(const ForwardOperator& op, int64_t channels) {
  torch::NoGradGuard no_grad;
  const int64_t s = std::max<int64_t>(1, op.scale_factor());
  const int64_t m = std::max<int64_t>(8, ceil_div(160, s));  // measurement side of the probes
  const Probe probe{op, channels, s, m, s * m,
                    " (the Wiener filter needs a linear, shift-invariant operator that acts on each channel alike: "
                    "gaussian_blur, downsample, or a plugin of that kind; use the operator's own lift otherwise)"};
  check_probe_shape(probe);
  const int64_t n = probe.n;
  const at::Tensor full = impulse_response(probe);
  const double peak = full.abs().max().item<double>();
  if (!(peak > 0)) throw Error("wiener: the operator's response to an impulse is zero" + probe.why);
  const at::Tensor support = at::nonzero(full.abs() > 1e-7 * peak) - n;
  const int64_t r = support.abs().max().item<int64_t>();
  if (r >= m * s / 2 - s)
    throw Error("wiener: the operator's response reaches " + std::to_string(r) + " pixels, too far to measure" + probe.why);
  Response out;
  out.radius = r;
  out.scale = s;
  out.taps = full.narrow(0, n - r, 2 * r + 1).narrow(1, n - r, 2 * r + 1).clone();
  check_linear_shift_invariant(probe, out);
  return out;
}

namespace {

// The per-channel mean of a set and its averaged zero-padded periodogram (see power_spectrum).
std::pair<at::Tensor, at::Tensor> mean_and_periodogram(const at::Tensor& images, int64_t patch, int64_t max_patches) {
  check_batch(images, "wiener", "the images");
  const int64_t count = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  if (count < 1 || h < 2 || w < 2) throw Error("wiener: the image set is empty or its images are smaller than 2x2");
  torch::NoGradGuard no_grad;
  const at::Tensor x = images.to(at::kCPU);
  const at::Tensor mean_c = x.to(at::kDouble).mean({0, 2, 3});
  if (!at::isfinite(mean_c).all().item<bool>()) throw Error("wiener: the images hold NaN or infinite values");
  const int64_t p = std::min({h, w, std::max<int64_t>(2, patch)});
  const int64_t per_image = (h / p) * (w / p);
  const int64_t step = std::max<int64_t>(1, ceil_div(count * per_image, std::max<int64_t>(1, max_patches)));
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / (c * 4 * p * p * std::max<int64_t>(1, per_image)));
  at::Tensor power = at::zeros({c, 2 * p, 2 * p}, at::TensorOptions().dtype(at::kDouble));
  int64_t patches = 0;
  const at::Tensor mean = mean_c.view({1, c, 1, 1});
  // A Hann taper on each patch (Welch's method): without it the strong low frequencies of
  // photographs leak through the patch's edges into the high ones, and the filter then trusts
  // noise there (measured: 33.8 against 37.5 dB on a PHOTO-IP photo).
  const at::Tensor hann = at::sin(std::acos(-1.0) * (at::arange(p, at::TensorOptions().dtype(at::kDouble)) + 0.5) / double(p)).square();
  const at::Tensor window = (hann.view({p, 1}) * hann.view({1, p})).view({1, 1, p, p});
  const double window_energy = window.square().sum().item<double>();
  std::vector<int64_t> picked;
  for (int64_t i = 0; i < count; i += step) picked.push_back(i);
  for (size_t start = 0; start < picked.size(); start += static_cast<size_t>(chunk)) {
    const size_t end = std::min(picked.size(), start + static_cast<size_t>(chunk));
    const at::Tensor index = at::tensor(std::vector<int64_t>(picked.begin() + long(start), picked.begin() + long(end)),
                                        at::TensorOptions().dtype(at::kLong));
    const at::Tensor chosen = x.index_select(0, index).to(at::kDouble) - mean;
    std::vector<at::Tensor> crops;
    for (int64_t i = 0; i + p <= h; i += p)
      for (int64_t j = 0; j + p <= w; j += p) crops.push_back(chosen.narrow(2, i, p).narrow(3, j, p));
    const at::Tensor batch = at::cat(crops, 0);
    // The zero-padded DFT's squared modulus is the DFT of the linear (not circular) autocorrelation.
    // |F|^2 as re^2 + im^2: complex abs() takes a square root (hypot) only to have it squared.
    power += at::view_as_real(at::fft_fft2(batch * window, std::vector<int64_t>{2 * p, 2 * p})).square().sum(at::IntArrayRef{0, 4});
    patches += batch.size(0);
  }
  power /= double(patches) * window_energy;
  return {mean_c, power};
}

}  // namespace

at::Tensor power_spectrum(const at::Tensor& images, int64_t patch, int64_t max_patches) {
  return mean_and_periodogram(images, patch, max_patches).second;
}

Prior estimate_prior(const at::Tensor& clean, int64_t patch, int64_t max_patches) {
  auto [mean, power] = mean_and_periodogram(clean, patch, max_patches);
  const int64_t p = power.size(1) / 2;
  const at::Tensor circular = at::real(at::fft_ifft2(power));  // lag l at index l mod 2p
  Prior prior;
  prior.mean = mean;
  prior.lag = p - 1;
  prior.autocov = circular.roll({prior.lag, prior.lag}, {1, 2}).narrow(1, 0, 2 * p - 1).narrow(2, 0, 2 * p - 1).contiguous();
  return prior;
}

at::Tensor spectrum(const Prior& prior, int64_t n, int64_t m) {
  at::Tensor s = at::real(at::fft_fft2(wrap(prior.autocov, n, m)));
  const at::Tensor peak = s.amax({1, 2}, true);
  return at::maximum(s, peak * 1e-12);
}

at::Tensor transfer(const Response& response, int64_t n, int64_t m) { return at::fft_fft2(wrap(response.taps, n, m)); }

at::Tensor gain(const at::Tensor& K, const at::Tensor& S, double noise_variance, int64_t scale) {
  const int64_t c = S.size(0), n = S.size(1), m = S.size(2), s = scale;
  if (n % s != 0 || m % s != 0) throw Error("wiener: the grid must be a multiple of the scale factor");
  const at::Tensor power = K.abs().square().unsqueeze(0) * S;
  const at::Tensor folded = power.reshape({c, s, n / s, s, m / s}).sum({1, 3}) / double(s * s);
  const at::Tensor denominator = (folded.repeat({1, s, s}) + noise_variance).clamp_min(1e-300);
  return K.unsqueeze(0) * (S / denominator);
}

at::Tensor restore_fft(const at::Tensor& y, const Response& response, const Prior& prior, double noise_variance,
                       const std::string& padding, int64_t pad) {
  check_batch(y, "wiener", "the measurements");
  const int64_t c = y.size(1), h = y.size(2), w = y.size(3), s = response.scale;
  if (c != prior.mean.size(0))
    throw Error("wiener: the measurements have " + std::to_string(c) + " channels, the prior " +
                std::to_string(prior.mean.size(0)));
  if (padding != "reflect" && padding != "circular")
    throw Error("wiener: padding must be 'reflect' or 'circular', got '" + padding + "'");
  torch::NoGradGuard no_grad;
  const int64_t margin = padding == "circular" ? 0 : (pad >= 0 ? pad : ceil_div(response.radius + prior.lag, s) + 4);
  const at::Tensor mean = prior.mean.view({1, c, 1, 1});
  const at::Tensor yd = reflect_pad(y.to(at::kCPU, at::kDouble) - mean * response.gain(), margin);
  const int64_t n = s * (h + 2 * margin), m = s * (w + 2 * margin);
  const at::Tensor K = transfer(response, n, m);
  std::vector<at::Tensor> channels;
  for (int64_t ch = 0; ch < c; ++ch) {
    Prior one{prior.mean.narrow(0, ch, 1), prior.autocov.narrow(0, ch, 1), prior.lag};
    const at::Tensor G = gain(K, spectrum(one, n, m), noise_variance, s)[0];
    at::Tensor u = at::zeros({y.size(0), n, m}, yd.options());
    u.slice(1, 0, n, s).slice(2, 0, m, s).copy_(yd.select(1, ch));
    const at::Tensor x = at::real(at::fft_ifft2(at::fft_fft2(u) * G));
    channels.push_back(x.narrow(1, s * margin, s * h).narrow(2, s * margin, s * w) + prior.mean[ch]);
  }
  return at::stack(channels, 1).to(at::kFloat).to(y.device());
}

at::Tensor Filter::apply(const at::Tensor& y) const {
  check_batch(y, "wiener lift", "the measurements");
  const int64_t c = mean.size(0), k = 2 * radius + 1;
  if (y.size(1) != c)
    throw Error("wiener lift: the measurements have " + std::to_string(y.size(1)) + " channels, the filter was made for " +
                std::to_string(c));
  const auto opts = y.options().dtype(at::kFloat);
  const at::Tensor offset = (mean * gain).to(opts).view({1, c, 1, 1});
  const at::Tensor padded = reflect_pad(y.to(at::kFloat) - offset, radius);
  at::Tensor out;
  if (k <= 9) {
    const std::array<int64_t, 2> ones{1, 1}, none{0, 0};  // stride, padding, dilation
    out = at::conv2d(padded, weight.to(opts), c10::nullopt, ones, none, ones, c);
  } else {
    // A wide kernel: the same correlation by FFT over the padded window. Every output reads
    // padded samples m + t < the window's size, so the circular correlation never wraps.
    const int64_t ph = padded.size(2), pw = padded.size(3), h = y.size(2), w = y.size(3), phases = scale * scale;
    const at::Tensor taps = at::constant_pad_nd(weight.to(opts).view({c, phases, k, k}), {0, pw - k, 0, ph - k});
    const at::Tensor spectrum = at::fft_rfft2(padded).unsqueeze(2) * at::conj(at::fft_rfft2(taps)).unsqueeze(0);
    out = at::fft_irfft2(spectrum, std::vector<int64_t>{ph, pw}).narrow(3, 0, h).narrow(4, 0, w);
    out = out.reshape({y.size(0), c * phases, h, w});
  }
  if (scale > 1) out = at::pixel_shuffle(out, scale);
  return out + mean.to(opts).view({1, c, 1, 1});
}

Filter design_filter(const Response& response, const Prior& prior, double noise_variance, double tolerance,
                     int64_t max_radius) {
  torch::NoGradGuard no_grad;
  const int64_t s = response.scale, c = prior.mean.size(0);
  const int64_t grid = s * ceil_div(std::max<int64_t>({256, 4 * (max_radius + s), 2 * prior.lag + 2}), s);
  const at::Tensor G = gain(transfer(response, grid, grid), spectrum(prior, grid, grid), noise_variance, s);
  // The impulse response, centred: offset d at index d + grid / 2.
  const at::Tensor g = at::real(at::fft_ifft2(G)).roll({grid / 2, grid / 2}, {1, 2});
  const at::Tensor energy = g.square();
  const double total = energy.sum().item<double>();
  int64_t r = max_radius;
  for (int64_t k = 0; k < max_radius; ++k) {
    const double inside = energy.narrow(1, grid / 2 - k, 2 * k + 1).narrow(2, grid / 2 - k, 2 * k + 1).sum().item<double>();
    if (total - inside <= tolerance * total) {
      r = k;
      break;
    }
  }
  Filter f;
  f.scale = s;
  f.mean = prior.mean.clone();
  f.gain = response.gain();
  f.radius = ceil_div(r + s - 1, s);
  // Output pixel s i + a reads y[i - j] with weight g[s j + a]; conv2d correlates, so tap t of
  // the (2 radius + 1)-wide window holds j = radius - t.
  const int64_t k = 2 * f.radius + 1;
  f.weight = at::zeros({c * s * s, 1, k, k}, at::TensorOptions().dtype(at::kDouble));
  for (int64_t a = 0; a < s; ++a) {
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < k; ++t) rows.push_back(s * (f.radius - t) + a + grid / 2);
    const at::Tensor ri = at::tensor(rows, at::TensorOptions().dtype(at::kLong));
    for (int64_t b = 0; b < s; ++b) {
      std::vector<int64_t> cols;
      for (int64_t t = 0; t < k; ++t) cols.push_back(s * (f.radius - t) + b + grid / 2);
      const at::Tensor ci = at::tensor(cols, at::TensorOptions().dtype(at::kLong));
      const at::Tensor taps = g.index_select(1, ri).index_select(2, ci);  // [C, k, k]
      for (int64_t ch = 0; ch < c; ++ch) f.weight[ch * s * s + a * s + b][0].copy_(taps[ch]);
    }
  }
  f.weight = f.weight.to(at::kFloat);
  return f;
}

std::shared_ptr<Lift> make_lift(const ForwardOperator& op, const at::Tensor& clean, double noise_variance, double tolerance,
                                int64_t max_radius) {
  check_batch(clean, "wiener", "the clean set");
  if (!(noise_variance >= 0) || !std::isfinite(noise_variance))
    throw Error("wiener: the noise variance must be a finite number >= 0, got " + fmt(noise_variance));
  auto lift = std::make_shared<Lift>();
  lift->response = measure_response(op, clean.size(1));
  lift->prior = estimate_prior(clean);
  lift->noise_variance = noise_variance;
  lift->filter = design_filter(lift->response, lift->prior, noise_variance, tolerance, max_radius);
  return lift;
}

std::shared_ptr<Lift> fit_lift(const ForwardOperator& op, const NoiseModel& noise, const at::Tensor& clean, int64_t size,
                               double ridge, int64_t pixels, uint64_t seed) {
  torch::NoGradGuard no_grad;
  check_batch(clean, "fitted lift", "the clean set");
  if (size < 1 || size % 2 == 0 || size > 63) throw Error("fitted lift: the filter size must be odd, 1 to 63, got " + std::to_string(size));
  if (!(ridge >= 0 && std::isfinite(ridge))) throw Error("fitted lift: the ridge must be a finite number >= 0");
  if (std::max<int64_t>(1, op.scale_factor()) != 1)
    throw Error("fitted lift: the operator enlarges " + std::to_string(op.scale_factor()) +
                " times; a fitted lift is made for operators of scale factor 1 (a linear shift-invariant one gets the Wiener lift)");
  const int64_t c = clean.size(1), h = clean.size(2), w = clean.size(3), r = size / 2, k2 = size * size;
  const int64_t n = std::clamp<int64_t>(pixels / std::max<int64_t>(1, c * h * w), 1, clean.size(0));
  const at::Tensor x = clean.narrow(0, 0, n).to(at::kCPU, at::kFloat);
  const at::Tensor q0 = op.lift(noise.sample(op.forward(x), at::make_generator<at::CPUGeneratorImpl>(seed)));
  if (q0.sizes() != x.sizes()) {
    std::ostringstream s;
    s << "fitted lift: the operator's lift gives " << q0.sizes() << " for signals " << x.sizes() << "; it must give the signal's shape";
    throw Error(s.str());
  }
  // Rows: every pixel of every channel; columns: its size x size window and a 1.
  const at::Tensor padded = reflect_pad(q0.to(at::kDouble).reshape({n * c, 1, h, w}), r);
  const at::Tensor windows = at::im2col(padded, {size, size}, {1, 1}, {0, 0}, {1, 1});  // [n c, k2, h w]
  const at::Tensor P = at::cat({windows.permute({0, 2, 1}).reshape({-1, k2}), at::ones({n * c * h * w, 1}, padded.options())}, 1);
  const at::Tensor t = x.to(at::kDouble).reshape({-1, 1});
  const double rows = static_cast<double>(P.size(0));
  at::Tensor G = at::matmul(P.t(), P) / rows;
  const at::Tensor b = at::matmul(P.t(), t) / rows;
  G = G + at::eye(k2 + 1, G.options()) * (ridge * G.trace().item<double>() / static_cast<double>(k2 + 1));
  const at::Tensor sol = at::linalg_solve(G, b).flatten();
  if (!at::isfinite(sol).all().item<bool>()) throw Error("fitted lift: the least-squares system has no finite solution (are the clean images constant?)");
  auto lift = std::make_shared<Lift>();
  lift->kind = LiftKind::Fitted;
  lift->noise_variance = noise.variance();
  lift->response.scale = 1;
  lift->filter.scale = 1;
  lift->filter.radius = r;
  lift->filter.gain = 0;
  lift->filter.mean = at::full({c}, sol[k2].item<double>(), at::TensorOptions().dtype(at::kDouble));
  lift->filter.weight = sol.narrow(0, 0, k2).reshape({1, 1, size, size}).expand({c, 1, size, size}).to(at::kFloat).contiguous();
  return lift;
}

WienerLift::WienerLift(std::shared_ptr<ForwardOperator> inner, std::shared_ptr<const Lift> lift)
    : inner_(std::move(inner)), lift_(std::move(lift)) {
  if (!inner_ || !lift_) throw Error("wiener lift: an operator and a filter are required");
  if (std::max<int64_t>(1, inner_->scale_factor()) != lift_->filter.scale)
    throw Error("wiener lift: the filter was made for scale factor " + std::to_string(lift_->filter.scale) +
                ", the operator's is " + std::to_string(inner_->scale_factor()));
}

at::Tensor WienerLift::lift(const at::Tensor& y) const {
  return lift_->filter.apply(lift_->kind == LiftKind::Fitted ? inner_->lift(y) : y);
}

int64_t WienerLift::lift_radius() const {
  if (lift_->kind == LiftKind::Wiener) return lift_->filter.radius;
  const int64_t inner = inner_->lift_radius();
  return inner < 0 ? -1 : inner + lift_->filter.radius;
}

}  // namespace monge::host::wiener
