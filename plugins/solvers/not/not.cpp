// not / knot: Neural Optimal Transport (Korotin, Selikhanovych, Burnaev 2023) with the strong or
// gamma-weak quadratic cost, and its kernel variant (kernel NOT, Korotin et al. 2023) with the
// distance-induced kernel ||a - b||^alpha, alpha = 1 by default, which rules out fake solutions.
// This one source builds both plugins: MONGE_KNOT selects knot's name and defaults.
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
// the run.
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "monge/export.hpp"
#include "monge/solver.hpp"
#include "monge/solver_util.hpp"

namespace {

#ifdef MONGE_KNOT
constexpr const char* kName = "knot";
constexpr const char* kDefaultKernel = "distance";
constexpr double kDefaultGamma = 0.5;
#else
constexpr const char* kName = "not";
constexpr const char* kDefaultKernel = "quadratic";
constexpr double kDefaultGamma = 0.0;
#endif

// The per-value cost weight of uotip (49.152 / D for D values) scaled to a cost of power alpha.
constexpr double kTauPerValue = 49.152;

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
        lr_map_(p.real("lr_map")),
        lr_potential_(p.real("lr_potential")),
        beta1_(p.real("beta1")),
        beta2_(p.real("beta2")),
        r1_(p.real("r1")),
        ema_(p.real("ema")),
        ema_warmup_(p.boolean("ema_warmup")),
        cosine_(p.string("lr_schedule") == "cosine"),
        seed_(static_cast<uint64_t>(p.integer("seed"))) {
    if (z_samples_ == 0) z_samples_ = (gamma_ > 0 && latent_ > 0) ? 4 : 1;
    if (gamma_ > 0 && z_samples_ < 2)
      throw monge::ParamError(std::string(kName) + ": gamma > 0 (a weak cost) needs z_samples >= 2 to estimate the "
                              "spread of T(y, z); got z_samples = " + std::to_string(z_samples_));
    if (gamma_ > 0 && latent_ == 0)
      throw monge::ParamError(std::string(kName) + ": gamma > 0 (a weak cost) needs a stochastic map: set latent >= 1");
    if (!distance_ && alpha_ != 2)
      throw monge::ParamError(std::string(kName) + ": 'alpha' applies to kernel = \"distance\"; the quadratic kernel "
                              "has alpha = 2");
  }

  int64_t latent_channels() const override { return latent_; }

  void setup(const monge::SolverContext& context) override {
    if (!context.map || !context.potential || !context.cost)
      throw monge::Error(std::string(kName) + ": setup needs a map, a potential and a cost");
    ctx_ = context;
    opt_map_ = std::make_unique<torch::optim::Adam>(
        ctx_.map->parameters(), torch::optim::AdamOptions(lr_map_).betas({beta1_, beta2_}));
    opt_potential_ = std::make_unique<torch::optim::Adam>(
        ctx_.potential->parameters(), torch::optim::AdamOptions(lr_potential_).betas({beta1_, beta2_}));
    if (ctx_.map_ema) {
      monge::solver_util::copy_parameters(*ctx_.map, *ctx_.map_ema);
      ctx_.map_ema->eval();
    }
  }

  std::map<std::string, double> step(const at::Tensor& y, const at::Tensor& x) override {
    if (!opt_map_) throw monge::Error(std::string(kName) + ": step() called before setup()");
    const at::Tensor q = ctx_.op ? ctx_.op->lift(y) : y;
    const int64_t n = y.size(0), values = x[0].numel();
    const double tau = tau_ > 0 ? tau_ : kTauPerValue / std::pow(static_cast<double>(values), alpha() / 2);
    const double gamma = current_gamma();
    std::map<std::string, double> stats;
    stats["tau"] = tau;
    stats["gamma"] = gamma;
    if (cosine_) apply_learning_rates();
    stats["lr_map"] = lr_map_ * lr_scale_ * schedule();

    // Each measurement repeated once per z sample: rows i * Z .. i * Z + Z - 1 belong to y_i.
    const at::Tensor y_rep = z_samples_ > 1 ? y.repeat_interleave(z_samples_, 0) : y;
    const at::Tensor q_rep = z_samples_ > 1 ? q.repeat_interleave(z_samples_, 0) : q;

    // 1. Map step.
    ctx_.map->train();
    at::Tensor t = transport(q_rep, 0);
    at::Tensor cost = transport_cost(y_rep, t, n, tau, gamma, stats);
    at::Tensor loss_map = cost.mean() - ctx_.potential->forward(t).mean();
    opt_map_->zero_grad();
    loss_map.backward();
    ctx_.sync_gradients(*ctx_.map);
    opt_map_->step();
    stats["loss_map"] = loss_map.item<double>();
    stats["cost"] = cost.mean().item<double>();

    // 2. Every k_t-th step: the potential, with T(y, z) from the updated map in eval mode.
    if ((steps_ + 1) % k_t_ == 0) {
      at::Tensor t_new;
      {
        torch::NoGradGuard no_grad;
        ctx_.map->eval();
        t_new = transport(q_rep, 1);
        ctx_.map->train();
      }
      at::Tensor v_fake = ctx_.potential->forward(t_new);
      at::Tensor x_real = x.detach().requires_grad_(r1_ > 0);
      at::Tensor v_real = ctx_.potential->forward(x_real);
      at::Tensor loss_potential = v_fake.mean() - v_real.mean();
      at::Tensor total = loss_potential;
      if (r1_ > 0) {
        at::Tensor grad = torch::autograd::grad({v_real.sum()}, {x_real}, {}, /*retain_graph=*/true,
                                                /*create_graph=*/true)[0];
        total = total + 0.5 * r1_ * grad.reshape({grad.size(0), -1}).square().sum(1).mean();
      }
      opt_potential_->zero_grad();
      total.backward();
      ctx_.sync_gradients(*ctx_.potential);
      opt_potential_->step();
      last_potential_ = {loss_potential.item<double>(), v_fake.mean().item<double>(), v_real.mean().item<double>()};
      ++potential_steps_;
    }
    stats["loss_potential"] = last_potential_[0];
    stats["v_fake"] = last_potential_[1];
    stats["v_real"] = last_potential_[2];
    stats["potential_steps"] = static_cast<double>(potential_steps_);

    if (ctx_.map_ema && ema_ > 0)
      stats["ema_decay"] = monge::solver_util::update_moving_average(*ctx_.map, *ctx_.map_ema, ema_, ema_warmup_, steps_);
    stats["lr_scale"] = lr_scale_;
    ++steps_;
    return stats;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    monge::solver_util::save_optimisers(archive, {{"optimizer_map", opt_map_.get()}, {"optimizer_potential", opt_potential_.get()}});
    archive.write("potential_steps", c10::IValue(potential_steps_));
    archive.write("last_potential", c10::IValue(std::vector<double>(last_potential_.begin(), last_potential_.end())));
    monge::solver_util::save_progress(archive, steps_, lr_scale_);
  }

  void load(torch::serialize::InputArchive& archive) override {
    monge::solver_util::load_optimisers(archive, {{"optimizer_map", opt_map_.get()}, {"optimizer_potential", opt_potential_.get()}});
    c10::IValue v;
    archive.read("potential_steps", v);
    potential_steps_ = v.toInt();
    archive.read("last_potential", v);
    const auto last = v.toDoubleVector();
    if (last.size() != last_potential_.size()) throw monge::Error(std::string(kName) + ": bad checkpoint record");
    std::copy(last.begin(), last.end(), last_potential_.begin());
    monge::solver_util::load_progress(archive, steps_, lr_scale_);
    apply_learning_rates();
  }

  bool scale_learning_rates(double factor) override {
    if (!(factor > 0)) throw monge::Error(std::string(kName) + ": learning rates can only be scaled by a positive factor");
    lr_scale_ *= factor;
    apply_learning_rates();
    return true;
  }

  std::shared_ptr<monge::Module> export_map() const override {
    return ctx_.map_ema && ema_ > 0 ? ctx_.map_ema : ctx_.map;
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .choice("kernel", kDefaultKernel, {"quadratic", "distance"},
                "quadratic: the (gamma-weak) quadratic cost of NOT; distance: the kernel cost ||a - b||^alpha of "
                "kernel NOT (characteristic for alpha = 1: no fake solutions)")
        .real("alpha", std::string(kDefaultKernel) == "distance" ? 1.0 : 2.0, 0.01, 2,
              "power of the distance kernel (1: the energy-distance kernel); 2 for the quadratic kernel")
        .real("gamma", kDefaultGamma, 0, 10,
              "weight of the spread term (0: the strong cost, a deterministic map; > 0: a weak cost, one-to-many)")
        .real("gamma_ramp", 0.25, 0, 1, "gamma rises linearly from 0 over this fraction of the run (0: constant)")
        .integer("latent", 1, 0, 4096, "channels of z ~ N(0, 1) fed to the map after Q(y) (0: a deterministic map)")
        .integer("z_samples", 0, 0, 64, "z samples per measurement in each step; 0: 4 for a weak cost, else 1")
        .integer("k_t", 10, 1, 1000, "map updates per potential update (K_T)")
        .real("tau", 0, 0, 1e6, "cost weight; 0 = 49.152 / D^(alpha/2) for D values per image (uotip's weight per value)")
        .real("lr_map", 1e-4, 0, 1, "Adam learning rate of the map T")
        .real("lr_potential", 1e-4, 0, 1, "Adam learning rate of the potential v")
        .choice("lr_schedule", "constant", {"constant", "cosine"},
                "cosine: both rates follow 0.5 (1 + cos(pi t / T)) over the run's T iterations")
        .real("beta1", 0.9, 0, 0.9999, "Adam beta1")
        .real("beta2", 0.999, 0, 0.99999, "Adam beta2")
        .real("r1", 0, 0, 1e3, "R1 gradient penalty weight on clean data (gamma/2 E|grad v|^2); 0 = off")
        .real("ema", 0, 0, 1, "decay of the map's exponential moving average (needs map_ema); 0 = off")
        .boolean("ema_warmup", true, "use decay min(ema, (1 + t) / (10 + t)) at step t")
        .integer("seed", 0, 0, int64_t(1) << 52, "seed of the z draws (drawn per step: resume is exact)");
  }

 private:
  double alpha() const { return distance_ ? alpha_ : 2.0; }

  double current_gamma() const {
    if (gamma_ramp_ <= 0 || ctx_.total_steps <= 0) return gamma_;
    const double ramp = gamma_ramp_ * static_cast<double>(ctx_.total_steps);
    return gamma_ * std::min(1.0, static_cast<double>(steps_ + 1) / std::max(1.0, ramp));
  }

  // T(Q(y), z) with fresh z for this step (`draw` 0: the map step, 1: the potential step), from a
  // generator seeded by the step, so a resumed run draws the same z.
  at::Tensor transport(const at::Tensor& q, int64_t draw) const {
    if (latent_ == 0) return ctx_.map->forward(q);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(2 * steps_ + draw + 1)));
    at::Tensor z = at::randn({q.size(0), latent_, q.size(2), q.size(3)}, gen, at::TensorOptions().dtype(at::kFloat));
    return ctx_.map->forward(at::cat({q, z.to(q.device(), q.scalar_type())}, 1));
  }

  // The per-measurement cost C(y, T(y, .)#S) estimated from the Z samples in `t` ([n * Z, ...]).
  at::Tensor transport_cost(const at::Tensor& y_rep, const at::Tensor& t, int64_t n, double tau, double gamma,
                            std::map<std::string, double>& stats) const {
    const int64_t zs = z_samples_;
    at::Tensor c = ctx_.cost->evaluate(y_rep, t);
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

  double schedule() const { return cosine_ ? monge::solver_util::cosine_factor(steps_, ctx_.total_steps) : 1.0; }

  void apply_learning_rates() {
    const std::pair<torch::optim::Adam*, double> optimisers[] = {{opt_map_.get(), lr_map_},
                                                                 {opt_potential_.get(), lr_potential_}};
    for (const auto& [opt, lr] : optimisers) monge::solver_util::set_learning_rate(*opt, lr * lr_scale_ * schedule());
  }

  bool distance_;
  double alpha_, gamma_, gamma_ramp_;
  int64_t latent_, z_samples_, k_t_;
  double tau_, lr_map_, lr_potential_, beta1_, beta2_, r1_, ema_;
  bool ema_warmup_, cosine_;
  uint64_t seed_;
  double lr_scale_ = 1.0;
  monge::SolverContext ctx_;
  std::unique_ptr<torch::optim::Adam> opt_map_, opt_potential_;
  int64_t steps_ = 0, potential_steps_ = 0;
  std::array<double, 3> last_potential_{0, 0, 0};  // loss, v(T(y)), v(x) of the last potential update
};

}  // namespace

#ifdef MONGE_KNOT
MONGE_PLUGIN(NeuralOt, solver, "knot", "1.0.0",
             "kernel neural OT: stochastic map with the gamma-weak distance-kernel cost (no fake solutions)",
             NeuralOt::schema())
#else
MONGE_PLUGIN(NeuralOt, solver, "not", "1.0.0",
             "neural optimal transport: strong or gamma-weak quadratic cost, stochastic map T(y, z), K_T map steps",
             NeuralOt::schema())
#endif
