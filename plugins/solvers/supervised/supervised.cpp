// supervised: the map trained on pairs (x, y = noise(A(x))) with the mean squared error
// || T(Q(y)) - x ||^2: the upper bound no unpaired method should beat, with the same map network,
// optimiser, moving average and schedule as uotip. The potential is not used.
#include <torch/torch.h>

#include "monge/export.hpp"
#include "monge/solver.hpp"
#include "monge/solver_util.hpp"

namespace {

namespace su = monge::solver_util;

class Supervised final : public monge::Solver {
 public:
  explicit Supervised(const monge::Params& p)
      : lr_(p.real("lr")),
        beta1_(p.real("beta1")),
        beta2_(p.real("beta2")),
        ema_(p.real("ema")),
        ema_warmup_(p.boolean("ema_warmup")),
        cosine_(p.string("lr_schedule") == "cosine") {}

  bool wants_pairs() const override { return true; }

  void setup(const monge::SolverContext& context) override {
    if (!context.map) throw monge::Error("supervised: setup needs a map");
    ctx_ = context;
    opt_ = std::make_unique<torch::optim::Adam>(ctx_.map->parameters(),
                                                torch::optim::AdamOptions(lr_).betas({beta1_, beta2_}));
    if (ctx_.map_ema) {
      su::copy_parameters(*ctx_.map, *ctx_.map_ema);
      ctx_.map_ema->eval();
    }
  }

  std::map<std::string, double> step(const at::Tensor& y, const at::Tensor& x) override {
    if (!opt_) throw monge::Error("supervised: step() called before setup()");
    if (y.size(0) != x.size(0)) throw monge::Error("supervised: y and x must be pairs of the same batch size");
    apply_learning_rate();
    const at::Tensor q = ctx_.op ? ctx_.op->lift(y) : y;
    ctx_.map->train();
    const at::Tensor loss = (ctx_.map->forward(q) - x).square().mean();
    opt_->zero_grad();
    loss.backward();
    ctx_.sync_gradients(*ctx_.map);
    opt_->step();
    std::map<std::string, double> stats{{"loss_map", loss.item<double>()}, {"lr_map", current_lr()}, {"lr_scale", lr_scale_}};
    if (ctx_.map_ema && ema_ > 0)
      stats["ema_decay"] = su::update_moving_average(*ctx_.map, *ctx_.map_ema, ema_, ema_warmup_, steps_);
    ++steps_;
    return stats;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    su::save_optimisers(archive, {{"optimizer_map", opt_.get()}});
    su::save_progress(archive, steps_, lr_scale_);
  }

  void load(torch::serialize::InputArchive& archive) override {
    su::load_optimisers(archive, {{"optimizer_map", opt_.get()}});
    su::load_progress(archive, steps_, lr_scale_);
    apply_learning_rate();
  }

  bool scale_learning_rates(double factor) override {
    if (!(factor > 0)) throw monge::Error("supervised: learning rates can only be scaled by a positive factor");
    lr_scale_ *= factor;
    apply_learning_rate();
    return true;
  }

  std::shared_ptr<monge::Module> export_map() const override {
    return ctx_.map_ema && ema_ > 0 ? ctx_.map_ema : ctx_.map;
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .real("lr", 1e-4, 0, 1, "Adam learning rate of the map (uotip's lr_map)")
        .choice("lr_schedule", "constant", {"constant", "cosine"},
                "cosine: the rate follows 0.5 (1 + cos(pi t / T)) over the run's T iterations")
        .real("beta1", 0.5, 0, 0.9999, "Adam beta1 (as uotip)")
        .real("beta2", 0.9, 0, 0.99999, "Adam beta2 (as uotip)")
        .real("ema", 0.999, 0, 1, "decay of the map's exponential moving average (needs map_ema); 0 = off")
        .boolean("ema_warmup", true, "use decay min(ema, (1 + t) / (10 + t)) at step t");
  }

 private:
  double current_lr() const { return lr_ * lr_scale_ * (cosine_ ? su::cosine_factor(steps_, ctx_.total_steps) : 1.0); }
  void apply_learning_rate() { su::set_learning_rate(*opt_, current_lr()); }

  double lr_, beta1_, beta2_, ema_;
  bool ema_warmup_, cosine_;
  double lr_scale_ = 1.0;
  monge::SolverContext ctx_;
  std::unique_ptr<torch::optim::Adam> opt_;
  int64_t steps_ = 0;
};

}  // namespace

MONGE_PLUGIN(Supervised, solver, "supervised", "1.0.0",
             "paired training of the map with the mean squared error (the upper bound for unpaired methods)",
             Supervised::schema())
