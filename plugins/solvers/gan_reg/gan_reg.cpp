// gan_reg: the regularised GAN baseline that Gazdieva et al. analyse ("An Optimal Transport
// Perspective on Unpaired Image Super-Resolution"): a map T trained with an adversarial loss
// (a WGAN-GP critic D) plus a fidelity term of weight lambda,
//   L_T = lambda fidelity(T(q), R(y)) - mean_y D(T(q))                     q = Q(y), the lift
//   L_D = mean_y D(T(q)) - mean_x D(x) + gp mean (||grad D(x_hat)|| - 1)^2  x_hat between x and T(q)
// Such a map is an OT map for the fidelity cost between the source and its own pushforward, but
// that pushforward is biased: T#source != target. Their remedy is to take the fidelity against a
// reference R that starts as the plain upsampler (here the lift, R_0(y) = q) and is replaced every
// `reference_every` steps by a frozen copy of the map (R_k(y) = T_k(q)), so the bias shrinks with
// every round.
//
// Each step() makes one critic update on the step's batches, and every `critic_steps`-th step
// also one map update on the same measurements (so critic_steps critic updates on fresh batches
// precede each map update, as in WGAN-GP). The reference copy is a further module of the map's
// architecture built through SolverContext::build_map (SDK 6.1); it is saved with the solver.
#include <torch/torch.h>

#include <array>
#include <cmath>

#include "monge/export.hpp"
#include "monge/solver.hpp"
#include "monge/solver_util.hpp"

namespace {

enum class Fidelity { Rmse, Mse, Cost };

Fidelity parse_fidelity(const std::string& s) {
  if (s == "mse") return Fidelity::Mse;
  if (s == "cost") return Fidelity::Cost;
  return Fidelity::Rmse;
}

// Copies parameters and buffers (normalisation statistics) of `from` into `to`.
void copy_state(monge::Module& from, monge::Module& to) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters(), dst = to.named_parameters();
  auto src_b = from.named_buffers(), dst_b = to.named_buffers();
  if (src.size() != dst.size() || src_b.size() != dst_b.size())
    throw monge::Error("gan_reg: the reference copy does not have the map's architecture");
  for (const auto& p : src) dst[p.key()].copy_(p.value());
  for (const auto& b : src_b) dst_b[b.key()].copy_(b.value());
}

class GanReg final : public monge::Solver {
 public:
  explicit GanReg(const monge::Params& p)
      : fidelity_(parse_fidelity(p.string("fidelity"))),
        lambda_(p.real("lambda")),
        reference_every_(p.integer("reference_every")),
        gp_(p.real("gp")),
        critic_steps_(p.integer("critic_steps")),
        train_("gan_reg", p),
        seed_(static_cast<uint64_t>(p.integer("seed"))) {
    if (fidelity_ == Fidelity::Cost && reference_every_ > 0)
      throw monge::ParamError(
          "gan_reg: reference_every > 0 needs fidelity = \"rmse\" or \"mse\": the \"cost\" fidelity is the transport "
          "cost c(y, T(q)), which measures against the measurement itself, never against a reference map");
  }

  void setup(const monge::SolverContext& context) override {
    if (!context.map || !context.potential)
      throw monge::Error("gan_reg: setup needs a map and a potential (the critic)");
    if (fidelity_ == Fidelity::Cost && !context.cost)
      throw monge::Error("gan_reg: fidelity = \"cost\" needs a cost");
    train_.setup(context);
    if (reference_every_ > 0) {
      if (!ctx().build_map)
        throw monge::Error("gan_reg: reference_every > 0 needs a third copy of the map, and this context cannot build "
                           "one (SolverContext::build_map is empty; monge.train sets it)");
      // Building initialises parameters from LibTorch's default generator: restore its state so
      // that the rest of the run draws what it would without the reference.
      at::Generator global = at::detail::getDefaultCPUGenerator();
      const at::Tensor state = global.get_state();
      reference_ = ctx().build_map();
      global.set_state(state);
      if (!reference_) throw monge::Error("gan_reg: SolverContext::build_map returned no module");
      copy_state(*ctx().map, *reference_);
      reference_->eval();
      for (auto& p : reference_->parameters()) p.set_requires_grad(false);
    }
  }

  std::map<std::string, double> step(const at::Tensor& y, const at::Tensor& x) override {
    std::map<std::string, double> stats;
    train_.begin_step(stats);
    const at::Tensor q = ctx().op ? ctx().op->lift(y) : y;
    ctx().map->train();

    // 1. Critic (WGAN-GP) on the clean batch against T(q) from the current map.
    at::Tensor fake;
    {
      torch::NoGradGuard no_grad;
      fake = ctx().map->forward(q);
    }
    at::Tensor d_fake = ctx().potential->forward(fake);
    at::Tensor d_real = ctx().potential->forward(x);
    at::Tensor loss_critic = d_fake.mean() - d_real.mean();
    at::Tensor total = loss_critic;
    double penalty_value = 0;
    if (gp_ > 0) {
      const int64_t n = std::min(x.size(0), fake.size(0));
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
          seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(train_.steps() + 1)));
      std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
      shape[0] = n;
      at::Tensor eps = at::rand(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(x.device(), x.scalar_type());
      at::Tensor x_hat = (eps * x.narrow(0, 0, n).detach() + (1 - eps) * fake.narrow(0, 0, n)).requires_grad_(true);
      at::Tensor d_hat = ctx().potential->forward(x_hat);
      at::Tensor grad = torch::autograd::grad({d_hat.sum()}, {x_hat}, {}, /*retain_graph=*/true,
                                              /*create_graph=*/true)[0];
      at::Tensor norm = (grad.reshape({n, -1}).square().sum(1) + 1e-12).sqrt();
      at::Tensor penalty = gp_ * (norm - 1).square().mean();
      total = total + penalty;
      penalty_value = penalty.item<double>();
    }
    train_.potential_optimiser().zero_grad();
    total.backward();
    ctx().sync_gradients(*ctx().potential);
    train_.potential_optimiser().step();
    stats["loss_critic"] = loss_critic.item<double>();
    stats["gp"] = penalty_value;
    stats["w_estimate"] = -loss_critic.item<double>();  // mean D(real) - mean D(fake)

    // 2. Every critic_steps-th step: the map, against the updated critic.
    if ((train_.steps() + 1) % critic_steps_ == 0) {
      at::Tensor ty = ctx().map->forward(q);
      at::Tensor fid = fidelity(y, q, ty);
      at::Tensor loss_map = lambda_ * fid - ctx().potential->forward(ty).mean();
      train_.map_optimiser().zero_grad();
      loss_map.backward();
      ctx().sync_gradients(*ctx().map);
      train_.map_optimiser().step();
      last_map_ = {loss_map.item<double>(), fid.item<double>()};
      ++map_steps_;
    }
    stats["loss_map"] = last_map_[0];
    stats["fidelity"] = last_map_[1];
    stats["map_steps"] = static_cast<double>(map_steps_);

    // 3. Moving average of the map; every reference_every steps, a new frozen reference.
    train_.end_step(stats);
    if (reference_ && train_.steps() % reference_every_ == 0) {
      copy_state(*ctx().map, *reference_);
      ++reference_round_;
    }
    stats["reference_round"] = static_cast<double>(reference_round_);
    return stats;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    train_.save(archive);
    archive.write("map_steps", c10::IValue(map_steps_));
    archive.write("reference_round", c10::IValue(reference_round_));
    archive.write("last_map", c10::IValue(std::vector<double>(last_map_.begin(), last_map_.end())));
    if (reference_) {
      torch::serialize::OutputArchive r;
      reference_->save(r);
      archive.write("reference", r);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    train_.load(archive);
    c10::IValue v;
    archive.read("map_steps", v);
    map_steps_ = v.toInt();
    archive.read("reference_round", v);
    reference_round_ = v.toInt();
    archive.read("last_map", v);
    const auto last = v.toDoubleVector();
    if (last.size() != last_map_.size()) throw monge::Error("gan_reg: bad checkpoint record");
    std::copy(last.begin(), last.end(), last_map_.begin());
    if (reference_) {
      torch::serialize::InputArchive r;
      if (!archive.try_read("reference", r))
        throw monge::Error("gan_reg: the checkpoint holds no reference map (it was written with reference_every = 0)");
      reference_->load(r);
      reference_->eval();
    }
  }

  bool scale_learning_rates(double factor) override { return train_.scale_learning_rates(factor); }
  std::shared_ptr<monge::Module> export_map() const override { return train_.export_map(); }

  static monge::Schema schema() {
    monge::Schema schema;
    schema.real("lambda", 1, 0, 1e6, "weight of the fidelity term against the adversarial loss (0: a plain WGAN-GP map)")
        .choice("fidelity", "rmse", {"rmse", "mse", "cost"},
                "rmse: per-sample root mean square difference to the reference R(y) (OTUR); mse: its square; cost: "
                "the run's transport cost c(y, T(q)) (biased OT with the cost of the other solvers; no reference)")
        .integer("reference_every", 0, 0, int64_t(1) << 40,
                 "every this many steps the reference R becomes a frozen copy of the map (rmse, mse); 0: R is the "
                 "lift Q(y) throughout (the plain, biased GAN-reg)")
        .real("gp", 10, 0, 1e4, "WGAN-GP gradient penalty weight: gp E(||grad D(x_hat)|| - 1)^2; 0 = off")
        .integer("critic_steps", 5, 1, 1000, "critic updates (one per step, fresh batches) per map update (WGAN-GP: 5)");
    // lr_map, lr_potential (the critic's), Adam betas 0.5 / 0.9 as WGAN-GP, moving average off.
    monge::solver_util::MapPotentialTraining::add_params(schema, {1e-4, 1e-4, 0.5, 0.9, 0});
    schema.integer("seed", 0, 0, int64_t(1) << 52, "seed of the gradient penalty's interpolation draws (per step: resume is exact)");
    return schema;
  }

 private:
  const monge::SolverContext& ctx() const { return train_.context(); }
  // Per-sample fidelity, averaged over the batch.
  at::Tensor fidelity(const at::Tensor& y, const at::Tensor& q, const at::Tensor& ty) const {
    if (fidelity_ == Fidelity::Cost) return ctx().cost->evaluate(y, ty).mean();
    at::Tensor r;
    if (reference_ && reference_round_ > 0) {
      torch::NoGradGuard no_grad;
      r = reference_->forward(q);
    } else {
      r = q;
    }
    at::Tensor mse = (ty - r.detach()).square().reshape({ty.size(0), -1}).mean(1);
    // RMSE: the small constant keeps the gradient finite (zero) where T(q) equals R(y).
    return fidelity_ == Fidelity::Mse ? mse.mean() : (mse + 1e-12).sqrt().mean();
  }

  Fidelity fidelity_;
  double lambda_;
  int64_t reference_every_;
  double gp_;
  int64_t critic_steps_;
  monge::solver_util::MapPotentialTraining train_;
  uint64_t seed_;
  std::shared_ptr<monge::Module> reference_;  // the frozen reference map (reference_every > 0)
  int64_t map_steps_ = 0, reference_round_ = 0;
  std::array<double, 2> last_map_{0, 0};  // loss and fidelity of the last map update
};

}  // namespace

MONGE_PLUGIN(GanReg, solver, "gan_reg", "1.0.0",
             "regularised GAN map (WGAN-GP critic + lambda fidelity), optionally against a reference map renewed "
             "every reference_every steps to remove the GAN-reg bias",
             GanReg::schema())
