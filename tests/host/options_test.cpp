// Option sets (host/core/options.hpp) and the apply/batch declarations (host/apply/options.hpp):
// the command-line parser and its errors, Lua-side validation, --help, and docs/cli.md's option
// tables, which must be what the declarations generate.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <fstream>
#include <map>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>

#include "host/apply/options.hpp"
#include "host/core/options.hpp"
#include "host/lua/script_options.hpp"
#include "host/ot/options.hpp"
#include "host/train/options.hpp"

using namespace monge;
using namespace monge::host;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ParamError& e) {
    return e.what();
  }
  return "(no error)";
}

Params cli(const OptionSet& set, const std::vector<std::string>& args, std::vector<std::string>* positional = nullptr) {
  auto parsed = set.parse(args);
  if (positional) *positional = parsed.positional;
  return set.resolve_cli(parsed.given);
}

TEST(Options, TheCommandLineGivesTypedValuesWithItsDefaults) {
  std::vector<std::string> positional;
  const Params p = cli(apply_options(),
                       {"map.pt", "--tile", "512", "in.tif", "--strength=0.25", "--color", "luminance", "--no-progress", "out.tif",
                        "--precision", "fp32", "--trust-code"},
                       &positional);
  EXPECT_EQ(positional, (std::vector<std::string>{"map.pt", "in.tif", "out.tif"}));
  EXPECT_EQ(p.integer("tile"), 512);
  EXPECT_DOUBLE_EQ(p.real("strength"), 0.25);
  EXPECT_EQ(p.string("colour"), "luminance");  // --color is an alias of --colour
  EXPECT_FALSE(p.boolean("progress"));
  EXPECT_TRUE(p.boolean("trust_code"));
  EXPECT_EQ(p.string("precision"), "fp32");
  EXPECT_EQ(p.integer("halo"), -1);  // the sentinel: the receptive radius
  EXPECT_EQ(p.integer("max_pixels"), int64_t{1} << 30);

  const Params d = cli(apply_options(), {});
  EXPECT_TRUE(d.boolean("progress"));  // the command line's default; Lua's is false
  EXPECT_FALSE(apply_options().resolve({}, "monge.apply").boolean("progress"));
  EXPECT_EQ(d.string("precision"), "auto");
}

TEST(Options, CommandLineErrorsNameTheFlag) {
  const auto& set = apply_options();
  EXPECT_EQ(error_of([&] { cli(set, {"--tiles", "5"}); }),
            "apply: unknown option '--tiles' (did you mean '--tile'?); see monge apply --help");
  EXPECT_EQ(error_of([&] { cli(set, {"--tile"}); }), "apply: --tile needs a value: an integer in [1, 1048576]");
  EXPECT_EQ(error_of([&] { cli(set, {"--tile", "big"}); }), "apply: --tile expects an integer in [1, 1048576], got 'big'");
  EXPECT_EQ(error_of([&] { cli(set, {"--tile", "0"}); }), "apply: --tile expects an integer in [1, 1048576], got 0");
  EXPECT_EQ(error_of([&] { cli(set, {"--strength", "2"}); }), "apply: --strength expects a number in [0, 1], got 2");
  EXPECT_EQ(error_of([&] { cli(set, {"--precision", "fp16"}); }),
            "apply: --precision expects one of auto|fp32|bf16, got \"fp16\" (did you mean 'fp32'?)");
  EXPECT_EQ(error_of([&] { cli(set, {"--device", "gpu"}); }).rfind("apply: --device expects one of auto|cpu|cuda", 0), 0u);
  EXPECT_EQ(error_of([&] { cli(set, {"--no-progress=1"}); }), "apply: --no-progress takes no value");
  EXPECT_EQ(error_of([&] { cli(batch_options(), {"map.pt", "in/"}); }).rfind("batch: --out is required", 0), 0u);
}

TEST(Options, RepeatableOptionsCollectAndBatchTakesEveryApplyOption) {
  const Params p = cli(batch_options(), {"--out", "o", "--include", "*.png", "--include", "*.tif", "--halo", "8"});
  EXPECT_EQ(p.strings("include"), (std::vector<std::string>{"*.png", "*.tif"}));
  EXPECT_TRUE(p.strings("exclude").empty());
  EXPECT_EQ(p.integer("halo"), 8);
  for (const auto& spec : apply_options().schema().specs()) EXPECT_NE(batch_options().schema().find(spec.name), nullptr) << spec.name;
}

TEST(Options, LuaKeysAreValidatedAgainstTheSameDeclaration) {
  const auto& set = apply_options();
  ParamMap given{{"tile", int64_t{256}}, {"nan", std::string("replace")}};
  const Params p = set.resolve(given, "monge.apply");
  EXPECT_EQ(p.integer("tile"), 256);
  EXPECT_EQ(p.string("nan"), "replace");
  EXPECT_EQ(error_of([&] { set.resolve({{"tile", 2.5}}, "monge.apply"); }),
            "monge.apply: parameter 'tile' expects an integer, got number 2.5");
  EXPECT_EQ(error_of([&] { set.resolve({{"reduce", std::string("median")}}, "monge.apply"); }),
            "monge.apply: parameter 'reduce' expects one of mean|std|all, got \"median\" (did you mean 'mean'?)");
  const Params b = batch_options().resolve({{"out", std::string("o")}, {"include", std::string("*.png")}}, "monge.batch");
  EXPECT_EQ(b.strings("include"), (std::vector<std::string>{"*.png"}));  // one string is a list of one
}

TEST(Options, StreamAndBatchOptionsFollowTheParameters) {
  const Params p = cli(batch_options(), {"--out", "o", "--tile", "256", "--depth", "16", "--nan", "replace", "--device", "cpu",
                                         "--precision", "fp32", "--max-pixels", "0", "--shard", "1/3", "--retry-failed"});
  const BatchOptions b = batch_options(p, "batch");
  EXPECT_EQ(b.apply.tiles.tile, 256);
  EXPECT_EQ(b.apply.depth, "16");
  EXPECT_EQ(b.apply.nonfinite, image::NonFinite::Replace);
  EXPECT_EQ(b.apply.max_pixels, 0);
  EXPECT_EQ(b.apply.tiles.precision, Precision::FP32);
  EXPECT_EQ(b.shard.index, 1);
  EXPECT_EQ(b.shard.count, 3);
  EXPECT_TRUE(b.retry_failed);
  EXPECT_EQ(b.out, "o");
  const Params all = cli(batch_options(), {"--out", "o", "--reduce", "all", "--device", "cpu"});
  // The error names the option as the caller spells it: a Lua key by default, the flag for the CLI.
  EXPECT_NE(error_of([&] { batch_options(all, "monge.batch"); }).find("monge.batch: reduce = \"all\" writes"), std::string::npos);
  EXPECT_NE(error_of([&] { batch_options(all, "batch", OptionSpelling{true}); }).find("batch: --reduce all writes"),
            std::string::npos);
}

TEST(Options, SpellingNamesOptionsAsTheCallerTypesThem) {
  const OptionSpelling lua, cli{true};
  EXPECT_EQ(lua.name("max_pixels"), "max_pixels");
  EXPECT_EQ(cli.name("max_pixels"), "--max-pixels");
  EXPECT_EQ(lua.setting("max_pixels", "100"), "max_pixels = 100");
  EXPECT_EQ(cli.setting("max_pixels", "100"), "--max-pixels 100");
  EXPECT_EQ(lua.setting("nan", "replace", true), "nan = \"replace\"");
  EXPECT_EQ(cli.setting("nan", "replace", true), "--nan replace");
}

TEST(Options, HelpListsEveryFlagAndEveryChoiceIsDocumented) {
  for (const OptionSet* set : {&apply_options(), &batch_options(), &eval_options(), &calibrate_options()}) {
    const std::string help = set->help();
    for (const auto& spec : set->schema().specs()) {
      EXPECT_NE(help.find("  " + set->flag(spec)), std::string::npos) << set->flag(spec);
      EXPECT_FALSE(spec.doc.empty()) << spec.name;
      for (const auto& choice : spec.choices) EXPECT_NE(spec.doc.find(choice), std::string::npos) << spec.name << ": " << choice;
    }
    std::istringstream lines(help);
    for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 100u) << line;
  }
}

// A docs file holds each set's table between "<!-- options: NAME -->" and "<!-- end options -->".
void expect_doc_table(const std::string& file, const OptionSet& set, const std::string& declared_in) {
  std::ifstream f(std::string(MONGE_SOURCE_DIR) + "/" + file);
  ASSERT_TRUE(f) << file << " not found";
  std::stringstream text;
  text << f.rdbuf();
  const std::string doc = text.str();
  const std::string open = "<!-- options: " + set.owner() + " -->\n", close = "<!-- end options -->";
  const size_t a = doc.find(open);
  ASSERT_NE(a, std::string::npos) << file << " has no '" << open << "' block";
  const size_t b = doc.find(close, a);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(doc.substr(a + open.size(), b - a - open.size()), set.markdown())
      << file << "'s " << set.owner() << " options differ from the declaration in " << declared_in
      << "; replace the block with the output of `monge help --markdown " << set.owner() << "`";
}

TEST(Options, DocsCliMdTablesAreTheDeclarations) {
  expect_doc_table("docs/cli.md", apply_options(), "host/apply/options.cpp");
  expect_doc_table("docs/cli.md", batch_options(), "host/apply/options.cpp");
}

TEST(Options, DocsCliMdEvalAndCalibrateTablesAreTheDeclarations) {
  expect_doc_table("docs/cli.md", eval_options(), "host/lua/script_options.cpp");
  expect_doc_table("docs/cli.md", calibrate_options(), "host/lua/script_options.cpp");
}

TEST(Options, DocsLuaMdTablesAreTheDeclarations) {
  expect_doc_table("docs/lua.md", evaluate_options(), "host/lua/script_options.cpp");
  expect_doc_table("docs/lua.md", calibrate_lua_options(), "host/lua/script_options.cpp");
  for (const OptionSet* set : {&ot::sinkhorn_options(), &ot::unbalanced_options(), &ot::energy_distance_options(),
                               &ot::divergence_options()})
    expect_doc_table("docs/lua.md", *set, "host/ot/options.cpp");
}

TEST(Options, DocsTrainingMdTableIsTheDeclaration) {
  expect_doc_table("docs/training.md", train_options(), "host/train/options.cpp");
}

// `monge eval` and `monge calibrate` (their command lines parsed in Lua by monge.options.parse):
// a misspelt flag gets the nearest one, a value of the wrong type is refused naming the flag, and
// the options they share with monge.evaluate{} / monge.calibrate{} are one declaration.
TEST(ScriptOptions, EvalCommandLine) {
  std::vector<std::string> positional;
  const Params p = cli(eval_options(), {"map.pt", "--data", "fashion-mnist:test:40", "--out", "o", "--grid", "0", "--no-progress",
                                        "--trust-code", "--seed=3"},
                       &positional);
  EXPECT_EQ(positional, (std::vector<std::string>{"map.pt"}));
  EXPECT_EQ(p.string("data"), "fashion-mnist:test:40");
  EXPECT_EQ(p.integer("grid"), 0);
  EXPECT_EQ(p.integer("seed"), 3);
  EXPECT_EQ(p.integer("batch"), 256);
  EXPECT_EQ(p.string("metrics"), "psnr,ssim");
  EXPECT_EQ(p.string("device"), "auto");
  EXPECT_FALSE(p.boolean("progress"));
  EXPECT_TRUE(p.boolean("trust_code"));
  EXPECT_TRUE(cli(eval_options(), {"--data", "d", "--out", "o"}).boolean("progress"));

  const auto& set = eval_options();
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d", "--out", "o", "--metric", "psnr"}); }),
            "eval: unknown option '--metric' (did you mean '--metrics'?); see monge eval --help");
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d", "--out", "o", "--nosie", "none"}); }),
            "eval: unknown option '--nosie' (did you mean '--noise'?); see monge eval --help");
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d", "--out", "o", "--grid", "many"}); }),
            "eval: --grid expects an integer in [0, 1099511627776], got 'many'");
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d", "--out", "o", "--batch", "0"}); }),
            "eval: --batch expects an integer in [1, 1099511627776], got 0");
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d", "--out", "o", "--device", "gpu"}); }).rfind("eval: --device expects one of auto|cpu|cuda", 0),
            0u);
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--out", "o"}); }).rfind("eval: --data is required", 0), 0u);
  EXPECT_EQ(error_of([&] { cli(set, {"m", "--data", "d"}); }).rfind("eval: --out is required", 0), 0u);
}

TEST(ScriptOptions, CalibrateCommandLine) {
  const auto& set = calibrate_options();
  const Params p = cli(set, {"--clean", "a", "--measured", "b", "--operator", "gaussian_blur:size=13", "--range", "0.5,4"});
  EXPECT_EQ(p.reals("range"), (std::vector<double>{0.5, 4}));
  EXPECT_EQ(p.integer("images"), 2000);
  EXPECT_EQ(p.integer("iterations"), 24);
  EXPECT_EQ(p.integer("seed"), 0);
  EXPECT_EQ(error_of([&] { cli(set, {"--clean", "a", "--measured", "b", "--operator", "o", "--estimat", "sigma"}); }),
            "calibrate: unknown option '--estimat' (did you mean '--estimate'?); see monge calibrate --help");
  EXPECT_EQ(error_of([&] { cli(set, {"--clean", "a", "--measured", "b", "--operator", "o", "--range", "a,b"}); }),
            "calibrate: --range expects a list of numbers, got 'a,b'");
  EXPECT_EQ(error_of([&] { cli(set, {"--clean", "a", "--measured", "b", "--operator", "o", "--images", "1.5"}); }),
            "calibrate: --images expects an integer in [1, 1099511627776], got '1.5'");
  EXPECT_EQ(error_of([&] { cli(set, {"--measured", "b", "--operator", "o"}); }).rfind("calibrate: --clean is required", 0), 0u);
}

// An option with a Lua key in the command line's table is an option of monge.evaluate
// (monge.calibrate) under that key, of the same type; the options they share are one declaration:
// the same type, default, range and doc.
TEST(ScriptOptions, SharedOptionsAreOneDeclaration) {
  for (const auto& [cli_set, lua_set] : {std::pair{&eval_options(), &evaluate_options()},
                                         std::pair{&calibrate_options(), &calibrate_lua_options()}}) {
    const auto keys = lua_set->lua_keys();
    for (const auto& spec : cli_set->schema().specs()) {
      if (cli_set->cli(spec.name).cli_only) continue;
      EXPECT_NE(std::find(keys.begin(), keys.end(), spec.name), keys.end()) << cli_set->owner() << ": " << spec.name;
      if (const ParamSpec* twin = lua_set->schema().find(spec.name)) EXPECT_EQ(twin->type, spec.type) << spec.name;
    }
  }
  for (const auto& [cli_set, lua_set, shared] :
       {std::tuple{&eval_options(), &evaluate_options(),
                   std::vector<std::string>{"seed", "grid", "batch", "progress", "threads", "device", "trust_code"}},
        std::tuple{&calibrate_options(), &calibrate_lua_options(), std::vector<std::string>{"range", "images", "iterations"}}})
    for (const auto& name : shared) {
      const ParamSpec *spec = cli_set->schema().find(name), *twin = lua_set->schema().find(name);
      ASSERT_TRUE(spec && twin) << name;
      EXPECT_EQ(twin->type, spec->type) << name;
      EXPECT_EQ(twin->doc, spec->doc) << name;
      EXPECT_EQ(monge::detail::value_text(twin->default_value), monge::detail::value_text(spec->default_value)) << name;
      EXPECT_EQ(range_text(*twin), range_text(*spec)) << name;
    }
  // eval's --threads, --device and --trust-code are apply's.
  for (const char* name : {"threads", "device", "trust_code"})
    EXPECT_EQ(eval_options().schema().find(name)->doc, apply_options().schema().find(name)->doc) << name;
  // eval's --noise, a spec string, is one of the values monge.evaluate's `noise` takes (opaque there).
  const auto keys = evaluate_options().lua_keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "noise"), keys.end());
  EXPECT_EQ(evaluate_options().resolve({}, "monge.evaluate").integer("batch"), 256);
  EXPECT_EQ(error_of([] { evaluate_options().resolve({{"grid", -1.0}}, "monge.evaluate"); }),
            "monge.evaluate: parameter 'grid' expects an integer in [0, 1099511627776], got -1");
  for (const auto& name : option_set_names()) EXPECT_EQ(find_option_set(name)->owner(), name);
  EXPECT_EQ(find_option_set("nope"), nullptr);
}

// monge.ot.*'s option tables: the defaults are the C++ option structs', rho_a and rho_b follow rho
// unless given, and a misspelt key gets the nearest one.
TEST(OtOptions, DefaultsAndRho) {
  const ot::SinkhornOptions s = ot::sinkhorn_settings(ot::sinkhorn_options().resolve({}, "monge.ot.sinkhorn"));
  EXPECT_EQ(s.eps, ot::SinkhornOptions{}.eps);
  EXPECT_EQ(s.max_iter, ot::SinkhornOptions{}.max_iter);
  EXPECT_EQ(s.tol, ot::SinkhornOptions{}.tol);
  const ot::DivergenceOptions d = ot::divergence_settings(ot::divergence_options().resolve({}, "x"));
  EXPECT_EQ(d.eps, ot::DivergenceOptions{}.eps);
  EXPECT_EQ(d.power, ot::DivergenceOptions{}.power);
  EXPECT_EQ(d.max_iter, ot::DivergenceOptions{}.max_iter);
  const auto& u = ot::unbalanced_options();
  ot::UnbalancedOptions o = ot::unbalanced_settings(u.resolve({{"rho", 3.0}}, "x"));
  EXPECT_EQ(o.rho_a, 3.0);
  EXPECT_EQ(o.rho_b, 3.0);
  o = ot::unbalanced_settings(u.resolve({{"rho", 3.0}, {"rho_a", std::numeric_limits<double>::infinity()}}, "x"));
  EXPECT_TRUE(std::isinf(o.rho_a));
  EXPECT_EQ(o.rho_b, 3.0);
  o = ot::unbalanced_settings(u.resolve({}, "x"));
  EXPECT_EQ(o.rho_a, ot::UnbalancedOptions{}.rho_a);
  EXPECT_EQ(o.max_iter, ot::UnbalancedOptions{}.max_iter);
  EXPECT_EQ(error_of([&] { u.resolve({{"rho_a", -2.0}}, "monge.ot.unbalanced"); }),
            "monge.ot.unbalanced: parameter 'rho_a' expects a number in [0, inf], got -2");
  EXPECT_EQ(ot::energy_distance_options().lua_keys(), (std::vector<std::string>{"a", "b"}));
}

// A set without flags (monge.train's) has no option column; its opaque keys (tensors) are Lua keys
// and rows of the table, in their place, but not options of the schema.
TEST(Options, LuaOnlySetAndOpaqueKeys) {
  Schema s;
  s.integer("iters", 10, 1, 100, "iterations").boolean("resume", false, "continue");
  OptionCli lua;
  lua.lua_only = true;
  OptionSet set("toy");
  set.add(s, {{"iters", lua}}).opaque("clean", "tensor", "required", "clean signals");
  Schema more;
  more.string("out", "", "run directory");
  set.add(more, {{"out", lua}});
  EXPECT_EQ(set.lua_keys(), (std::vector<std::string>{"iters", "resume", "out", "clean"}));
  EXPECT_FALSE(set.schema().find("clean"));
  // "resume" has a flag here, so the option column stays; with every option Lua-only it goes.
  EXPECT_NE(set.markdown().find("| option | Lua key |"), std::string::npos);
  OptionSet lua_set("toy");
  lua_set.add(s, {{"iters", lua}, {"resume", lua}}).opaque("clean", "tensor", "required", "clean signals");
  EXPECT_EQ(lua_set.markdown(),
            "| Lua key | values | default | meaning |\n|---|---|---|---|\n"
            "| `iters` | integer in [1, 100] | 10 | iterations |\n"
            "| `resume` | boolean | false | continue |\n"
            "| `clean` | tensor | required | clean signals |\n");
  EXPECT_THROW(OptionSet("x").add(s).opaque("iters", "tensor", "", "twice"), Error);
}

// TrainConfig keeps its defaults for C++ callers; they must be the declared ones: set from the
// declaration's defaults, a TrainConfig equals a default one.
TEST(TrainOptions, TrainConfigDefaultsAreTheDeclared) {
  std::map<std::string, Value> declared;
  for (const auto& spec : train_options().schema().specs())
    if (spec.type != ParamType::Object) declared[spec.name] = spec.default_value;
  ASSERT_TRUE(std::holds_alternative<std::monostate>(declared.at("out")));  // required: no default
  declared["out"] = std::string("run");
  TrainConfig from_declaration, defaults;
  set_train_options(Params(declared), from_declaration);
  EXPECT_EQ(from_declaration.iters, defaults.iters);
  EXPECT_EQ(from_declaration.batch, defaults.batch);
  EXPECT_EQ(from_declaration.seed, defaults.seed);
  EXPECT_EQ(from_declaration.eval_every, defaults.eval_every);
  EXPECT_EQ(from_declaration.checkpoint_every, defaults.checkpoint_every);
  EXPECT_EQ(from_declaration.log_every, defaults.log_every);
  EXPECT_EQ(from_declaration.out, "run");
  EXPECT_EQ(from_declaration.device, defaults.device);
  EXPECT_EQ(from_declaration.resume, defaults.resume);
  EXPECT_EQ(from_declaration.progress, defaults.progress);
  EXPECT_EQ(from_declaration.precision, defaults.precision);
  EXPECT_EQ(from_declaration.max_rollbacks, defaults.max_rollbacks);
  EXPECT_EQ(from_declaration.rollback_lr_factor, defaults.rollback_lr_factor);
  EXPECT_EQ(from_declaration.max_loss, defaults.max_loss);
  EXPECT_EQ(from_declaration.dist_timeout, defaults.dist_timeout);
  EXPECT_EQ(from_declaration.dump_first_step, defaults.dump_first_step);
  // Every declared setting is one of the above (a new one needs a line here and in set_train_options).
  EXPECT_EQ(declared.size(), 16u);
}

// The keys monge.train accepts: the plugin objects, the tensors and the settings; errors name
// monge.train and the option.
TEST(TrainOptions, KeysAndErrors) {
  const auto keys = train_options().lua_keys();
  for (const char* key : {"operator", "noise", "clean", "measured", "eval", "map", "potential", "solver", "cost", "iters",
                          "batch", "seed", "eval_every", "checkpoint_every", "log_every", "out", "device", "resume",
                          "progress", "precision", "max_rollbacks", "rollback_lr_factor", "max_loss", "dist_timeout",
                          "dump_first_step"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  EXPECT_EQ(keys.size(), 25u);
  EXPECT_EQ(error_of([] { train_options().resolve({{"iter", int64_t{3}}}, "monge.train"); }).rfind(
                "monge.train: unknown parameter 'iter' (did you mean 'iters'?)", 0),
            0u);
  EXPECT_NE(error_of([] { train_options().resolve({}, "monge.train"); })
                .find("monge.train: parameter 'operator' is required (operator object"),
            std::string::npos);
}

}  // namespace
