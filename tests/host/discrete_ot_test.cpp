// The discrete OT references (host/ot/discrete_ot.hpp): exact OT against hand-solved cases, sorting
// on a line, brute force over permutations and its own duals; Sinkhorn and unbalanced Sinkhorn
// against their limits and closed forms; all three against POT 0.8.2's values stored in
// tests/fixtures/ot/ot_fixtures.json (made by make_ot_fixtures.py there); the errors a user sees.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "host/ot/discrete_ot.hpp"
#include "tests/plugins/json_reader.hpp"

namespace {

namespace ot = monge::host::ot;
using monge::test::read_json_file;

torch::Tensor vec(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }
torch::Tensor mat(std::vector<double> v, int64_t n, int64_t m) { return vec(std::move(v)).reshape({n, m}); }

// Marginal errors in the sup norm.
double row_error(const torch::Tensor& P, const torch::Tensor& a) { return (P.sum(1) - a).abs().max().item<double>(); }
double col_error(const torch::Tensor& P, const torch::Tensor& b) { return (P.sum(0) - b).abs().max().item<double>(); }

torch::Tensor uniform(int64_t n) { return torch::full({n}, 1.0 / static_cast<double>(n), torch::kDouble); }

torch::Tensor random_weights(int64_t n, torch::Generator& gen) {
  const torch::Tensor w = torch::rand({n}, gen, torch::kDouble) + 0.1;
  return w / w.sum();
}

// Checks every optimality condition of an exact result: feasibility, duality, slackness.
void expect_optimal(const ot::ExactResult& r, const torch::Tensor& C, const torch::Tensor& a, const torch::Tensor& b,
                    double tol = 1e-9) {
  EXPECT_GE(r.plan.min().item<double>(), 0.0);
  EXPECT_LT(row_error(r.plan, a), tol);
  EXPECT_LT(col_error(r.plan, b), tol);
  EXPECT_NEAR(r.cost, (r.plan * C).sum().item<double>(), tol);
  const double dual = (a * r.u).sum().item<double>() + (b * r.v).sum().item<double>();
  EXPECT_NEAR(dual, r.cost, tol * std::max(1.0, std::abs(r.cost)));
  const torch::Tensor reduced = C - r.u.unsqueeze(1) - r.v.unsqueeze(0);
  EXPECT_GE(reduced.min().item<double>(), -tol) << "dual infeasible";
  const torch::Tensor on_support = torch::where(r.plan > 1e-12, reduced.abs(), torch::zeros_like(reduced));
  EXPECT_LT(on_support.max().item<double>(), tol) << "complementary slackness";
}

const nlohmann::json& fixtures() {
  static const nlohmann::json doc = read_json_file(std::string(MONGE_SOURCE_DIR) + "/tests/fixtures/ot/ot_fixtures.json");
  return doc;
}

struct Case {
  torch::Tensor a, b, M;
  int64_t n, m;
};
Case fixture_case(const nlohmann::json& c) {
  Case k;
  k.n = c.at("n").get<int64_t>();
  k.m = c.at("m").get<int64_t>();
  k.a = vec(c.at("a").get<std::vector<double>>());
  k.b = vec(c.at("b").get<std::vector<double>>());
  k.M = mat(c.at("M").get<std::vector<double>>(), k.n, k.m);
  return k;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// ------------------------------------------------------------------------------------------------
TEST(CostMatrix, SquaredAndPlainDistances) {
  const torch::Tensor x = mat({0, 0, 1, 1}, 2, 2), y = mat({3, 4, 0, 0, 1, 0}, 3, 2);
  const torch::Tensor C2 = ot::cost_matrix(x, y);
  EXPECT_TRUE(torch::allclose(C2, mat({25, 0, 1, 13, 2, 1}, 2, 3)));
  EXPECT_TRUE(torch::allclose(ot::cost_matrix(x, y, 1.0), mat({5, 0, 1, std::sqrt(13.0), std::sqrt(2.0), 1}, 2, 3)));
  EXPECT_EQ(C2.dtype(), torch::kDouble);
  // Float32 images [n, C, H, W] are flattened; high dimensions go through matrix products.
  const torch::Tensor img = torch::randn({3, 2, 8, 8});
  const torch::Tensor flat = img.reshape({3, -1}).to(torch::kDouble);
  const torch::Tensor expect = (flat.unsqueeze(1) - flat.unsqueeze(0)).square().sum(2);
  EXPECT_TRUE(torch::allclose(ot::cost_matrix(img, img), expect, 1e-9, 1e-9));
  // One-dimensional tensors are points on a line.
  EXPECT_TRUE(torch::allclose(ot::cost_matrix(vec({0, 2}), vec({1})), mat({1, 1}, 2, 1)));
  EXPECT_NE(error_of([&] { ot::cost_matrix(x, torch::zeros({2, 3})); }).find("same number of features"), std::string::npos);
  EXPECT_NE(error_of([&] { ot::cost_matrix(x, y, 0); }).find("power must be positive"), std::string::npos);
}

TEST(ExactOT, TwoByTwoAndThreeByThreeAssignments) {
  auto r = ot::exact(mat({0, 1, 1, 0}, 2, 2));
  EXPECT_TRUE(torch::allclose(r.plan, mat({0.5, 0, 0, 0.5}, 2, 2)));
  EXPECT_NEAR(r.cost, 0, 1e-15);
  r = ot::exact(mat({4, 1, 2, 3}, 2, 2));
  EXPECT_TRUE(torch::allclose(r.plan, mat({0, 0.5, 0.5, 0}, 2, 2)));
  EXPECT_NEAR(r.cost, 1.5, 1e-14);
  // 3x3: the assignment 0->2, 1->0, 2->1 costs 1 + 2 + 3 = 6; every other permutation costs more.
  const torch::Tensor C = mat({9, 8, 1, 2, 7, 9, 8, 3, 6}, 3, 3);
  r = ot::exact(C);
  EXPECT_TRUE(torch::allclose(r.plan, mat({0, 0, 1, 1, 0, 0, 0, 1, 0}, 3, 3) / 3.0));
  EXPECT_NEAR(r.cost, 2.0, 1e-14);
  expect_optimal(r, C, uniform(3), uniform(3));
}

TEST(ExactOT, MonotoneMapOnALineMatchesSorting) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  for (double p : {1.0, 2.0}) {
    const int64_t n = 50;
    const torch::Tensor x = torch::randn({n}, gen, torch::kDouble), y = torch::rand({n}, gen, torch::kDouble) * 3;
    const auto r = ot::exact(ot::cost_matrix(x, y, p));
    const double sorted = (std::get<0>(x.sort()) - std::get<0>(y.sort())).abs().pow(p).mean().item<double>();
    EXPECT_NEAR(r.cost, sorted, 1e-12) << "p = " << p;
    expect_optimal(r, ot::cost_matrix(x, y, p), uniform(n), uniform(n));
  }
}

TEST(ExactOT, UnequalWeightsSplitMass) {
  // x = {0, 1} with masses 0.7, 0.3 onto y = {0, 1} with 0.4, 0.6, cost |x - y|: the monotone
  // plan keeps 0.4 at 0, moves 0.3 from 0 to 1 and keeps 0.3 at 1.
  const torch::Tensor C = mat({0, 1, 1, 0}, 2, 2), a = vec({0.7, 0.3}), b = vec({0.4, 0.6});
  const auto r = ot::exact(C, a, b);
  EXPECT_TRUE(torch::allclose(r.plan, mat({0.4, 0.3, 0, 0.3}, 2, 2), 0, 1e-15));
  EXPECT_NEAR(r.cost, 0.3, 1e-15);
  expect_optimal(r, C, a, b);
  // One source split over three targets in proportion to their weights.
  const torch::Tensor b3 = vec({0.2, 0.5, 0.3}), C3 = mat({1, 2, 3}, 1, 3);
  const auto s = ot::exact(C3, vec({1.0}), b3);
  EXPECT_TRUE(torch::allclose(s.plan, b3.unsqueeze(0)));
  EXPECT_NEAR(s.cost, 0.2 + 1.0 + 0.9, 1e-14);
  expect_optimal(s, C3, vec({1.0}), b3);
}

TEST(ExactOT, DegenerateTiesZeroWeightsAndSinglePoints) {
  // Every plan is optimal for a constant cost.
  const torch::Tensor C = torch::full({4, 5}, 2.5, torch::kDouble);
  auto r = ot::exact(C);
  EXPECT_NEAR(r.cost, 2.5, 1e-14);
  expect_optimal(r, C, uniform(4), uniform(5));
  // Identical clouds with repeated points: zero cost.
  const torch::Tensor x = vec({0, 1, 1, 2, 3, 3});
  r = ot::exact(ot::cost_matrix(x, x));
  EXPECT_NEAR(r.cost, 0, 1e-15);
  expect_optimal(r, ot::cost_matrix(x, x), uniform(6), uniform(6));
  // Integer grid, many equal-cost assignments.
  const torch::Tensor g = torch::arange(16, torch::kDouble);
  const torch::Tensor pts = torch::stack({torch::floor(g / 4), torch::fmod(g, 4)}, 1);
  r = ot::exact(ot::cost_matrix(pts, pts + 1, 1.0));
  EXPECT_NEAR(r.cost, std::sqrt(2.0), 1e-12);
  // Zero weights: their rows and columns stay empty and their duals stay feasible.
  const torch::Tensor a = vec({0.5, 0, 0.5}), b = vec({0, 0.25, 0.75, 0});
  const torch::Tensor C2 = mat({1, 2, 3, 4, 0, 1, 0, 2, 5, 1, 2, 0}, 3, 4);
  r = ot::exact(C2, a, b);
  EXPECT_EQ(r.plan[1].abs().sum().item<double>(), 0);
  EXPECT_EQ(r.plan.select(1, 0).abs().sum().item<double>(), 0);
  EXPECT_NEAR(r.cost, 0.25 * 2 + 0.25 * 3 + 0.5 * 2, 1e-14);
  expect_optimal(r, C2, a, b);
  // n = 1, m = 1, and n = 1 against many.
  r = ot::exact(mat({7}, 1, 1));
  EXPECT_NEAR(r.cost, 7, 1e-15);
  EXPECT_NEAR(r.plan.item<double>(), 1, 1e-15);
  r = ot::exact(mat({3, 1, 2}, 3, 1));
  EXPECT_NEAR(r.cost, 2, 1e-15);
  expect_optimal(r, mat({3, 1, 2}, 3, 1), uniform(3), vec({1}));
}

TEST(ExactOT, MatchesBruteForceOverPermutations) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (int trial = 0; trial < 5; ++trial) {
    const int n = 6;
    const torch::Tensor C = torch::rand({n, n}, gen, torch::kDouble);
    const auto c = C.accessor<double, 2>();
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    double best = 1e300;
    do {
      double s = 0;
      for (int i = 0; i < n; ++i) s += c[i][perm[i]];
      best = std::min(best, s);
    } while (std::next_permutation(perm.begin(), perm.end()));
    const auto r = ot::exact(C);
    EXPECT_NEAR(r.cost, best / n, 1e-14) << "trial " << trial;
    expect_optimal(r, C, uniform(n), uniform(n));
  }
}

TEST(ExactOT, Random300x400MarginalsAndDuality) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor x = torch::randn({300, 2}, gen, torch::kDouble);
  const torch::Tensor y = torch::randn({400, 2}, gen, torch::kDouble) * 0.5 + 1;
  const torch::Tensor a = random_weights(300, gen), b = random_weights(400, gen);
  const torch::Tensor C = ot::cost_matrix(x, y);
  const auto r = ot::exact(C, a, b);
  expect_optimal(r, C, a, b, 1e-9);
  // A basic solution: at most n + m - 1 positive entries.
  EXPECT_LE((r.plan > 0).sum().item<int64_t>(), 300 + 400 - 1);
}

// Speed is measured by `monge bench discrete-ot`, not here: this checks a large problem's optimality.
TEST(ExactOT, Random1000x1000IsOptimal) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const torch::Tensor x = torch::randn({1000, 2}, gen, torch::kDouble), y = torch::rand({1000, 2}, gen, torch::kDouble);
  const torch::Tensor C = ot::cost_matrix(x, y);
  const auto r = ot::exact(C);
  expect_optimal(r, C, uniform(1000), uniform(1000), 1e-9);
}

TEST(ExactOT, MatchesPOT) {
  EXPECT_EQ(fixtures().at("generator").get<std::string>(), "tests/fixtures/ot/make_ot_fixtures.py");
  for (const auto& c : fixtures().at("cases")) {
    const Case k = fixture_case(c);
    const auto r = ot::exact(k.M, k.a, k.b);
    EXPECT_NEAR(r.cost, c.at("emd2").get<double>(), 1e-12) << "seed " << c.at("seed").get<double>();
    EXPECT_LT((r.plan - mat(c.at("emd_plan").get<std::vector<double>>(), k.n, k.m)).abs().max().item<double>(), 1e-12);
    expect_optimal(r, k.M, k.a, k.b);
  }
}

TEST(ExactOT, BadInputIsAClearError) {
  const torch::Tensor C = torch::ones({2, 3}, torch::kDouble);
  EXPECT_EQ(error_of([&] { ot::exact(C, vec({0.5, 0.5}), vec({0.5, 0.25, 0.5})); }),
            "monge.ot.exact: a and b must have equal masses, got sum a = 1 and sum b = 1.25; normalise them, "
            "or use monge.ot.unbalanced for unequal masses");
  EXPECT_EQ(error_of([&] { ot::exact(C, vec({1.5, -0.5})); }),
            "monge.ot.exact: a has negative weights (min -0.500000); weights must be nonnegative");
  EXPECT_EQ(error_of([&] { ot::exact(C, vec({1.0})); }),
            "monge.ot.exact: a has 1 entries for 2 rows of the cost matrix");
  EXPECT_EQ(error_of([&] { ot::exact(torch::ones({2}, torch::kDouble)); }),
            "monge.ot.exact: the cost matrix must be 2-D [n, m], got [2] (build one from points with "
            "monge.ot.cost_matrix(x, y))");
  EXPECT_EQ(error_of([&] { ot::exact(C, vec({0, 0})); }),
            "monge.ot.exact: a has no mass: at least one weight must be positive");
  EXPECT_NE(error_of([&] { ot::exact(C * NAN); }).find("NaN or infinite"), std::string::npos);
}

// ------------------------------------------------------------------------------------------------
TEST(Sinkhorn, MarginalsReachTheTolerance) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const torch::Tensor C = ot::cost_matrix(torch::randn({60, 2}, gen, torch::kDouble), torch::randn({70, 2}, gen, torch::kDouble));
  const torch::Tensor a = random_weights(60, gen), b = random_weights(70, gen);
  ot::SinkhornOptions o;
  o.eps = 0.1;
  o.tol = 1e-10;
  o.max_iter = 5000;
  const auto r = ot::sinkhorn(C, a, b, o);
  EXPECT_TRUE(r.converged);
  EXPECT_LE(r.error, 1e-10);
  EXPECT_LT((r.plan.sum(1) - a).abs().sum().item<double>() + (r.plan.sum(0) - b).abs().sum().item<double>(), 1e-10);
  // The plan has the announced form.
  const torch::Tensor rebuilt = a.unsqueeze(1) * b.unsqueeze(0) * torch::exp((r.f.unsqueeze(1) + r.g.unsqueeze(0) - C) / o.eps);
  EXPECT_TRUE(torch::allclose(rebuilt, r.plan, 1e-9, 1e-14));
  // objective = cost + eps KL(P | a b^T).
  const double kl = (r.plan * torch::log(r.plan / (a.unsqueeze(1) * b.unsqueeze(0)))).sum().item<double>();
  EXPECT_NEAR(r.objective, r.cost + o.eps * kl, 1e-10);
}

TEST(Sinkhorn, ApproachesExactOTAsEpsShrinks) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const torch::Tensor C = ot::cost_matrix(torch::randn({40, 2}, gen, torch::kDouble), torch::randn({40, 2}, gen, torch::kDouble) + 1);
  const double exact = ot::exact(C).cost;
  double previous = 1e300;
  for (double rel : {1e-1, 1e-2, 1e-3}) {
    ot::SinkhornOptions o;
    o.eps = rel * C.max().item<double>();
    // At eps = 1e-3 max C Sinkhorn contracts slowly (tens of thousands of iterations to 1e-9);
    // a few thousand leave marginal errors far below what changes the cost by 1%.
    o.max_iter = rel < 1e-2 ? 3000 : 10000;
    o.tol = 1e-9;
    const auto r = ot::sinkhorn(C, {}, {}, o);
    const double gap = std::abs(r.cost - exact) / exact;
    std::printf("eps = %g max C: cost %.6f, exact %.6f, %lld iterations, error %.2g\n", rel, r.cost, exact,
                static_cast<long long>(r.iterations), r.error);
    EXPECT_LT(gap, previous + 1e-12) << "eps " << o.eps;
    previous = gap;
    if (rel >= 1e-2) {
      EXPECT_TRUE(r.converged) << "eps " << o.eps;
    } else {
      EXPECT_LT(r.error, 1e-3);
      EXPECT_LT(gap, 0.01) << "eps " << o.eps;
    }
  }
}

TEST(Sinkhorn, SmallEpsStaysFinite) {
  // eps = 1e-3 max C with costs up to ~100: exp(-C / eps) would underflow to 0 and the plain
  // scaling algorithm would divide 0 by 0.
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(10);
  const torch::Tensor C = ot::cost_matrix(torch::randn({30, 2}, gen, torch::kDouble) * 3, torch::randn({25, 2}, gen, torch::kDouble) * 3 + 4);
  ot::SinkhornOptions o;
  o.eps = 1e-3 * C.max().item<double>();
  o.max_iter = 300;
  const auto r = ot::sinkhorn(C, {}, {}, o);
  EXPECT_TRUE(torch::isfinite(r.plan).all().item<bool>());
  EXPECT_TRUE(std::isfinite(r.cost) && std::isfinite(r.objective) && std::isfinite(r.error));
  EXPECT_LT(col_error(r.plan, uniform(25)), 1e-12);  // the last update fits the columns exactly
  ot::UnbalancedOptions u;
  u.eps = o.eps;
  u.max_iter = 300;
  const auto ur = ot::unbalanced_sinkhorn(C, {}, {}, u);
  EXPECT_TRUE(torch::isfinite(ur.plan).all().item<bool>());
  EXPECT_TRUE(std::isfinite(ur.objective));
}

TEST(Sinkhorn, MatchesPOT) {
  for (const auto& c : fixtures().at("cases")) {
    const Case k = fixture_case(c);
    ot::SinkhornOptions o;
    o.eps = c.at("eps").get<double>();
    o.max_iter = 100000;
    o.tol = 1e-13;
    const auto r = ot::sinkhorn(k.M, k.a, k.b, o);
    EXPECT_NEAR(r.cost, c.at("sinkhorn2").get<double>(), 1e-10) << "seed " << c.at("seed").get<double>();
    EXPECT_LT((r.plan - mat(c.at("sinkhorn_plan").get<std::vector<double>>(), k.n, k.m)).abs().max().item<double>(), 1e-10);
  }
}

TEST(Sinkhorn, BadInputIsAClearError) {
  const torch::Tensor C = torch::ones({2, 2}, torch::kDouble);
  ot::SinkhornOptions o;
  o.eps = 0;
  EXPECT_EQ(error_of([&] { ot::sinkhorn(C, {}, {}, o); }),
            "monge.ot.sinkhorn: eps must be a positive number (the entropic regularisation, in units of the cost), "
            "got 0.000000");
  EXPECT_NE(error_of([&] { ot::sinkhorn(C, vec({1, 1}), {}); }).find("equal masses"), std::string::npos);
}

// ------------------------------------------------------------------------------------------------
TEST(UnbalancedSinkhorn, OnePairHasTheClosedFormMass) {
  // 1x1, cost c, masses a, b: minimise c m + eps KL(m | ab) + rho_a KL(m | a) + rho_b KL(m | b).
  // d/dm = c + eps log(m / ab) + rho_a log(m / a) + rho_b log(m / b) = 0 gives
  // log m = (eps log(ab) + rho_a log a + rho_b log b - c) / (eps + rho_a + rho_b).
  const double c = 1.3, a = 2.0, b = 0.5, eps = 0.1, ra = 0.3, rb = 0.7;
  ot::UnbalancedOptions o;
  o.eps = eps;
  o.rho_a = ra;
  o.rho_b = rb;
  o.tol = 1e-14;
  const auto r = ot::unbalanced_sinkhorn(mat({c}, 1, 1), vec({a}), vec({b}), o);
  const double m = std::exp((eps * std::log(a * b) + ra * std::log(a) + rb * std::log(b) - c) / (eps + ra + rb));
  EXPECT_TRUE(r.converged);
  EXPECT_NEAR(r.mass, m, 1e-12);
  const auto kl = [](double p, double q) { return p * std::log(p / q) - p + q; };
  EXPECT_NEAR(r.objective, c * m + eps * kl(m, a * b) + ra * kl(m, a) + rb * kl(m, b), 1e-12);
}

TEST(UnbalancedSinkhorn, ConstantCostShrinksTheMassAsRhoShrinks) {
  // For C = D everywhere the plan is t a b^T with D + eps log t + rho_a log(t |b|) + rho_b log(t |a|) = 0
  // (every first-order condition holds at once), so its mass t |a| |b| has a closed form.
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(12);
  const torch::Tensor a = random_weights(5, gen) * 1.5, b = random_weights(4, gen) * 0.8;
  const double D = 4.0, eps = 0.2;
  double previous = 1e300;
  for (double rho : {10.0, 1.0, 0.1}) {
    ot::UnbalancedOptions o;
    o.eps = eps;
    o.rho_a = o.rho_b = rho;
    o.tol = 1e-13;
    o.max_iter = 100000;
    const auto r = ot::unbalanced_sinkhorn(torch::full({5, 4}, D, torch::kDouble), a, b, o);
    const double t = std::exp(-(D + rho * std::log(0.8) + rho * std::log(1.5)) / (eps + 2 * rho));
    EXPECT_NEAR(r.mass, t * 1.5 * 0.8, 1e-10) << "rho " << rho;
    EXPECT_TRUE(torch::allclose(r.plan, t * a.unsqueeze(1) * b.unsqueeze(0), 1e-9, 1e-14));
    EXPECT_LT(r.mass, previous);
    previous = r.mass;
  }
  EXPECT_LT(previous, 1e-3);
}

TEST(UnbalancedSinkhorn, LargeRhoApproachesBalancedSinkhorn) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(13);
  const torch::Tensor C = ot::cost_matrix(torch::randn({20, 2}, gen, torch::kDouble), torch::randn({25, 2}, gen, torch::kDouble));
  ot::SinkhornOptions so;
  so.eps = 0.1;
  so.tol = 1e-12;
  so.max_iter = 10000;
  const auto balanced = ot::sinkhorn(C, {}, {}, so);
  double previous = 1e300;
  for (double rho : {1.0, 100.0, 1e4, 1e6}) {
    ot::UnbalancedOptions o;
    o.eps = 0.1;
    o.rho_a = o.rho_b = rho;
    o.tol = 1e-12;
    o.max_iter = 100000;
    const auto r = ot::unbalanced_sinkhorn(C, {}, {}, o);
    const double diff = (r.plan - balanced.plan).abs().sum().item<double>();
    EXPECT_TRUE(r.converged) << "rho " << rho;
    EXPECT_LT(diff, previous) << "rho " << rho;
    previous = diff;
  }
  EXPECT_LT(previous, 1e-5);
  // rho = infinity on both sides is the balanced problem.
  ot::UnbalancedOptions hard;
  hard.eps = 0.1;
  hard.rho_a = hard.rho_b = std::numeric_limits<double>::infinity();
  hard.tol = 1e-13;
  hard.max_iter = 10000;
  const auto r = ot::unbalanced_sinkhorn(C, {}, {}, hard);
  EXPECT_LT((r.plan - balanced.plan).abs().max().item<double>(), 1e-10);
  EXPECT_NEAR(r.objective, balanced.objective, 1e-9);
  // One hard side: that marginal is met exactly.
  hard.rho_b = 0.5;
  const auto one = ot::unbalanced_sinkhorn(C * 4, {}, {}, hard);
  EXPECT_LT(row_error(one.plan, uniform(20)), 1e-10);
  EXPECT_LT(one.mass, 1.0);
  EXPECT_TRUE(torch::allclose(one.marginal_a, one.plan.sum(1)));
}

TEST(UnbalancedSinkhorn, MatchesPOTAfterTheEntropyConversion) {
  // POT regularises with KL(P | 1); monge with KL(P | a b^T). The cost M + eps (log a_i + log b_j)
  // makes them the same problem (see make_ot_fixtures.py).
  for (const auto& c : fixtures().at("cases")) {
    const Case k = fixture_case(c);
    ot::UnbalancedOptions o;
    o.eps = c.at("eps").get<double>();
    o.rho_a = o.rho_b = c.at("rho").get<double>();
    o.max_iter = 200000;
    o.tol = 1e-14;
    const torch::Tensor shifted = k.M + o.eps * (k.a.log().unsqueeze(1) + k.b.log().unsqueeze(0));
    const auto r = ot::unbalanced_sinkhorn(shifted, k.a, k.b, o);
    EXPECT_TRUE(r.converged) << "seed " << c.at("seed").get<double>();
    const torch::Tensor pot = mat(c.at("unbalanced_plan").get<std::vector<double>>(), k.n, k.m);
    EXPECT_LT((r.plan - pot).abs().max().item<double>(), 1e-10) << "seed " << c.at("seed").get<double>();
    EXPECT_NEAR((r.plan * k.M).sum().item<double>(), c.at("unbalanced2").get<double>(), 1e-10) << "seed " << c.at("seed").get<double>();
  }
}

TEST(UnbalancedSinkhorn, BadInputIsAClearError) {
  ot::UnbalancedOptions o;
  o.rho_a = -1;
  EXPECT_EQ(error_of([&] { ot::unbalanced_sinkhorn(torch::ones({2, 2}), {}, {}, o); }),
            "monge.ot.unbalanced: rho (the marginal penalty) must be positive, or infinity for a hard marginal, got "
            "-1.000000");
  o.rho_a = o.rho_b = std::numeric_limits<double>::infinity();
  EXPECT_NE(error_of([&] { ot::unbalanced_sinkhorn(torch::ones({2, 2}), vec({1, 1}), {}, o); }).find("equal masses"),
            std::string::npos);
}

// ------------------------------------------------------------------------------------------------
TEST(EnergyDistance, KnownValuesAndBruteForce) {
  // Two point masses d apart: 2d.
  EXPECT_NEAR(ot::energy_distance(vec({0}), vec({3})), 6.0, 1e-15);
  const torch::Tensor x = torch::randn({37, 3}, torch::kDouble), y = torch::randn({23, 3}, torch::kDouble) + 0.5;
  EXPECT_NEAR(ot::energy_distance(x, x), 0.0, 1e-12);
  const auto mean_dist = [](const torch::Tensor& p, const torch::Tensor& q) {
    return (p.unsqueeze(1) - q.unsqueeze(0)).square().sum(2).sqrt().mean().item<double>();
  };
  const double expect = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y);
  EXPECT_NEAR(ot::energy_distance(x, y), expect, 1e-12);
  EXPECT_GT(expect, 0);
  // Weights: a cloud with a doubled weight equals the cloud with that point repeated.
  const torch::Tensor w = torch::ones({37}, torch::kDouble).index_put_({0}, 2.0);
  const torch::Tensor repeated = torch::cat({x, x.narrow(0, 0, 1)});
  EXPECT_NEAR(ot::energy_distance(x, y, w), ot::energy_distance(repeated, y), 1e-12);
  EXPECT_EQ(error_of([&] { ot::energy_distance(x, y, {}, torch::ones({3})); }),
            "monge.ot.energy_distance: b has 3 entries for 23 points of y");
}

TEST(SinkhornDivergence, ZeroOnEqualCloudsAndNearExactOTForSmallEps) {
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(14);
  const torch::Tensor x = torch::randn({40, 2}, gen, torch::kDouble), y = torch::randn({50, 2}, gen, torch::kDouble) + 2;
  // Zero up to the iterations' convergence (the cross and self terms use different updates).
  EXPECT_NEAR(ot::sinkhorn_divergence(x, x), 0.0, 1e-6);
  const double exact = ot::exact(ot::cost_matrix(x, y)).cost;
  ot::DivergenceOptions o;
  o.eps = 0.1;
  o.max_iter = 2000;
  o.tol = 1e-7;
  const double s = ot::sinkhorn_divergence(x, y, {}, {}, o);
  std::printf("Sinkhorn divergence (eps 0.1) %.6f, exact OT %.6f\n", s, exact);
  EXPECT_GT(s, 0);
  EXPECT_NEAR(s, exact, 0.05 * exact);
  // The definition, term by term with sinkhorn() (the self terms use the symmetric update).
  ot::SinkhornOptions so;
  so.eps = 0.5;
  so.tol = 1e-12;
  so.max_iter = 20000;
  const auto obj = [&](const torch::Tensor& p, const torch::Tensor& q) {
    return ot::sinkhorn(ot::cost_matrix(p, q), {}, {}, so).objective;
  };
  o.eps = 0.5;
  o.tol = 1e-12;
  o.max_iter = 20000;
  EXPECT_NEAR(ot::sinkhorn_divergence(x, y, {}, {}, o), obj(x, y) - 0.5 * (obj(x, x) + obj(y, y)), 1e-9);
  o.eps = 1.0;
  const double blurred = ot::sinkhorn_divergence(x, y, {}, {}, o);
  EXPECT_GT(blurred, 0);
  EXPECT_LT(blurred, s);
}

}  // namespace

namespace {

// Timings for docs/lua.md; run by hand: discrete_ot_test --gtest_also_run_disabled_tests
// --gtest_filter='*Timing*'.
}  // namespace
