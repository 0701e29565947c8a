// The unpaired Wiener filter (host/restore/wiener.hpp): exact in the noiseless invertible case,
// equal to the brute-force LMMSE solution on small periodic problems (blur and 2x downsampling),
// the finite filter close to the FFT one, operators it cannot take refused, and the lift
// round-tripping through a map file, where an untrained map equals it; the fitted lift of operators
// that are not linear shift invariant equal to the brute-force least-squares fit, and round-tripping.
#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "host/restore/wiener.hpp"
#include "host/map/map_file.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace {

namespace wiener = monge::host::wiener;
using monge::test::make_op;
using monge::test::registry;

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Correlated clean images: white noise blurred (periodically), with a mean of -0.2.
at::Tensor clean_images(int64_t count, int64_t channels, int64_t side, uint64_t seed) {
  torch::manual_seed(seed);
  auto blur = make_op("gaussian_blur", {{"size", int64_t{9}}, {"sigma", 1.5}, {"padding", std::string("circular")}});
  return blur->forward(torch::randn({count, channels, side, side})) * 2 - 0.2;
}

// x^ = mu + C A' (A C A' + sigma^2 I)^-1 (y - A mu) with dense matrices: C from the prior's
// autocovariance wrapped on the periodic n x n grid, A from the operator's response to every
// unit image.
at::Tensor brute_force(const monge::ForwardOperator& op, const wiener::Prior& prior, double variance, const at::Tensor& y,
                       int64_t n) {
  const int64_t d = n * n;
  const at::Tensor cov_grid = at::real(at::fft_ifft2(wiener::spectrum(prior, n, n)))[0];  // lag (u, v) at (u mod n, v mod n)
  at::Tensor C = at::zeros({d, d}, at::kDouble);
  for (int64_t p = 0; p < d; ++p)
    for (int64_t q = 0; q < d; ++q)
      C[p][q] = cov_grid[((p / n - q / n) % n + n) % n][((p % n - q % n) % n + n) % n];
  const at::Tensor units = at::eye(d, at::kFloat).view({d, 1, n, n});
  const at::Tensor A = op.forward(units).to(at::kDouble).reshape({d, -1}).t();  // [measurements, d]
  const double mu = prior.mean[0].item<double>();
  const at::Tensor yv = y.to(at::kDouble).reshape({-1, 1}) - at::matmul(A, at::full({d, 1}, mu, at::kDouble));
  const at::Tensor M = at::matmul(at::matmul(A, C), A.t()) + variance * at::eye(A.size(0), at::kDouble);
  const at::Tensor x = at::matmul(at::matmul(C, A.t()), at::linalg_solve(M, yv)) + mu;
  return x.view({1, 1, n, n});
}

TEST(Wiener, MeasuresTheResponseOfABlurAndOfDownsampling) {
  auto blur = make_op("gaussian_blur", {{"size", int64_t{5}}, {"sigma", 1.0}});
  const auto r = wiener::measure_response(*blur, 3);
  EXPECT_EQ(r.radius, 2);
  EXPECT_EQ(r.scale, 1);
  EXPECT_NEAR(r.gain(), 1.0, 1e-6);
  EXPECT_LT(max_diff(r.taps, r.taps.t()), 1e-7);  // a Gaussian is symmetric
  auto down = make_op("downsample", {{"factor", int64_t{2}}});
  const auto d = wiener::measure_response(*down, 1);
  EXPECT_EQ(d.scale, 2);
  EXPECT_EQ(d.radius, 1);  // A(x)[i] reads x[2i] and x[2i + 1]: offsets 0 and 1
  EXPECT_NEAR(d.taps[1][1].item<double>(), 0.25, 1e-7);
  EXPECT_NEAR(d.taps[2][2].item<double>(), 0.25, 1e-7);
  EXPECT_NEAR(d.taps[0][0].item<double>(), 0.0, 1e-7);
}

TEST(Wiener, RecoversTheSignalExactlyWithoutNoiseWhenTheBlurIsInvertible) {
  // Taps about (0.2, 0.6, 0.2) per axis: the transfer function stays above 0.2.
  auto blur = make_op("gaussian_blur", {{"size", int64_t{3}}, {"sigma", 0.6}, {"padding", std::string("circular")}});
  const auto response = wiener::measure_response(*blur, 1);
  const auto prior = wiener::estimate_prior(clean_images(64, 1, 16, 1));
  const at::Tensor x = clean_images(2, 1, 12, 2);
  const at::Tensor restored = wiener::restore_fft(blur->forward(x.to(at::kDouble)), response, prior, 0.0, "circular");
  EXPECT_LT(max_diff(restored, x), 1e-5);  // float32 output
  const at::Tensor blurred = blur->forward(x);
  EXPECT_GT(max_diff(blurred, x), 0.05);  // the blur did change the image
}

TEST(Wiener, EqualsTheBruteForceLeastSquaresSolutionForABlur) {
  auto blur = make_op("gaussian_blur", {{"size", int64_t{5}}, {"sigma", 1.0}, {"padding", std::string("circular")}});
  const auto response = wiener::measure_response(*blur, 1);
  const auto prior = wiener::estimate_prior(clean_images(128, 1, 16, 3));
  const double variance = 0.01;
  const at::Tensor x = clean_images(1, 1, 8, 4).to(at::kDouble);
  torch::manual_seed(5);
  const at::Tensor y = blur->forward(x) + 0.1 * torch::randn({1, 1, 8, 8}, at::kDouble);
  const at::Tensor fft = wiener::restore_fft(y, response, prior, variance, "circular");
  const at::Tensor dense = brute_force(*blur, prior, variance, y, 8);
  EXPECT_LT(max_diff(fft, dense), 1e-5);
  EXPECT_GT(max_diff(dense, y), 1e-2);  // not trivially the measurement
}

TEST(Wiener, EqualsTheBruteForceLeastSquaresSolutionForDownsampling) {
  auto down = make_op("downsample", {{"factor", int64_t{2}}});
  const auto response = wiener::measure_response(*down, 1);
  const auto prior = wiener::estimate_prior(clean_images(128, 1, 16, 6));
  const double variance = 0.0025;
  const at::Tensor x = clean_images(1, 1, 8, 7).to(at::kDouble);
  torch::manual_seed(8);
  const at::Tensor y = down->forward(x) + 0.05 * torch::randn({1, 1, 4, 4}, at::kDouble);
  const at::Tensor fft = wiener::restore_fft(y, response, prior, variance, "circular");
  ASSERT_EQ(fft.sizes(), at::IntArrayRef({1, 1, 8, 8}));
  EXPECT_LT(max_diff(fft, brute_force(*down, prior, variance, y, 8)), 1e-5);
}

TEST(Wiener, TheFiniteFilterMatchesTheFftFilterAwayFromTheBorders) {
  for (const std::string op_name : {"gaussian_blur", "downsample"}) {
    auto op = op_name == "downsample" ? make_op("downsample", {{"factor", int64_t{2}}})
                                      : make_op("gaussian_blur", {{"size", int64_t{13}}, {"sigma", 1.5}});
    const at::Tensor clean = clean_images(200, 2, 32, 9);
    const auto lift = wiener::make_lift(*op, clean, 0.0025);
    const at::Tensor x = clean_images(2, 2, 64, 10);
    torch::manual_seed(11);
    const at::Tensor ax = op->forward(x);
    const at::Tensor y = ax + 0.05 * torch::randn(ax.sizes());
    const at::Tensor fir = lift->filter.apply(y);
    const at::Tensor fft = wiener::restore_fft(y, lift->response, lift->prior, 0.0025);
    ASSERT_EQ(fir.sizes(), fft.sizes()) << op_name;
    const int64_t m = 16;
    const at::Tensor inner = (fir - fft).narrow(2, m, 64 - 2 * m).narrow(3, m, 64 - 2 * m);
    EXPECT_LT(inner.abs().max().item<double>(), 1e-2 * x.abs().max().item<double>()) << op_name;
    // ... as good a restoration (within 1% in mean squared error), and better than the operator's own lift.
    const double err_lift = (op->lift(y) - x).square().mean().item<double>();
    const double err_fir = (fir - x).square().mean().item<double>(), err_fft = (fft - x).square().mean().item<double>();
    EXPECT_LT(err_fir, 1.01 * err_fft) << op_name;
    EXPECT_LT(err_fft, 0.97 * err_lift) << op_name;
  }
}

TEST(Wiener, RefusesOperatorsThatAreNotLinearAndShiftInvariant) {
  const at::Tensor clean = clean_images(16, 1, 16, 12);
  monge::test::expect_error<monge::Error>(
      [&] { wiener::make_lift(*make_op("hdr_clip"), clean, 0.01); }, {"not linear", "gaussian_blur"});
  monge::test::expect_error<monge::Error>(
      [&] { wiener::make_lift(*make_op("nonlinear_blur"), clean, 0.01); }, {"not linear"});
  monge::test::expect_error<monge::Error>(
      [&] { wiener::make_lift(*make_op("gaussian_blur"), clean, -1.0); }, {"noise variance"});
}

// A map (an untrained 28 x 28 unet from `seed`) on operator `op` with `lift`, saved and loaded
// again; `legacy_refused`: the old format-2 writer must refuse it (it records only Wiener lifts).
monge::host::LoadedMap save_and_load(const std::pair<std::string, monge::ParamMap>& op,
                                     std::shared_ptr<const wiener::Lift> lift, uint64_t seed, bool legacy_refused = false) {
  const auto net_params = registry().resolve("unet", {{"channels", int64_t{4}}, {"depth", int64_t{1}}}, monge::Kind::Network);
  auto net = std::dynamic_pointer_cast<monge::Network>(registry().instantiate("unet", net_params));
  torch::manual_seed(seed);
  auto module = net->build(monge::NetworkShape{1, 1, 1, 28, 28});
  monge::host::MapInfo info;
  info.network = {"unet", net_params};
  info.shape = monge::NetworkShape{1, 1, 1, 28, 28};
  info.op = monge::host::PluginSpec{op.first, registry().resolve(op.first, op.second, monge::Kind::Operator)};
  info.lift = std::move(lift);
  const auto dir = std::filesystem::temp_directory_path() / ("monge_wiener_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  monge::host::save_map(dir / "map.pt", *module, info);
  if (legacy_refused) EXPECT_THROW(monge::host::save_map_legacy(dir / "old.pt", *module, info), monge::Error);
  auto loaded = monge::host::load_map(dir / "map.pt", registry());
  std::filesystem::remove_all(dir);
  return loaded;
}

TEST(Wiener, TheLiftRoundTripsThroughAMapFileAndAnUntrainedMapEqualsIt) {
  auto blur = make_op("gaussian_blur", {{"size", int64_t{13}}, {"sigma", 1.5}});
  const at::Tensor clean = clean_images(100, 1, 28, 13);
  auto lift = wiener::make_lift(*blur, clean, 0.0025);
  auto op = std::make_shared<wiener::WienerLift>(blur, lift);
  const auto loaded = save_and_load({"gaussian_blur", {{"size", int64_t{13}}, {"sigma", 1.5}}}, lift, 14);
  ASSERT_TRUE(loaded.info.lift);
  auto* loaded_lift = dynamic_cast<wiener::WienerLift*>(loaded.op.get());
  ASSERT_NE(loaded_lift, nullptr);
  EXPECT_TRUE(at::equal(loaded.info.lift->prior.autocov, lift->prior.autocov));
  EXPECT_TRUE(at::equal(loaded.info.lift->prior.mean, lift->prior.mean));
  EXPECT_TRUE(at::equal(loaded.info.lift->response.taps, lift->response.taps));
  EXPECT_TRUE(at::equal(loaded.info.lift->filter.weight, lift->filter.weight));
  EXPECT_EQ(loaded.info.lift->noise_variance, lift->noise_variance);
  EXPECT_EQ(loaded.op->lift_radius(), lift->filter.radius);
  // The untrained residual map is the lift.
  const at::Tensor x = clean_images(3, 1, 28, 15);
  torch::manual_seed(16);
  const at::Tensor y = blur->forward(x) + 0.05 * torch::randn({3, 1, 28, 28});
  const at::Tensor q = loaded.op->lift(y);
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_diff(loaded.module->forward(q), q), 1e-6);
  EXPECT_LT(max_diff(q, op->lift(y)), 1e-6);
  EXPECT_GT(max_diff(q, y), 1e-2);
}

// The fitted lift: the least-squares FIR filter from the operator's own lift to x on pairs simulated
// from the clean set. Without ridge it equals the least-squares solution computed the slow way
// (patches gathered by index, QR instead of the normal equations).
TEST(FittedLift, EqualsTheBruteForceLeastSquaresSolution) {
  auto op = make_op("nonlinear_blur");
  auto noise = monge::test::make_noise("gaussian", {{"sigma", 0.05}});
  const at::Tensor clean = clean_images(6, 1, 8, 31).clamp(-1, 1);
  const int64_t size = 3, r = 1;
  const auto lift = wiener::fit_lift(*op, *noise, clean, size, 0.0, 1 << 20, 32);
  ASSERT_EQ(lift->kind, wiener::LiftKind::Fitted);
  // The same simulated measurements (the seed), lifted by the operator's own lift.
  const at::Tensor q = op->lift(noise->sample(op->forward(clean), at::make_generator<at::CPUGeneratorImpl>(32))).to(at::kDouble);
  auto mirror = [](int64_t p, int64_t n) { return p < 0 ? -p : (p >= n ? 2 * (n - 1) - p : p); };
  const int64_t n = clean.size(0), h = 8, w = 8;
  at::Tensor P = at::ones({n * h * w, size * size + 1}, at::kDouble), t = at::empty({n * h * w, 1}, at::kDouble);
  auto pa = P.accessor<double, 2>();
  auto qa = q.accessor<double, 4>();
  const at::Tensor xd = clean.to(at::kDouble);
  auto xa = xd.accessor<double, 4>();
  auto ta = t.accessor<double, 2>();
  int64_t row = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < h; ++a)
      for (int64_t b = 0; b < w; ++b, ++row) {
        for (int64_t u = -r; u <= r; ++u)
          for (int64_t v = -r; v <= r; ++v) pa[row][(u + r) * size + v + r] = qa[i][0][mirror(a + u, h)][mirror(b + v, w)];
        ta[row][0] = xa[i][0][a][b];
      }
  const at::Tensor sol = std::get<0>(at::linalg_lstsq(P, t)).flatten();
  EXPECT_LT(max_diff(lift->filter.weight.flatten(), sol.narrow(0, 0, size * size)), 1e-5);
  EXPECT_NEAR(lift->filter.mean[0].item<double>(), sol[size * size].item<double>(), 1e-6);
  EXPECT_EQ(lift->filter.gain, 0);
  // The filter reads the operator's own lift: the restoration is P w.
  const at::Tensor restored = std::make_shared<wiener::WienerLift>(op, lift)->lift(op->forward(clean));
  EXPECT_EQ(restored.sizes(), clean.sizes());
}

TEST(FittedLift, BeatsTheOperatorsOwnLiftAndRoundTripsThroughAMapFile) {
  auto op = make_op("nonlinear_blur");
  auto noise = monge::test::make_noise("gaussian", {{"sigma", 0.05}});
  const at::Tensor clean = clean_images(100, 1, 28, 33).clamp(-1, 1);
  const auto lift = wiener::fit_lift(*op, *noise, clean);
  auto lifted = std::make_shared<wiener::WienerLift>(op, lift);
  EXPECT_EQ(lifted->lift_radius(), op->lift_radius() + 7);
  const at::Tensor x = clean_images(8, 1, 28, 34).clamp(-1, 1);
  const at::Tensor y = noise->sample(op->forward(x), at::make_generator<at::CPUGeneratorImpl>(35));
  auto mse = [&](const at::Tensor& a) { return (a.clamp(-1, 1) - x).square().mean().item<double>(); };
  EXPECT_LT(mse(lifted->lift(y)), mse(op->lift(y)));  // the linear restoration gains on the blurred input
  const auto loaded = save_and_load({"nonlinear_blur", {}}, lift, 36, /*legacy_refused=*/true);
  ASSERT_TRUE(loaded.info.lift);
  EXPECT_EQ(loaded.info.lift->kind, wiener::LiftKind::Fitted);
  EXPECT_TRUE(at::equal(loaded.info.lift->filter.weight, lift->filter.weight));
  EXPECT_TRUE(at::equal(loaded.info.lift->filter.mean, lift->filter.mean));
  EXPECT_EQ(loaded.op->lift_radius(), lifted->lift_radius());
  const at::Tensor q = loaded.op->lift(y);
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_diff(q, lifted->lift(y)), 1e-6);
  EXPECT_LT(max_diff(loaded.module->forward(q), q), 1e-6);  // the untrained residual map is the lift
}

TEST(FittedLift, RefusesWhatItCannotFit) {
  auto noise = monge::test::make_noise("gaussian", {{"sigma", 0.05}});
  const at::Tensor clean = clean_images(8, 1, 16, 37);
  monge::test::expect_error<monge::Error>(
      [&] { wiener::fit_lift(*make_op("downsample", {{"factor", int64_t{2}}}), *noise, clean); }, {"scale factor 1"});
  monge::test::expect_error<monge::Error>([&] { wiener::fit_lift(*make_op("hdr_clip"), *noise, clean, 4); }, {"odd"});
  monge::test::expect_error<monge::Error>([&] { wiener::fit_lift(*make_op("hdr_clip"), *noise, clean[0]); }, {"N x C x H x W"});
}

}  // namespace
