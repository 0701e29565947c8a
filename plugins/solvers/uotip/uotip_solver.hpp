#pragma once
// uotip: Algorithm 1 of "Unbalanced Optimal Transport Map for Inverse Problems" (UOTIP).
//
// Each step takes independent batches of measurements y and clean signals x and
//   1. updates the map T on  L_T = mean_y [ tau c(y, T(y)) - v(T(y)) ]
//   2. updates the potential v on
//        L_v = mean_y Psi1*( -tau c(y, T(y)) + v(T(y)) ) + mean_x Psi2*( -v(x) ) + r1/2 mean_x |grad v(x)|^2
//      with T(y) recomputed by the updated map.
// T acts on the lifted measurement Q(y). Psi* = exp(t) - 1 (KL) gives UOTIP; identity for both
// gives the balanced OTIP.
//
// Smoothing (OTP, Choi, Choi & Kwon, ICML 2025): the source is smoothed, y~ = y + s n with
// n ~ N(0, I), and every y above is y~ (lift and cost included): the max-min problem then has a
// source with a density, whose OT map is unique, which rules out the spurious solutions of
// semi-dual neural OT. s is annealed geometrically from `smoothing` to `smoothing_min` over the
// first `smoothing_anneal` of the run and stays there; the exported map is applied to
// y + smoothing_min n (Solver::input_noise), so that it samples a transport plan, not one map.
// Shared by two plugins that differ in name and defaults only: `uotip` (this folder: smoothing off
// by default) and `otp` (plugins/solvers/otp: balanced, smoothing on).
#include <torch/torch.h>

#include <cmath>

#include "monge/solver.hpp"
#include "monge/solver_util.hpp"

namespace monge::uotip {

// What tells the plugins built on this solver apart: the name (in messages and records) and
// parameter defaults.
struct Variant {
  const char* name;
  const char* psi;  // default of psi1 and psi2
  double smoothing, smoothing_min;
};

// The paper's cost weight is 1e-3 for a 128 x 128 x 3 image: the same weight per value is
// 1e-3 * 49152 / D for D values per image.
constexpr double kTauPerValue = 49.152;

enum class Conjugate { Kl, Chi2, Softplus, Identity };

inline Conjugate parse_conjugate(const std::string& s) {
  if (s == "kl") return Conjugate::Kl;
  if (s == "chi2") return Conjugate::Chi2;
  if (s == "softplus") return Conjugate::Softplus;
  return Conjugate::Identity;
}

template <const Variant& V>
class UotipSolver final : public monge::Solver {
 public:
  explicit UotipSolver(const monge::Params& p)
      : psi1_(parse_conjugate(p.string("psi1"))),
        psi2_(parse_conjugate(p.string("psi2"))),
        tau_(p.real("tau")),
        r1_(p.real("r1")),
        train_(V.name, p),
        max_exponent_(p.real("max_exponent")),
        smoothing_(p.real("smoothing")),
        smoothing_min_(p.real("smoothing_min")),
        smoothing_anneal_(p.real("smoothing_anneal")),
        seed_(static_cast<uint64_t>(p.integer("seed"))) {
    if (smoothing_ > 0 && !(smoothing_min_ > 0))
      throw monge::Error(std::string(V.name) + ": smoothing_min must be positive when smoothing is on (the annealing is geometric)");
    if (smoothing_ > 0 && smoothing_min_ > smoothing_)
      throw monge::Error(std::string(V.name) + ": smoothing_min (" + std::to_string(smoothing_min_) +
                         ") must not exceed smoothing (" + std::to_string(smoothing_) + ")");
  }

  void setup(const monge::SolverContext& context) override {
    if (!context.cost) throw monge::Error(std::string(V.name) + ": setup needs a cost");
    train_.setup(context);
  }

  std::map<std::string, double> step(const at::Tensor& y_in, const at::Tensor& x) override {
    std::map<std::string, double> stats;
    train_.begin_step(stats);
    const monge::SolverContext& ctx = train_.context();
    const double s = smoothing_level();
    const at::Tensor y = s > 0 ? smooth(y_in, s) : y_in;
    const at::Tensor q = ctx.op ? ctx.op->lift(y) : y;
    const double tau = tau_ > 0 ? tau_ : kTauPerValue / static_cast<double>(x[0].numel());
    stats["tau"] = tau;
    if (smoothing_ > 0) stats["smoothing"] = s;

    // 1. Map step.
    ctx.map->train();
    at::Tensor ty = ctx.map->forward(q);
    at::Tensor cost = tau * ctx.cost->evaluate(y, ty);
    at::Tensor loss_map = (cost - ctx.potential->forward(ty)).mean();
    train_.map_optimiser().zero_grad();
    loss_map.backward();
    ctx.sync_gradients(*ctx.map);
    train_.map_optimiser().step();
    stats["loss_map"] = loss_map.item<double>();
    stats["cost"] = cost.mean().item<double>();

    // 2. Potential step, with T(y) from the updated map.
    at::Tensor ty_new;
    {
      torch::NoGradGuard no_grad;
      ty_new = ctx.map->forward(q);
    }
    at::Tensor cost_new = tau * ctx.cost->evaluate(y, ty_new).detach();
    at::Tensor v_fake = ctx.potential->forward(ty_new);
    at::Tensor x_real = x.detach().requires_grad_(r1_ > 0);
    at::Tensor v_real = ctx.potential->forward(x_real);
    int64_t clamped = 0;
    at::Tensor fake_term = conjugate(psi1_, -cost_new + v_fake, clamped).mean();
    at::Tensor real_term = conjugate(psi2_, -v_real, clamped).mean();
    at::Tensor loss_potential = fake_term + real_term;
    at::Tensor total = loss_potential;
    if (r1_ > 0) {
      at::Tensor grad = torch::autograd::grad({v_real.sum()}, {x_real}, {}, /*retain_graph=*/true,
                                              /*create_graph=*/true)[0];
      at::Tensor penalty = 0.5 * r1_ * grad.reshape({grad.size(0), -1}).square().sum(1).mean();
      total = total + penalty;
      stats["r1"] = penalty.item<double>();
    }
    train_.potential_optimiser().zero_grad();
    total.backward();
    ctx.sync_gradients(*ctx.potential);
    train_.potential_optimiser().step();
    stats["loss_potential"] = loss_potential.item<double>();
    stats["v_fake"] = v_fake.mean().item<double>();
    stats["v_real"] = v_real.mean().item<double>();
    stats["clamped"] = static_cast<double>(clamped);

    // 3. Moving average of the map (with warm-up: see solver_util.hpp), and the step count.
    train_.end_step(stats);
    return stats;
  }

  void save(torch::serialize::OutputArchive& archive) const override { train_.save(archive); }
  void load(torch::serialize::InputArchive& archive) override { train_.load(archive); }
  bool scale_learning_rates(double factor) override { return train_.scale_learning_rates(factor); }
  std::shared_ptr<monge::Module> export_map() const override { return train_.export_map(); }

  double input_noise() const override { return smoothing_ > 0 ? smoothing_min_ : 0.0; }

  static monge::Schema schema() {
    const std::vector<std::string> conjugates = {"kl", "chi2", "softplus", "identity"};
    monge::Schema schema;
    schema.choice("psi1", V.psi, conjugates, "conjugate of the penalty on the measurement marginal (identity: balanced)")
        .choice("psi2", V.psi, conjugates, "conjugate of the penalty on the signal marginal (identity: balanced)")
        .real("tau", 0, 0, 1e6, "cost weight; 0 = the paper's weight per value, 49.152 / (values per image)");
    // lr_map, lr_potential, Adam betas (0.5 / 0.9 as UOTM), moving average.
    monge::solver_util::MapPotentialTraining::add_params(schema, {1e-4, 5e-5, 0.5, 0.9, 0.999});
    schema.real("r1", 0.2, 0, 1e3, "R1 gradient penalty weight gamma on clean data (gamma/2 E|grad v|^2); 0 = off")
        .real("max_exponent", 30, 1, 80, "kl: arguments of exp(t) - 1 are clamped here; clamps are counted")
        .real("smoothing", V.smoothing, 0, 100,
              "OTP: initial standard deviation s of the Gaussian noise added to the measurements (0: off)")
        .real("smoothing_min", V.smoothing_min, 0, 100,
              "OTP: the level s is annealed to and ends at; the exported map adds it at apply time")
        .real("smoothing_anneal", 0.8, 0, 1,
              "OTP: fraction of the run over which s falls geometrically from smoothing to smoothing_min")
        .integer("seed", 0, 0, int64_t(1) << 52, "seed of the smoothing noise (drawn per step: resume is exact)");
    return schema;
  }

 private:
  // The smoothing level at this step: geometric from smoothing_ to smoothing_min_ over the first
  // smoothing_anneal_ of the run (at the end level when the run's length is unknown).
  double smoothing_level() const {
    if (!(smoothing_ > 0)) return 0.0;
    const double span = smoothing_anneal_ * static_cast<double>(train_.context().total_steps);
    if (!(span >= 1)) return smoothing_min_;
    const double progress = std::min(1.0, static_cast<double>(train_.steps()) / span);
    return smoothing_ * std::pow(smoothing_min_ / smoothing_, progress);
  }

  // y + s n, n ~ N(0, I) from a generator seeded by the step, so that a resumed run draws the same.
  at::Tensor smooth(const at::Tensor& y, double s) const {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(train_.steps() + 1)));
    const at::Tensor n = at::randn(y.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
    return y + s * n.to(y.device(), y.scalar_type());
  }

  // Psi*(t) for the chosen marginal penalty; counts values clamped to avoid exp overflow.
  at::Tensor conjugate(Conjugate c, const at::Tensor& t, int64_t& clamped) const {
    switch (c) {
      case Conjugate::Kl: {
        clamped += t.gt(max_exponent_).sum().item<int64_t>();
        return at::exp(at::clamp_max(t, max_exponent_)) - 1;
      }
      case Conjugate::Chi2:
        // Pearson chi^2, f(u) = (u - 1)^2: f*(t) = t + t^2 / 4 for t >= -2, -1 below.
        return at::where(t >= -2, t + t.square() / 4, at::full_like(t, -1.0));
      case Conjugate::Softplus:
        // A smooth conjugate with Psi*(0) = 0 and slope 1 at 0, linear growth for large t.
        return 2 * at::softplus(t) - 2 * std::log(2.0);
      case Conjugate::Identity:
        return t;
    }
    return t;
  }

  Conjugate psi1_, psi2_;
  double tau_, r1_;
  monge::solver_util::MapPotentialTraining train_;
  double max_exponent_;
  double smoothing_, smoothing_min_, smoothing_anneal_;
  uint64_t seed_;
};

}  // namespace monge::uotip
