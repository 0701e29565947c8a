#pragma once
// not / knot: Neural Optimal Transport (Korotin, Selikhanovych, Burnaev 2023) with the strong or
// gamma-weak quadratic cost, and its kernel variant (kernel NOT, Korotin et al. 2023) with the
// distance-induced kernel ||a - b||^alpha, alpha = 1 by default, which rules out fake solutions.
// Shared by two plugins that differ in name and defaults only: `not` (this folder) and `knot`
// (plugins/solvers/knot).
//
// Saddle point sup_v inf_T  E_x v(x) + E_y [ C(y, T(y, .)#S) - E_z v(T(y, z)) ], where T takes the
// lifted measurement Q(y) and `latent` channels of z ~ N(0, 1), and each y gets Z samples of z:
//   quadratic:  C = tau ( mean_z c(y, T_z) - gamma Var_z T_z )           (Var: unbiased, summed over values)
//   distance:   C = tau ( mean_z c(y, T_z)^(alpha/2) - gamma/2 mean_{z != z'} ||T_z - T_z'||^alpha )
// c is the cost plugin (||Q(y) - x||^2 for `quadratic`), so c^(alpha/2) is a distance to the power
// alpha. With alpha = 2 the two agree (E||T - T'||^2 = 2 Var). gamma = 0 gives the strong cost.
//
// Each step() updates the map once on its batch of y (fresh z); every k_t-th step also updates the
// potential, on the step's clean batch and on T(y, z) from the updated map, with the map's
// normalisation layers in eval mode. So k_t map updates with fresh batches precede each potential
// update, as in the reference algorithm. gamma rises linearly from 0 over the first gamma_ramp of
// the run (not: a quarter, as the report; knot: no ramp, its kernel cost acts from the start).
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "monge/solver.hpp"
#include "monge/solver_util.hpp"

namespace monge::neural_ot {

// What tells the plugins built on this solver apart: the name (in messages and records) and
// parameter defaults.
struct Variant {
  const char* name;
  const char* kernel;  // "quadratic" or "distance"
  double gamma, gamma_ramp;
};

// The per-value cost weight of uotip (49.152 / D for D values) scaled to a cost of power alpha.
constexpr double kTauPerValue = 49.152;

template <const Variant& V>
class NeuralOt final : public monge::Solver {
 public:
  explicit NeuralOt(const monge::Params& p)
      : distance_(p.string("kernel") == "distance"),
        alpha_(p.real("alpha")),
        gamma_(p.real("gamma")),
        gamma_ramp_(p.real("gamma_ramp")),
        latent_(p.integer("latent")),
        z_samples_(p.integer("z_samples")),
        k_t_(p.integer("k_t")),
        tau_(p.real("tau")),
        r1_(p.real("r1")),
        train_(V.name, p),
        seed_(static_cast<uint64_t>(p.integer("seed"))) {
    if (z_samples_ == 0) z_samples_ = (gamma_ > 0 && latent_ > 0) ? 4 : 1;
    if (gamma_ > 0 && z_samples_ < 2)
      throw monge::ParamError(std::string(V.name) + ": gamma > 0 (a weak cost) needs z_samples >= 2 to estimate the "
                              "spread of T(y, z); got z_samples = " + std::to_string(z_samples_));
    if (gamma_ > 0 && latent_ == 0)
      throw monge::ParamError(std::string(V.name) + ": gamma > 0 (a weak cost) needs a stochastic map: set latent >= 1");
    if (!distance_ && alpha_ != 2)
      throw monge::ParamError(std::string(V.name) + ": 'alpha' applies to kernel = \"distance\"; the quadratic kernel "
                              "has alpha = 2");
  }

  int64_t latent_channels() const override { return latent_; }

  void setup(const monge::SolverContext& context) override {
    if (!context.cost) throw monge::Error(std::string(V.name) + ": setup needs a cost");
    train_.setup(context);
  }

  std::map<std::string, double> step(const at::Tensor& y, const at::Tensor& x) override {
    std::map<std::string, double> stats;
    train_.begin_step(stats);
    const at::Tensor q = ctx().op ? ctx().op->lift(y) : y;
    const int64_t n = y.size(0), values = x[0].numel();
    const double tau = tau_ > 0 ? tau_ : kTauPerValue / std::pow(static_cast<double>(values), alpha() / 2);
    const double gamma = current_gamma();
    stats["tau"] = tau;
    stats["gamma"] = gamma;

    // Each measurement repeated once per z sample: rows i * Z .. i * Z + Z - 1 belong to y_i.
    const at::Tensor y_rep = z_samples_ > 1 ? y.repeat_interleave(z_samples_, 0) : y;
    const at::Tensor q_rep = z_samples_ > 1 ? q.repeat_interleave(z_samples_, 0) : q;

    // 1. Map step.
    ctx().map->train();
    at::Tensor t = transport(q_rep, 0);
    at::Tensor cost = transport_cost(y_rep, t, n, tau, gamma, stats);
    at::Tensor loss_map = cost.mean() - ctx().potential->forward(t).mean();
    train_.map_optimiser().zero_grad();
    loss_map.backward();
    ctx().sync_gradients(*ctx().map);
    train_.map_optimiser().step();
    stats["loss_map"] = loss_map.item<double>();
    stats["cost"] = cost.mean().item<double>();

    // 2. Every k_t-th step: the potential, with T(y, z) from the updated map in eval mode.
    if ((train_.steps() + 1) % k_t_ == 0) {
      at::Tensor t_new;
      {
        torch::NoGradGuard no_grad;
        ctx().map->eval();
        t_new = transport(q_rep, 1);
        ctx().map->train();
      }
      at::Tensor v_fake = ctx().potential->forward(t_new);
      at::Tensor x_real = x.detach().requires_grad_(r1_ > 0);
      at::Tensor v_real = ctx().potential->forward(x_real);
      at::Tensor loss_potential = v_fake.mean() - v_real.mean();
      at::Tensor total = loss_potential;
      if (r1_ > 0) {
        at::Tensor grad = torch::autograd::grad({v_real.sum()}, {x_real}, {}, /*retain_graph=*/true,
                                                /*create_graph=*/true)[0];
        total = total + 0.5 * r1_ * grad.reshape({grad.size(0), -1}).square().sum(1).mean();
      }
      train_.potential_optimiser().zero_grad();
      total.backward();
      ctx().sync_gradients(*ctx().potential);
      train_.potential_optimiser().step();
      last_potential_ = {loss_potential.item<double>(), v_fake.mean().item<double>(), v_real.mean().item<double>()};
      ++potential_steps_;
    }
    stats["loss_potential"] = last_potential_[0];
    stats["v_fake"] = last_potential_[1];
    stats["v_real"] = last_potential_[2];
    stats["potential_steps"] = static_cast<double>(potential_steps_);

    train_.end_step(stats);
    return stats;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    train_.save(archive);
    archive.write("potential_steps", c10::IValue(potential_steps_));
    archive.write("last_potential", c10::IValue(std::vector<double>(last_potential_.begin(), last_potential_.end())));
  }

  void load(torch::serialize::InputArchive& archive) override {
    train_.load(archive);
    c10::IValue v;
    archive.read("potential_steps", v);
    potential_steps_ = v.toInt();
    archive.read("last_potential", v);
    const auto last = v.toDoubleVector();
    if (last.size() != last_potential_.size()) throw monge::Error(std::string(V.name) + ": bad checkpoint record");
    std::copy(last.begin(), last.end(), last_potential_.begin());
  }

  bool scale_learning_rates(double factor) override { return train_.scale_learning_rates(factor); }
  std::shared_ptr<monge::Module> export_map() const override { return train_.export_map(); }

  static monge::Schema schema() {
    monge::Schema schema;
    schema
        .choice("kernel", V.kernel, {"quadratic", "distance"},
                "quadratic: the (gamma-weak) quadratic cost of NOT; distance: the kernel cost ||a - b||^alpha of "
                "kernel NOT (characteristic for alpha = 1: no fake solutions)")
        .real("alpha", std::string(V.kernel) == "distance" ? 1.0 : 2.0, 0.01, 2,
              "power of the distance kernel (1: the energy-distance kernel); 2 for the quadratic kernel")
        .real("gamma", V.gamma, 0, 10,
              "weight of the spread term (0: the strong cost, a deterministic map; > 0: a weak cost, one-to-many)")
        .real("gamma_ramp", V.gamma_ramp, 0, 1, "gamma rises linearly from 0 over this fraction of the run (0: constant)")
        .integer("latent", 1, 0, 4096, "channels of z ~ N(0, 1) fed to the map after Q(y) (0: a deterministic map)")
        .integer("z_samples", 0, 0, 64, "z samples per measurement in each step; 0: 4 for a weak cost, else 1")
        .integer("k_t", 10, 1, 1000, "map updates per potential update (K_T)")
        .real("tau", 0, 0, 1e6, "cost weight; 0 = 49.152 / D^(alpha/2) for D values per image (uotip's weight per value)");
    // lr_map, lr_potential, Adam betas, moving average: Adam 1e-4 for both, as the NOT report.
    monge::solver_util::MapPotentialTraining::add_params(schema, {1e-4, 1e-4, 0.9, 0.999, 0});
    schema.real("r1", 0, 0, 1e3, "R1 gradient penalty weight on clean data (gamma/2 E|grad v|^2); 0 = off")
        .integer("seed", 0, 0, int64_t(1) << 52, "seed of the z draws (drawn per step: resume is exact)");
    return schema;
  }

 private:
  const monge::SolverContext& ctx() const { return train_.context(); }
  double alpha() const { return distance_ ? alpha_ : 2.0; }

  double current_gamma() const {
    if (gamma_ramp_ <= 0 || ctx().total_steps <= 0) return gamma_;
    const double ramp = gamma_ramp_ * static_cast<double>(ctx().total_steps);
    return gamma_ * std::min(1.0, static_cast<double>(train_.steps() + 1) / std::max(1.0, ramp));
  }

  // T(Q(y), z) with fresh z for this step (`draw` 0: the map step, 1: the potential step), from a
  // generator seeded by the step, so a resumed run draws the same z.
  at::Tensor transport(const at::Tensor& q, int64_t draw) const {
    if (latent_ == 0) return ctx().map->forward(q);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(2 * train_.steps() + draw + 1)));
    at::Tensor z = at::randn({q.size(0), latent_, q.size(2), q.size(3)}, gen, at::TensorOptions().dtype(at::kFloat));
    return ctx().map->forward(at::cat({q, z.to(q.device(), q.scalar_type())}, 1));
  }

  // The per-measurement cost C(y, T(y, .)#S) estimated from the Z samples in `t` ([n * Z, ...]).
  at::Tensor transport_cost(const at::Tensor& y_rep, const at::Tensor& t, int64_t n, double tau, double gamma,
                            std::map<std::string, double>& stats) const {
    const int64_t zs = z_samples_;
    at::Tensor c = ctx().cost->evaluate(y_rep, t);
    if (distance_ && alpha_ != 2) c = (c + 1e-12).pow(alpha_ / 2);  // the distance to the power alpha
    at::Tensor strong = c.view({n, zs}).mean(1);
    if (gamma <= 0 || zs < 2) return tau * strong;
    at::Tensor flat = t.reshape({n, zs, -1});
    at::Tensor spread;
    if (!distance_ || alpha_ == 2) {
      spread = 2 * flat.var(1, /*unbiased=*/true).sum(1);  // E||T - T'||^2 over distinct pairs = 2 Var
    } else {
      spread = at::zeros({n}, t.options());
      for (int64_t i = 0; i < zs; ++i)
        for (int64_t j = i + 1; j < zs; ++j)
          spread = spread + ((flat.select(1, i) - flat.select(1, j)).square().sum(1) + 1e-12).pow(alpha_ / 2);
      spread = spread / (zs * (zs - 1) / 2);
    }
    stats["spread"] = spread.mean().item<double>();
    return tau * (strong - 0.5 * gamma * spread);
  }

  bool distance_;
  double alpha_, gamma_, gamma_ramp_;
  int64_t latent_, z_samples_, k_t_;
  double tau_, r1_;
  monge::solver_util::MapPotentialTraining train_;
  uint64_t seed_;
  int64_t potential_steps_ = 0;
  std::array<double, 3> last_potential_{0, 0, 0};  // loss, v(T(y)), v(x) of the last potential update
};

}  // namespace monge::neural_ot
