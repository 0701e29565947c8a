#include "host/lua/script_options.hpp"

#include "host/apply/options.hpp"
#include "host/ot/options.hpp"
#include "host/train/options.hpp"

namespace monge::host {
namespace {

constexpr int64_t kMaxCount = int64_t{1} << 40;

// The options `monge eval` and monge.evaluate{} share: the degradation's seed, what is written
// and how the restoration runs (the network's device and threads, and reading map files, as
// monge apply declares them).
Schema evaluation_shared() {
  Schema s;
  s.integer("seed", 0, 0, int64_t{1} << 53,
            "seed of the degradation noise: the same seed gives the same degraded set, bit for bit (seed 0 is the set "
            "monge.train evaluates on); not with measurements given (--reference, `measured`)")
      .integer("grid", 8, 0, kMaxCount, "images in grid.png (rows clean, degraded, restored; 0: none)")
      .integer("batch", 256, 1, kMaxCount, "images per network call")
      .boolean("progress", true, "progress lines on stderr about every 10% (images, images/s, ETA)");
  return s;
}
const std::vector<std::string> kFromApply = {"threads", "device", "trust_code"};

OptionSet make_eval() {
  OptionSet set("eval");
  Schema data;
  data.add({"data", ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false,
            "the test set: fashion-mnist:test[:N], idx:FILE[:N], folder:DIR[:N] (clean images, degraded here), or a "
            "folder of degraded images with --reference"})
      .string("reference", "", "clean originals of a folder of degraded images, matched by file name (extension aside)")
      .string("noise", "",
              "noise model NAME:key=value,... (e.g. gaussian:sigma=0.05) or none, for clean test sets")
      .string("metrics", "psnr,ssim",
              "metric plugins with optional parameters, comma-separated, e.g. psnr,ssim,fid:classifier=fmnist.pt; "
              "set-level metrics (FID) have no per-image values")
      .add({"out", ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false,
            "output folder (created if missing): results.json, grid.png, report.html"});
  set.add(data, {{"data", cli_only("SPEC")},
                 {"reference", cli_only("DIR")},
                 {"noise", with("SPEC", "the noise the map was trained with, as its file records it and monge info shows it; "
                                        "required for maps that record none: TorchScript modules, older map files")},
                 {"metrics", cli_only("LIST")},
                 {"out", with("DIR")}});
  OptionCli no_progress;
  no_progress.negated = true;
  set.add(evaluation_shared(), {{"seed", with("S")}, {"grid", with("K")}, {"progress", no_progress}});
  set.add(apply_options(), kFromApply);
  return set;
}

OptionSet make_evaluate() {
  OptionSet set("monge.evaluate");
  set.opaque("map", "map object or map file path", "required", "the map to score")
      .opaque("clean", "tensor", "required", "clean images `N x C x H x W` in `[-1, 1]`")
      .opaque("measured", "tensor", "none",
              "the measurements, `N x C x h x w`, one per clean image (then neither `noise` nor `seed`)")
      .opaque("noise", "noise object, spec string or `\"none\"`", "none",
              "degrades `clean` after the map's operator: `monge.noise(...)` or `\"NAME:key=value,...\"`")
      .opaque("metrics", "list", "`{ \"psnr\", \"ssim\" }`",
              "metric names, `\"name:key=value,...\"`, `monge.metric(...)` objects or tables `{ name = ..., per_image = "
              "function(restored, reference) ... end }` (or `score = function` for a set-level metric, with "
              "`higher_is_better`)");
  Schema out;
  out.string("out", "", "output folder for results.json, grid.png and report.html; none: nothing is written")
      .string("data", "", "a description of the test set for results.json");
  std::vector<std::pair<std::string, OptionCli>> cli;
  cli = {{"out", lua_only()}, {"data", lua_only("\"tensors\"")}};
  set.add(out, cli);
  cli.clear();
  const Schema shared = evaluation_shared();
  for (const auto& spec : shared.specs()) cli.emplace_back(spec.name, lua_only());
  set.add(shared, cli);
  set.add(apply_options(), kFromApply, OptionSet::Use::LuaOnly);
  return set;
}

// The options `monge calibrate` and monge.calibrate{} share: the search's range, how many images
// and golden-section steps.
Schema calibration_shared() {
  Schema s;
  s.add({"range", ParamType::RealList, std::vector<double>{}, {}, {}, {}, Kind::Operator, false,
         "where to search for the parameter: LO,HI (Lua: { lo, hi }) with LO < HI; a warning says when the estimate lands on an end "
         "(widen it)"})
      .integer("images", 2000, 1, kMaxCount, "images of each set used")
      .integer("iterations", 24, 1, kMaxCount, "golden-section steps (24: the range shrinks to 1e-5 of itself)");
  return s;
}

OptionSet make_calibrate() {
  OptionSet set("calibrate");
  Schema sets;
  auto required = [](std::string name, std::string doc) {
    return ParamSpec{std::move(name), ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false, std::move(doc)};
  };
  sets.add(required("clean", "clean images: a set spec or a folder"))
      .add(required("measured", "degraded images, unpaired with the clean ones (a set spec or a folder, at the measurement's size)"))
      .add(required("operator",
                    "the forward operator with the parameters you know, e.g. gaussian_blur:size=13 or downsample"))
      .string("estimate", "",
              "the parameter to estimate; none: the operator is known, estimate the noise level only. A downsampling "
              "factor needs no search: it is the ratio of the image sizes");
  set.add(sets, {{"clean", cli_only("SET")},
                 {"measured", cli_only("SET")},
                 {"operator", cli_only("SPEC")},
                 {"estimate", cli_only("NAME", "sigma for gaussian_blur; for downsample the factor")}});
  set.add(calibration_shared(), {{"range", with("LO,HI", "0.3,6 for a blur's sigma")}});
  Schema simulate;
  simulate.string("degrade", "",
                  "degrade the --measured images first with this operator: a self-check with a known answer, e.g. "
                  "--degrade gaussian_blur:size=13,sigma=1.5")
      .string("noise", "", "with --degrade: noise added after it, e.g. gaussian:sigma=0.05")
      .integer("seed", 0, 0, int64_t{1} << 53, "with --noise: its seed")
      .string("json", "", "also write the estimate, every evaluation of the search and the inputs as JSON to this file");
  set.add(simulate, {{"degrade", cli_only("SPEC")}, {"noise", cli_only("SPEC")}, {"seed", cli_only("N")}, {"json", cli_only("FILE")}});
  set.add(apply_options(), {"threads"}, OptionSet::Use::CliOnly);  // monge.calibrate runs on monge.set_threads'
  return set;
}

OptionSet make_calibrate_lua() {
  OptionSet set("monge.calibrate");
  set.opaque("clean", "tensor", "required", "clean images `N x C x H x W`")
      .opaque("measured", "tensor", "required", "degraded images, unpaired with `clean`, at the measurement's size");
  Schema op;
  op.add({"operator", ParamType::String, std::monostate{}, {}, {}, {}, Kind::Operator, false, "the operator's plugin name"})
      .string("parameter", "", "the operator's parameter to estimate; none: the operator is known, estimate the noise level only");
  set.add(op, {{"operator", lua_only()}, {"parameter", lua_only()}});
  set.opaque("params", "table", "`{}`", "the operator's known parameters");
  const Schema shared = calibration_shared();
  std::vector<std::pair<std::string, OptionCli>> cli;
  for (const auto& spec : shared.specs()) cli.emplace_back(spec.name, lua_only());
  cli[0].second.default_text = "required with `parameter`";
  set.add(shared, cli);
  return set;
}

}  // namespace

const OptionSet& eval_options() {
  static const OptionSet set = make_eval();
  return set;
}
const OptionSet& evaluate_options() {
  static const OptionSet set = make_evaluate();
  return set;
}
const OptionSet& calibrate_options() {
  static const OptionSet set = make_calibrate();
  return set;
}
const OptionSet& calibrate_lua_options() {
  static const OptionSet set = make_calibrate_lua();
  return set;
}

std::vector<std::string> option_set_names() {
  return {"apply", "batch", "train", "eval", "monge.evaluate", "calibrate", "monge.calibrate", "monge.ot.sinkhorn",
          "monge.ot.unbalanced", "monge.ot.energy_distance", "monge.ot.sinkhorn_divergence"};
}

const OptionSet* find_option_set(const std::string& name) {
  for (const OptionSet* set : {&apply_options(), &batch_options(), &train_options(), &eval_options(), &evaluate_options(),
                               &calibrate_options(), &calibrate_lua_options(), &ot::sinkhorn_options(),
                               &ot::unbalanced_options(), &ot::energy_distance_options(), &ot::divergence_options()})
    if (set->owner() == name) return set;
  return nullptr;
}

}  // namespace monge::host
