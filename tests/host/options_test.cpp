// Option sets (host/core/options.hpp) and the apply/batch declarations (host/apply/options.hpp):
// the command-line parser and its errors, Lua-side validation, --help, and docs/cli.md's option
// tables, which must be what the declarations generate.

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "host/apply/options.hpp"
#include "host/core/options.hpp"

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
  EXPECT_NE(error_of([&] { batch_options(all, "batch"); }).find("reduce 'all'"), std::string::npos);
}

TEST(Options, HelpListsEveryFlagAndEveryChoiceIsDocumented) {
  for (const OptionSet* set : {&apply_options(), &batch_options()}) {
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

// docs/cli.md holds each set's table between "<!-- options: NAME -->" and "<!-- end options -->".
TEST(Options, DocsCliMdTablesAreTheDeclarations) {
  std::ifstream f(std::string(MONGE_SOURCE_DIR) + "/docs/cli.md");
  ASSERT_TRUE(f) << "docs/cli.md not found";
  std::stringstream text;
  text << f.rdbuf();
  const std::string doc = text.str();
  for (const OptionSet* set : {&apply_options(), &batch_options()}) {
    const std::string open = "<!-- options: " + set->owner() + " -->\n", close = "<!-- end options -->";
    const size_t a = doc.find(open);
    ASSERT_NE(a, std::string::npos) << "docs/cli.md has no '" << open << "' block";
    const size_t b = doc.find(close, a);
    ASSERT_NE(b, std::string::npos);
    EXPECT_EQ(doc.substr(a + open.size(), b - a - open.size()), set->markdown())
        << "docs/cli.md's " << set->owner() << " options differ from the declaration in host/apply/options.cpp; "
        << "replace the block with the output of `monge help --markdown " << set->owner() << "`";
  }
}

}  // namespace
