// Parameter schemas: validation, defaults, messages a user sees, and help text.
#include <gtest/gtest.h>

#include "monge/migration.hpp"
#include "monge/params.hpp"

namespace {

using monge::ParamError;
using monge::ParamMap;
using monge::Schema;

Schema blur_schema() {
  return Schema{}
      .integer("size", 13, 1, 101, "kernel size in pixels (odd)")
      .real("sigma", 1.5, 0.01, 100, "standard deviation in pixels")
      .choice("padding", "reflect", {"reflect", "replicate", "zeros", "circular"}, "border handling")
      .boolean("normalize", true, "kernel sums to one")
      .reals("levels", {0.025, 0.05}, 0, 1, "noise levels");
}

std::string error_of(const Schema& s, const ParamMap& given) {
  try {
    s.resolve(given, "gaussian_blur");
  } catch (const ParamError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Params, DefaultsFilledIn) {
  auto p = blur_schema().resolve({}, "gaussian_blur");
  EXPECT_EQ(p.integer("size"), 13);
  EXPECT_DOUBLE_EQ(p.real("sigma"), 1.5);
  EXPECT_EQ(p.string("padding"), "reflect");
  EXPECT_TRUE(p.boolean("normalize"));
  EXPECT_EQ(p.reals("levels").size(), 2u);
}

TEST(Params, GivenValuesWin) {
  auto p = blur_schema().resolve({{"size", int64_t(5)}, {"sigma", 2.0}, {"padding", std::string("zeros")}}, "b");
  EXPECT_EQ(p.integer("size"), 5);
  EXPECT_DOUBLE_EQ(p.real("sigma"), 2.0);
  EXPECT_EQ(p.string("padding"), "zeros");
}

TEST(Params, IntegersPromoteToRealsAndIntegralRealsToIntegers) {
  auto p = blur_schema().resolve({{"sigma", int64_t(3)}, {"size", 7.0}}, "b");
  EXPECT_DOUBLE_EQ(p.real("sigma"), 3.0);
  EXPECT_EQ(p.integer("size"), 7);
}

TEST(Params, UnknownKeySuggestsTheClosestName) {
  EXPECT_EQ(error_of(blur_schema(), {{"sigmma", 1.5}}),
            "gaussian_blur: unknown parameter 'sigmma' (did you mean 'sigma'?); valid parameters: size, sigma, "
            "padding, normalize, levels");
}

TEST(Params, UnknownKeyWithoutCloseNameListsValidOnes) {
  EXPECT_EQ(error_of(blur_schema(), {{"radius", 1.5}}),
            "gaussian_blur: unknown parameter 'radius'; valid parameters: size, sigma, padding, normalize, levels");
  EXPECT_EQ(error_of(Schema{}, {{"x", 1.0}}), "gaussian_blur: unknown parameter 'x'; it takes no parameters");
}

TEST(Params, WrongTypeNamesKeyExpectedAndGot) {
  EXPECT_EQ(error_of(blur_schema(), {{"sigma", std::string("big")}}),
            "gaussian_blur: parameter 'sigma' expects a number, got string \"big\"");
  EXPECT_EQ(error_of(blur_schema(), {{"size", 2.5}}), "gaussian_blur: parameter 'size' expects an integer, got number 2.5");
  EXPECT_EQ(error_of(blur_schema(), {{"normalize", int64_t(1)}}),
            "gaussian_blur: parameter 'normalize' expects a boolean, got number 1");
  EXPECT_EQ(error_of(blur_schema(), {{"levels", 0.5}}),
            "gaussian_blur: parameter 'levels' expects a list of numbers, got number 0.5");
}

TEST(Params, OutOfRangeNamesTheRange) {
  EXPECT_EQ(error_of(blur_schema(), {{"sigma", -1.0}}),
            "gaussian_blur: parameter 'sigma' expects a number in [0.01, 100], got -1");
  EXPECT_EQ(error_of(blur_schema(), {{"size", int64_t(500)}}),
            "gaussian_blur: parameter 'size' expects an integer in [1, 101], got 500");
  EXPECT_EQ(error_of(blur_schema(), {{"levels", std::vector<double>{0.1, 2.0}}}),
            "gaussian_blur: parameter 'levels' expects numbers in [0, 1], got 2");
  EXPECT_NE(error_of(blur_schema(), {{"sigma", std::nan("")}}).find("got nan"), std::string::npos);
}

TEST(Params, ChoiceSuggestsTheClosestValue) {
  EXPECT_EQ(error_of(blur_schema(), {{"padding", std::string("reflekt")}}),
            "gaussian_blur: parameter 'padding' expects one of reflect|replicate|zeros|circular, got \"reflekt\" "
            "(did you mean 'reflect'?)");
}

TEST(Params, RequiredObjectMustBeGiven) {
  Schema s = Schema{}.object("operator", monge::Kind::Operator, "the forward operator");
  EXPECT_EQ(error_of(s, {}), "gaussian_blur: parameter 'operator' is required (operator object: the forward operator)");
  Schema opt = Schema{}.object("noise", monge::Kind::Noise, "optional noise", true);
  EXPECT_FALSE(opt.resolve({}, "x").has("noise"));
}

TEST(Params, DidYouMeanOnlyForCloseWords) {
  EXPECT_EQ(monge::did_you_mean("sigmma", {"size", "sigma"}), "sigma");
  EXPECT_EQ(monge::did_you_mean("sgima", {"size", "sigma"}), "sigma");  // transposition
  EXPECT_EQ(monge::did_you_mean("completely_else", {"size", "sigma"}), "");
}

TEST(Params, DescribeShowsTypeRangeDefaultAndDoc) {
  const std::string d = blur_schema().describe();
  EXPECT_NE(d.find("  size  (integer in [1, 101], default 13)\n      kernel size in pixels (odd)"), std::string::npos) << d;
  EXPECT_NE(d.find("sigma  (number in [0.01, 100], default 1.5)"), std::string::npos) << d;
  EXPECT_NE(d.find("padding  (choice: reflect|replicate|zeros|circular, default \"reflect\")"), std::string::npos) << d;
  EXPECT_NE(d.find("levels  (list of numbers in [0, 1], default {0.025, 0.05})"), std::string::npos) << d;
}

TEST(Params, SchemaRejectsDuplicateDeclarations) {
  EXPECT_THROW(Schema{}.real("a", 1, 0, 2, "x").real("a", 1, 0, 2, "y"), monge::Error);
}

// Plugin versions as map files record them, ordered as a migration compares them.
TEST(Migration, VersionsCompareByNumberedParts) {
  using monge::compare_versions;
  EXPECT_EQ(compare_versions("1.0.0", "2.0.0"), -1);
  EXPECT_EQ(compare_versions("2.0", "2.0.0"), 0);
  EXPECT_EQ(compare_versions("2.10.0", "2.9.1"), 1);   // numbers, not text
  EXPECT_EQ(compare_versions("1.02", "1.2"), 0);       // leading zeros
  EXPECT_EQ(compare_versions("1.0.0-rc1", "1.0.0"), 1);  // text parts compare as text
  EXPECT_EQ(compare_versions("", "0.0.1"), -1);        // unversioned: older than every version
  EXPECT_EQ(compare_versions("0", ""), 1);
  EXPECT_EQ(compare_versions("", ""), 0);
  EXPECT_EQ(compare_versions("99999999999999999999999.1", "99999999999999999999999.2"), -1);  // no overflow
  EXPECT_TRUE(monge::version_less("1.9", "2.0"));
  EXPECT_FALSE(monge::version_less("2.0", "2.0.0"));
}

TEST(Migration, RenameMovesOnlyWhatIsThere) {
  ParamMap p{{"radius", int64_t{3}}, {"sigma", 1.5}};
  EXPECT_TRUE(monge::rename_param(p, "radius", "size"));
  EXPECT_EQ(p, (ParamMap{{"size", int64_t{3}}, {"sigma", 1.5}}));
  EXPECT_FALSE(monge::rename_param(p, "radius", "size"));  // nothing to move
  ParamMap both{{"radius", int64_t{3}}, {"size", int64_t{4}}};
  EXPECT_FALSE(monge::rename_param(both, "radius", "size"));  // never overwrites the new name
  EXPECT_EQ(std::get<int64_t>(both.at("size")), 4);
}

}  // namespace
