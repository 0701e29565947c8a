#include "host/train/options.hpp"

namespace monge::host {
namespace {

// An option with a lower bound only: "[1, inf]" (counts and limits have no natural maximum).
ParamSpec at_least(std::string name, ParamType type, Value def, double min, std::string doc) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(def);
  s.min = min;
  s.doc = std::move(doc);
  return s;
}

OptionSet make_train_options() {
  // Declared in four steps so that the tensors (opaque: a Schema cannot hold them) sit among the
  // plugin objects in the docs, as a pipeline writes them.
  OptionSet set("train");
  Schema task;
  task.object("operator", Kind::Operator,
              "forward operator `A`; its lift `Q` turns `y` into the map's input; recorded in the map file")
      .object("noise", Kind::Noise, "noise model applied after `A` when degrading `measured` on the fly", true);
  set.add(task, {{"operator", lua_only()}, {"noise", lua_only("none")}});
  set.opaque("clean", "tensor", "required", "clean signals `X`, `N x C x H x W` in `[-1, 1]`")
      .opaque("measured", "tensor", "required",
              "signals whose degraded versions are `Y`; disjoint from `clean` for unpaired training")
      .opaque("eval", "tensor", "none",
              "held-out clean signals; degraded once with seed 0 and frozen; PSNR of `Q(y)` and of `T(Q(y))`");
  Schema nets;
  nets.object("map", Kind::Network, "the map `T`: a network plugin (`unet`, ...); recorded in the map file")
      .object("potential", Kind::Network, "the potential: a network plugin (`potential`, ...)")
      .object("solver", Kind::Solver, "solver plugin (`uotip`, ...)")
      .object("cost", Kind::Cost,
              "cost plugin (`quadratic`, `likelihood`, weighted sums of them) or a Lua function (`monge.cost(fn)`), one "
              "value per sample");
  Schema run;
  run.add(at_least("iters", ParamType::Int, int64_t{1000}, 1, "iterations"))
      .add(at_least("batch", ParamType::Int, int64_t{64}, 1,
                    "batch size per process: a data-parallel job of N processes has the global batch N x `batch`"))
      .add(at_least("seed", ParamType::Int, int64_t{0}, 0,
                    "seeds the networks' initialisation, the batch indices and the noise (each sample's noise has its "
                    "own generator, seeded by the step and its place in the batch)"))
      .add(at_least("eval_every", ParamType::Int, int64_t{0}, 0, "evaluate every n iterations (0: only at the end; always at the end)"))
      .add(at_least("checkpoint_every", ParamType::Int, int64_t{0}, 0,
                    "write `checkpoint.pt` every n iterations (0: only at the end; always at the end)"))
      .add(at_least("log_every", ParamType::Int, int64_t{10}, 0,
                    "append solver statistics to `log.jsonl` every n iterations (one JSON object a line, numbers to 8 "
                    "significant digits, `null` for NaN or infinity; 0: no log)"))
      .add({"out", ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false,
            "run directory: `log.jsonl`, `checkpoint.pt`, `map.pt`"})
      .choice("device", "auto", {"auto", "cpu", "cuda"}, "where training runs: `auto` (CUDA when available), `cpu`, `cuda`")
      .boolean("resume", false, "continue from `out/checkpoint.pt` up to `iters`; exact: N then N more equals 2N")
      .boolean("progress", true, "progress on stderr: a redrawn line on a terminal, a line every 5% otherwise")
      .choice("precision", "fp32", {"fp32", "bf16"},
              "`bf16`: each solver step runs under autocast to bfloat16 on the training device (meant for GPUs; it also "
              "runs on CPUs with AVX-512, where oneDNN has bf16 convolutions; elsewhere, or under "
              "`DNNL_MAX_CPU_ISA=AVX2`, training refuses it before any work with a message saying so, and "
              "`monge.cpu_bf16()` tells a script in advance)")
      .add(at_least("max_rollbacks", ParamType::Int, int64_t{3}, 0,
                    "how often a divergence may be rolled back before training stops"))
      .real("rollback_lr_factor", 0.5, 0, 1,
            "each rollback multiplies the learning rates by this, strictly between 0 and 1 (again for each further "
            "rollback to the same checkpoint)")
      .add(at_least("max_loss", ParamType::Real, 0.0, 0,
                    "> 0: a loss statistic (`loss_map`, `loss_potential`, ...) larger than this in magnitude counts as a "
                    "divergence and is rolled back like a NaN; adversarial solvers (knot, gan_reg) can explode without "
                    "overflowing; 0: only NaN and infinity count"))
      .add(at_least("dist_timeout", ParamType::Real, 300.0, 0,
                    "data-parallel jobs: seconds (above 0) the rendezvous or any exchange may wait for the other "
                    "processes before the run fails (a dead process is noticed at once; this bounds a hung one)"))
      .string("dump_first_step", "",
              "a directory that receives the first iteration's inputs and results: the initial parameters of the map "
              "(`map/<name>`) and the potential (`potential/<name>`) and the first batch (`batch/y`, `batch/x`), as "
              "they were before the step, in `tensors.bin` (raw little-endian float32, C order, one after the other), "
              "and `index.json`, which names them (`{\"format\": ..., \"tensors\": [{\"name\", \"shape\", \"offset\"}], "
              "\"stats\": {...}}` on one line, offsets in floats) with the step's statistics (to the last digit of a "
              "double) (`loss_map`, `loss_potential`, `r1`, ...). Readable without LibTorch; `monge bench train-step` "
              "checks its PyTorch reference with it. Ignored when resuming");
  std::vector<std::pair<std::string, OptionCli>> cli;
  for (const auto& spec : nets.specs()) cli.emplace_back(spec.name, lua_only());
  set.add(nets, cli);
  cli.clear();
  for (const auto& spec : run.specs()) cli.emplace_back(spec.name, lua_only());
  set.add(run, cli);
  return set;
}

}  // namespace

const OptionSet& train_options() {
  static const OptionSet set = make_train_options();
  return set;
}

void set_train_options(const Params& p, TrainConfig& c) {
  c.iters = p.integer("iters");
  c.batch = p.integer("batch");
  c.seed = static_cast<uint64_t>(p.integer("seed"));
  c.eval_every = p.integer("eval_every");
  c.checkpoint_every = p.integer("checkpoint_every");
  c.log_every = p.integer("log_every");
  c.out = p.string("out");
  c.device = p.string("device");
  c.resume = p.boolean("resume");
  c.progress = p.boolean("progress");
  c.precision = p.string("precision");
  c.max_rollbacks = p.integer("max_rollbacks");
  c.rollback_lr_factor = p.real("rollback_lr_factor");
  c.max_loss = p.real("max_loss");
  c.dist_timeout = p.real("dist_timeout");
  c.dump_first_step = p.string("dump_first_step");
}

}  // namespace monge::host
