// The uotip solver against losses computed by hand on tiny tensors, for each Psi*; gan_reg likewise.
#include <torch/torch.h>

#include <cmath>

#include <gtest/gtest.h>

#include "host/core/registry.hpp"
#include "monge/sdk.hpp"
#include "monge/solver.hpp"

namespace {

using monge::host::Registry;

// T(z) = a z with one scalar parameter a.
class ScaleMap : public monge::Module {
 public:
  explicit ScaleMap(double a) { a_ = register_parameter("a", torch::full({1}, a, torch::kFloat64)); }
  at::Tensor forward(const at::Tensor& z) override { return z * a_; }
  at::Tensor a_;
};

// v(x) = b * sum(x) per sample.
class LinearPotential : public monge::Module {
 public:
  explicit LinearPotential(double b) { b_ = register_parameter("b", torch::full({1}, b, torch::kFloat64)); }
  at::Tensor forward(const at::Tensor& x) override { return x.reshape({x.size(0), -1}).sum(1) * b_; }
  at::Tensor b_;
};

// c(y, x) = sum (x - y)^2 per sample.
class SquaredCost : public monge::Cost {
 public:
  at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const override {
    return (x - y).square().reshape({x.size(0), -1}).sum(1);
  }
};

std::shared_ptr<monge::Solver> make_solver(const monge::ParamMap& params) {
  static Registry* reg = [] {
    auto* r = new Registry(Registry::default_dirs(false));
    r->scan();
    return r;
  }();
  return std::dynamic_pointer_cast<monge::Solver>(reg->create("uotip", params, monge::Kind::Solver));
}

double psi(const std::string& kind, double t) {
  if (kind == "kl") return std::exp(t) - 1;
  if (kind == "chi2") return t >= -2 ? t + t * t / 4 : -1;
  if (kind == "softplus") return 2 * std::log1p(std::exp(t)) - 2 * std::log(2.0);
  return t;
}

struct Toy {
  std::shared_ptr<ScaleMap> map = std::make_shared<ScaleMap>(2.0);
  std::shared_ptr<LinearPotential> potential = std::make_shared<LinearPotential>(0.3);
  std::shared_ptr<ScaleMap> ema = std::make_shared<ScaleMap>(0.0);
  at::Tensor y = torch::tensor({1.0, 2.0}, torch::kFloat64).view({2, 1, 1, 1});
  at::Tensor x = torch::tensor({0.5, 1.5}, torch::kFloat64).view({2, 1, 1, 1});
  monge::SolverContext context() {
    monge::SolverContext c;
    c.map = map;
    c.potential = potential;
    c.map_ema = ema;
    c.cost = std::make_shared<SquaredCost>();
    return c;
  }
};

class UotipLosses : public ::testing::TestWithParam<std::string> {};

TEST_P(UotipLosses, MatchHandComputedAlgorithm1) {
  const std::string kind = GetParam();
  const double lr_map = 0.1, lr_pot = 0.05, gamma = 0.4, tau = 1.0;
  auto solver = make_solver({{"psi1", kind}, {"psi2", kind}, {"tau", tau}, {"lr_map", lr_map},
                             {"lr_potential", lr_pot}, {"r1", gamma}, {"ema", 0.5},
                             {"ema_warmup", false}});
  Toy s;
  solver->setup(s.context());
  const auto stats = solver->step(s.y, s.x);

  // Map step with a = 2, b = 0.3: T(y) = (2, 4), c = (1, 4), v(T(y)) = (0.6, 1.2).
  EXPECT_NEAR(stats.at("loss_map"), ((1 - 0.6) + (4 - 1.2)) / 2, 1e-12);
  EXPECT_NEAR(stats.at("cost"), 2.5, 1e-12);
  // dL_T/da = mean(2 (a y - y) y - b y) = 4.55 > 0: Adam's first step moves a by -lr.
  EXPECT_NEAR(s.map->a_.item<double>(), 2.0 - lr_map, 1e-7);
  const double a = s.map->a_.item<double>();  // exact value (Adam's eps shifts it by ~1e-9)
  // Potential step with the updated map: T(y) = a y.
  const double y1 = 1, y2 = 2, x1 = 0.5, x2 = 1.5, b = 0.3;
  const double c1 = std::pow(a * y1 - y1, 2), c2 = std::pow(a * y2 - y2, 2);
  const double fake = (psi(kind, -tau * c1 + b * a * y1) + psi(kind, -tau * c2 + b * a * y2)) / 2;
  const double real = (psi(kind, -b * x1) + psi(kind, -b * x2)) / 2;
  EXPECT_NEAR(stats.at("loss_potential"), fake + real, 1e-10) << kind;
  EXPECT_NEAR(stats.at("r1"), gamma / 2 * b * b, 1e-12);  // |grad_x v|^2 = b^2 for each sample
  EXPECT_NEAR(stats.at("v_fake"), b * a * (y1 + y2) / 2, 1e-12);
  EXPECT_NEAR(stats.at("v_real"), b * (x1 + x2) / 2, 1e-12);
  EXPECT_EQ(stats.at("clamped"), 0.0);
  // The potential moved by lr in the direction that lowers L_v + r1.
  const double b_after = s.potential->b_.item<double>();
  EXPECT_NEAR(std::fabs(b_after - b), lr_pot, 1e-7);
  // EMA with decay 0.5: starts at a copy of the map, then averages.
  EXPECT_NEAR(s.ema->a_.item<double>(), 0.5 * 2.0 + 0.5 * a, 1e-12);
  EXPECT_EQ(solver->export_map().get(), s.ema.get());
}

INSTANTIATE_TEST_SUITE_P(EachConjugate, UotipLosses, ::testing::Values("kl", "chi2", "softplus", "identity"));

TEST(Uotip, TauDefaultsToThePaperWeightPerValue) {
  auto solver = make_solver({});
  Toy s;
  solver->setup(s.context());
  s.x = torch::zeros({2, 1, 28, 28}, torch::kFloat64);
  s.y = torch::zeros({2, 1, 28, 28}, torch::kFloat64);
  EXPECT_NEAR(solver->step(s.y, s.x).at("tau"), 49.152 / 784, 1e-12);
}

TEST(Uotip, ExponentOverflowIsClampedAndCounted) {
  auto solver = make_solver({{"psi1", std::string("kl")}, {"tau", 1e-6}, {"max_exponent", 5.0}});
  Toy s;
  s.potential = std::make_shared<LinearPotential>(100.0);  // v(T(y)) = 100 a y: far above 5
  solver->setup(s.context());
  const auto stats = solver->step(s.y, s.x);
  EXPECT_EQ(stats.at("clamped"), 2.0);
  EXPECT_TRUE(std::isfinite(stats.at("loss_potential")));
}

TEST(Uotip, SaveAndLoadRestoreOptimiserState) {
  auto run = [](int steps_before, bool reload) {
    Toy s;
    auto solver = make_solver({{"lr_map", 0.01}, {"lr_potential", 0.01}, {"tau", 1.0}});
    solver->setup(s.context());
    for (int i = 0; i < steps_before; ++i) solver->step(s.y, s.x);
    if (reload) {
      torch::serialize::OutputArchive out;
      solver->save(out);
      std::ostringstream buffer;
      out.save_to(buffer);
      auto fresh = make_solver({{"lr_map", 0.01}, {"lr_potential", 0.01}, {"tau", 1.0}});
      fresh->setup(s.context());
      torch::serialize::InputArchive in;
      std::istringstream input(buffer.str());
      in.load_from(input);
      fresh->load(in);
      solver = fresh;
    }
    for (int i = 0; i < 3; ++i) solver->step(s.y, s.x);
    return std::make_pair(s.map->a_.item<double>(), s.potential->b_.item<double>());
  };
  const auto straight = run(3, false);
  const auto resumed = run(3, true);
  EXPECT_DOUBLE_EQ(straight.first, resumed.first);
  EXPECT_DOUBLE_EQ(straight.second, resumed.second);
}

TEST(Uotip, EmaWarmupFollowsTheMapEarlyOn) {
  auto solver = make_solver({{"lr_map", 0.1}, {"tau", 1.0}, {"ema", 0.999}});
  Toy s;
  solver->setup(s.context());
  // Step 0: decay min(0.999, 1/10) = 0.1, so the average moves 90% of the way to the map.
  auto stats = solver->step(s.y, s.x);
  EXPECT_NEAR(stats.at("ema_decay"), 0.1, 1e-15);
  const double a1 = s.map->a_.item<double>();
  EXPECT_NEAR(s.ema->a_.item<double>(), 0.1 * 2.0 + 0.9 * a1, 1e-12);
  // Step 1: 2/11; late steps reach the configured decay.
  EXPECT_NEAR(solver->step(s.y, s.x).at("ema_decay"), 2.0 / 11.0, 1e-15);
  for (int i = 0; i < 20000 && stats.at("ema_decay") < 0.999; ++i) stats = solver->step(s.y, s.x);
  EXPECT_DOUBLE_EQ(stats.at("ema_decay"), 0.999);
}

TEST(Uotip, ScaledLearningRatesMoveLessAndSurviveSaveAndLoad) {
  // Adam's first step moves a parameter by exactly its learning rate.
  auto first_move = [](double scale, bool reload) {
    Toy s;
    auto solver = make_solver({{"lr_map", 0.1}, {"tau", 1.0}});
    solver->setup(s.context());
    if (scale != 1.0) {
      EXPECT_TRUE(solver->scale_learning_rates(scale));
    }
    if (reload) {
      torch::serialize::OutputArchive out;
      solver->save(out);
      std::ostringstream buffer;
      out.save_to(buffer);
      solver = make_solver({{"lr_map", 0.1}, {"tau", 1.0}});
      solver->setup(s.context());
      torch::serialize::InputArchive in;
      std::istringstream input(buffer.str());
      in.load_from(input);
      solver->load(in);
    }
    const double before = s.map->a_.item<double>();
    const auto stats = solver->step(s.y, s.x);
    EXPECT_DOUBLE_EQ(stats.at("lr_scale"), scale);
    return std::fabs(s.map->a_.item<double>() - before);
  };
  EXPECT_NEAR(first_move(1.0, false), 0.1, 1e-7);
  EXPECT_NEAR(first_move(0.25, false), 0.025, 1e-7);
  EXPECT_NEAR(first_move(0.25, true), 0.025, 1e-7);
  auto solver = make_solver({});
  Toy s;
  solver->setup(s.context());
  EXPECT_THROW(solver->scale_learning_rates(0.0), monge::Error);
}

TEST(Uotip, CosineScheduleFollowsTheRunLength) {
  auto solver = make_solver({{"lr_map", 0.1}, {"tau", 1.0}, {"lr_schedule", std::string("cosine")}});
  Toy s;
  auto ctx = s.context();
  ctx.total_steps = 4;
  solver->setup(ctx);
  const double expected[] = {0.1, 0.1 * (1 + std::cos(M_PI / 4)) / 2, 0.05, 0.1 * (1 + std::cos(3 * M_PI / 4)) / 2};
  for (double e : expected) EXPECT_NEAR(solver->step(s.y, s.x).at("lr_map"), e, 1e-15);
  // Halving after a rollback composes with the schedule.
  EXPECT_TRUE(solver->scale_learning_rates(0.5));
  EXPECT_NEAR(solver->step(s.y, s.x).at("lr_map"), 0.0, 1e-15);
}

TEST(Uotip, StepBeforeSetupIsAnError) {
  auto solver = make_solver({});
  Toy s;
  EXPECT_THROW(solver->step(s.y, s.x), monge::Error);
}

TEST(Uotip, UnknownConjugateSuggestsOne) {
  try {
    make_solver({{"psi1", std::string("kll")}});
    FAIL();
  } catch (const monge::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("(did you mean 'kl'?)"), std::string::npos) << e.what();
  }
}

// gan_reg: one step by hand (critic, then map), the reference renewed from the map, and the
// checks of setup().
std::shared_ptr<monge::Solver> make_named(const std::string& name, const monge::ParamMap& params) {
  static Registry* reg = [] {
    auto* r = new Registry(Registry::default_dirs(false));
    r->scan();
    return r;
  }();
  return std::dynamic_pointer_cast<monge::Solver>(reg->create(name, params, monge::Kind::Solver));
}

class GanRegLosses : public ::testing::TestWithParam<std::string> {};

TEST_P(GanRegLosses, MatchHandComputedStep) {
  const std::string fidelity = GetParam();
  const double lr_map = 0.1, lr_pot = 0.05, gp = 1.0, lambda = 2.0;
  auto solver = make_named("gan_reg", {{"fidelity", fidelity}, {"lambda", lambda}, {"gp", gp}, {"critic_steps", int64_t(1)},
                                       {"lr_map", lr_map}, {"lr_potential", lr_pot}});
  Toy s;
  solver->setup(s.context());
  const auto stats = solver->step(s.y, s.x);
  // Critic with a = 2, b = 0.3: D(T(y)) = 0.3 (2, 4), D(x) = 0.3 (0.5, 1.5); |grad_x D| = b = 0.3 at
  // every interpolate, so the penalty is gp (0.3 - 1)^2 whatever the draws.
  const double b = 0.3;
  EXPECT_NEAR(stats.at("loss_critic"), b * 3 - b * 1, 1e-12);
  EXPECT_NEAR(stats.at("w_estimate"), -(b * 3 - b * 1), 1e-12);
  EXPECT_NEAR(stats.at("gp"), gp * 0.49, 1e-9);
  // dL_D/db = mean T(y) - mean x + 2 gp (b - 1) = 3 - 1 - 1.4 > 0: Adam moves b by -lr.
  const double b1 = s.potential->b_.item<double>();
  EXPECT_NEAR(b1, b - lr_pot, 1e-7);
  // Map against the updated critic: T(y) - y = (1, 2); rmse per sample (1, 2), mse and the
  // squared cost (1, 4).
  const double fid = fidelity == "rmse" ? 1.5 : 2.5;
  EXPECT_NEAR(stats.at("fidelity"), fid, 1e-6);
  EXPECT_NEAR(stats.at("loss_map"), lambda * fid - b1 * 3, 1e-6);
  EXPECT_LT(s.map->a_.item<double>(), 2.0);  // the fidelity outweighs the critic: a shrinks
  EXPECT_NEAR(s.map->a_.item<double>(), 2.0 - lr_map, 1e-7);
  EXPECT_EQ(stats.at("reference_round"), 0.0);
  EXPECT_EQ(stats.at("map_steps"), 1.0);
  EXPECT_EQ(solver->export_map().get(), s.map.get());  // ema = 0: the raw map
}

INSTANTIATE_TEST_SUITE_P(EachFidelity, GanRegLosses, ::testing::Values("rmse", "mse", "cost"));

TEST(GanReg, ReferenceIsAFrozenCopyOfTheMap) {
  auto solver = make_named("gan_reg", {{"fidelity", std::string("mse")}, {"reference_every", int64_t(1)},
                                       {"critic_steps", int64_t(1)}, {"lr_map", 0.1}});
  Toy s;
  auto context = s.context();
  std::shared_ptr<ScaleMap> reference;
  context.build_map = [&] { return reference = std::make_shared<ScaleMap>(-7.0); };
  solver->setup(context);
  ASSERT_TRUE(reference);
  EXPECT_EQ(reference->a_.item<double>(), 2.0);  // a copy of the map from the start
  EXPECT_FALSE(reference->a_.requires_grad());
  auto stats = solver->step(s.y, s.x);
  EXPECT_EQ(stats.at("reference_round"), 1.0);
  const double a1 = s.map->a_.item<double>();
  EXPECT_EQ(reference->a_.item<double>(), a1);  // renewed after the step
  // Next step: the fidelity is against R(y) = a1 y = T(y) (the critic does not move the map).
  stats = solver->step(s.y, s.x);
  EXPECT_NEAR(stats.at("fidelity"), 0.0, 1e-12);
  EXPECT_EQ(stats.at("reference_round"), 2.0);
}

TEST(GanReg, SetupSaysWhatIsMissing) {
  Toy s;
  auto needs_factory = make_named("gan_reg", {{"fidelity", std::string("rmse")}, {"reference_every", int64_t(10)}});
  try {
    needs_factory->setup(s.context());  // no build_map
    FAIL() << "expected an error";
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("build_map"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_named("gan_reg", {{"fidelity", std::string("cost")}, {"reference_every", int64_t(10)}}), monge::Error);
  EXPECT_THROW(make_named("gan_reg", {{"lambda", -1.0}}), monge::Error);
}

}  // namespace
