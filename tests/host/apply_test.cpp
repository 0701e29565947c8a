// Applying maps to images: exact tiling (tiles equal whole-image inference), the libvips streaming
// apply with its formats, depths and alpha, monge map files and TorchScript modules, and the
// errors a user meets (never a partial output file).
#include <torch/script.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <string>

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <vips/vips.h>

#include "host/apply/apply.hpp"
#include "host/apply/stream.hpp"
#include "host/apply/tiling.hpp"
#include "host/core/cpu_features.hpp"
#include "host/core/device.hpp"
#include "host/core/precision.hpp"
#include "host/core/registry.hpp"
#include "host/image/vips_io.hpp"
#include "host/image/vips_util.hpp"
#include "host/map/map_file.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace fs = std::filesystem;
using monge::host::LoadedMap;
using monge::host::load_map;
using monge::host::Precision;
using monge::host::StreamOptions;

namespace {

using monge::test::error_message;
using monge::test::registry;

// A unet map in memory with random weights (the untrained residual unet is the identity, which
// any tiling reproduces), optionally behind an operator's lift.
LoadedMap random_unet(int64_t channels, int64_t depth, const std::string& op = "", int64_t factor = 2) {
  const auto params = registry().resolve("unet", {{"channels", int64_t{4}}, {"depth", depth}}, monge::Kind::Network);
  auto net = std::dynamic_pointer_cast<monge::Network>(registry().instantiate("unet", params));
  LoadedMap m;
  torch::manual_seed(7);
  m.module = net->build(monge::NetworkShape{channels, channels, 1, 0, 0});
  {
    // Variance-preserving random weights: activations stay of order one, as in a trained map.
    torch::NoGradGuard no_grad;
    for (auto& p : m.module->parameters()) p.normal_(0, p.dim() > 1 ? 1.0 / std::sqrt(double(p[0].numel())) : 0.1);
  }
  m.module->eval();
  m.info.network = {"unet", params};
  m.info.shape = monge::NetworkShape{channels, channels, 1, 0, 0};
  monge::host::describe_tiling(m, net);
  if (!op.empty()) {
    const auto op_params = registry().resolve(op, {{"factor", factor}}, monge::Kind::Operator);
    m.op = std::dynamic_pointer_cast<monge::ForwardOperator>(registry().instantiate(op, op_params));
  }
  return m;
}

// Runs the tiled runner strip by strip, each strip in two blocks of columns split off the tile
// grid, each block given only the measurement rows and columns it asks for, as the streaming
// layer does.
at::Tensor tiled(const LoadedMap& map, const at::Tensor& y, int64_t tile, int64_t strip, int64_t halo = -1,
                 double strength = 1, int64_t shape_step = -1) {
  monge::host::TileOptions o;
  o.tile = tile;
  o.halo = halo;
  o.strength = strength;
  o.shape_step = shape_step;
  o.batch = 3;
  monge::host::TileRunner runner(map, monge::host::plan_tiles(map, o, c10::kCPU), c10::kCPU, y.size(2), y.size(3));
  const int64_t split = std::min(runner.out_width() - 1, runner.out_width() / 2 + 3);
  auto block = [&](int64_t oy0, int64_t oy1, int64_t ox0, int64_t ox1) {
    const auto [lo, hi] = runner.input_rows(oy0, oy1);
    const auto [c0, c1] = runner.input_cols(ox0, ox1);
    return runner.run(y.narrow(2, lo, hi - lo).narrow(3, c0, c1 - c0), lo, c0, oy0, oy1, ox0, ox1);
  };
  std::vector<at::Tensor> parts;
  for (int64_t oy = 0; oy < runner.out_height(); oy += strip) {
    const int64_t oy1 = std::min(runner.out_height(), oy + strip);
    parts.push_back(at::cat({block(oy, oy1, 0, split), block(oy, oy1, split, runner.out_width())}, 3));
  }
  return at::cat(parts, 2);
}

// Whole-image inference, the reference tiles must reproduce: T(Q(y)) in one network call.
at::Tensor whole_image(const LoadedMap& map, const at::Tensor& y, c10::Device device) {
  return monge::host::restore(*map.module, map.op.get(), y, device, y.size(0));
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Tiling, TilesEqualWholeImageInference) {
  struct Case {
    const char* what;
    int64_t channels, depth, h, w, tile, strip;
    const char* op;
  };
  const Case cases[] = {
      {"grey, odd size, many tiles", 1, 2, 75, 53, 16, 16, nullptr},
      {"grey, strips of 3 tile rows", 1, 2, 75, 53, 16, 48, nullptr},
      {"RGB, depth 3 (alignment 8)", 3, 3, 45, 70, 24, 24, nullptr},
      {"smaller than one tile", 1, 2, 13, 20, 64, 64, nullptr},
      {"SR x2 through the bicubic lift", 1, 2, 29, 37, 16, 16, "downsample"},
      {"SR x3 RGB", 3, 1, 17, 23, 12, 12, "downsample"},
  };
  for (const Case& c : cases) {
    const LoadedMap map = random_unet(c.channels, c.depth, c.op ? c.op : "", c.channels == 3 && c.op ? 3 : 2);
    at::Tensor y = torch::rand({2, c.channels, c.h, c.w}) * 2 - 1;
    const at::Tensor whole = whole_image(map, y, c10::kCPU);
    const at::Tensor tiles = tiled(map, y, c.tile, c.strip);
    ASSERT_EQ(tiles.sizes(), whole.sizes()) << c.what;
    EXPECT_LE(max_diff(tiles, whole), 1e-4) << c.what;
    // The network really reaches beyond a tile: too small a halo changes the output.
    if (c.op) {
      EXPECT_EQ(tiles.size(2), c.h * (c.channels == 3 ? 3 : 2)) << c.what;  // the lift enlarged it
    }
    if (c.h > c.tile) {
      EXPECT_GT(max_diff(tiled(map, y, c.tile, c.strip, 2), whole), 1e-3) << c.what;
    }
  }
}

// --shape-step: windows rounded up to a few sizes (zero-padded, through the unet's PaddedInput)
// give the output of windows at their own size; on by default on the CPU (32), off with 0.
TEST(Tiling, RoundedWindowShapesGiveTheSameOutput) {
  const LoadedMap map = random_unet(1, 2);
  monge::host::TileOptions o;
  EXPECT_EQ(monge::host::plan_tiles(map, o, c10::kCPU).shape_step, monge::host::kShapeStep);
  EXPECT_EQ(monge::host::plan_tiles(map, o, c10::kCPU).shape_step_max_side, monge::host::kShapeStepMaxSide);
  o.shape_step = 6;  // rounded up to the alignment, 4; given, it applies to every window
  EXPECT_EQ(monge::host::plan_tiles(map, o, c10::kCPU).shape_step, 8);
  EXPECT_EQ(monge::host::plan_tiles(map, o, c10::kCPU).shape_step_max_side, 0);
  o.shape_step = 0;
  EXPECT_EQ(monge::host::plan_tiles(map, o, c10::kCPU).shape_step, 0);
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{75, 53}, {13, 20}, {40, 97}}) {
    const at::Tensor y = torch::rand({2, 1, hw.first, hw.second}) * 2 - 1;
    const at::Tensor own = tiled(map, y, 32, 32, -1, 1, 0);
    for (int64_t step : {8, 24, 32, 64}) {
      const at::Tensor rounded = tiled(map, y, 32, 32, -1, 1, step);
      EXPECT_LE(max_diff(rounded, own), 1e-5) << hw.first << " x " << hw.second << ", step " << step;
      std::cout << hw.first << " x " << hw.second << ", step " << step << ": max difference " << max_diff(rounded, own)
                << (rounded.equal(own) ? " (bit for bit equal)" : "") << "\n";
    }
    // Whole images of all sizes (one window each, as in a batch of small images).
    const at::Tensor whole = tiled(map, y, 1024, 1024, -1, 1, 0);
    EXPECT_LE(max_diff(tiled(map, y, 1024, 1024, -1, 1, 32), whole), 1e-5) << hw.first << " x " << hw.second;
  }
}

// Zeroes the residual network's last layer (an untrained map) and checks that the whole image and
// its tiles are then the lift; returns the whole-image output.
at::Tensor expect_untrained_map_is_the_lift(LoadedMap& map, const at::Tensor& y, const std::string& what) {
  {
    torch::NoGradGuard no_grad;
    for (auto& p : map.module->named_parameters())
      if (p.key().rfind("out.", 0) == 0) p.value().zero_();
  }
  const at::Tensor lifted = whole_image(map, y, c10::kCPU);
  EXPECT_LE(max_diff(lifted, map.op->lift(y).clamp(-1, 1)), 1e-6) << what;
  EXPECT_LE(max_diff(tiled(map, y, 16, 16), lifted), 1e-5) << what;
  return lifted;
}

// The Wiener lift is a finite filter with a declared radius: tiles equal the whole image, for a
// blur and for 2x downsampling, through the lift alone (an untrained residual map, 1e-5) and
// through a random network on top (1e-4, the network's own float rounding).
TEST(Tiling, TheWienerLiftTilesExactly) {
  torch::manual_seed(21);
  const at::Tensor clean = torch::rand({64, 1, 32, 32}) * 2 - 1;
  for (const std::string op_name : {"gaussian_blur", "downsample"}) {
    LoadedMap map = random_unet(1, 2, op_name == "downsample" ? "downsample" : "", 2);
    if (!map.op) {
      const auto p = registry().resolve("gaussian_blur", {{"size", int64_t{13}}, {"sigma", 1.5}}, monge::Kind::Operator);
      map.op = std::dynamic_pointer_cast<monge::ForwardOperator>(registry().instantiate("gaussian_blur", p));
    }
    auto lift = monge::host::wiener::make_lift(*map.op, clean, 0.0025);
    map.op = std::make_shared<monge::host::wiener::WienerLift>(map.op, lift);
    ASSERT_GT(map.op->lift_radius(), 2) << op_name;
    at::Tensor y = torch::rand({2, 1, 61, 45}) * 2 - 1;
    const at::Tensor whole = whole_image(map, y, c10::kCPU);
    EXPECT_LE(max_diff(tiled(map, y, 16, 16), whole), 1e-4) << op_name;
    // The realism knob: strength s blends the lift (0) and the map (1), tiled as exactly.
    const at::Tensor q = map.op->lift(y);
    const at::Tensor t = map.module->forward(q).detach();
    const at::Tensor half = monge::host::restore(*map.module, map.op.get(), y, c10::kCPU, 256, 0.5);
    EXPECT_LE(max_diff(half, (q + 0.5 * (t - q)).clamp(-1, 1)), 1e-5) << op_name;
    EXPECT_LE(max_diff(tiled(map, y, 16, 16, -1, 0.5), half), 1e-4) << op_name;
    EXPECT_LE(max_diff(tiled(map, y, 16, 16, -1, 0.0), q.clamp(-1, 1)), 1e-5) << op_name;
    EXPECT_GT(max_diff(half, whole), 1e-2) << op_name;  // the knob does move the output
    monge::host::TileOptions bad;
    bad.strength = 1.5;
    EXPECT_THROW(monge::host::plan_tiles(map, bad, c10::kCPU), monge::Error);
    expect_untrained_map_is_the_lift(map, y, op_name);
  }
}

// The fitted lift (operators that are not linear shift invariant) reads the operator's own lift
// through a finite filter: tiles equal the whole image, through the lift alone and with a network.
TEST(Tiling, TheFittedLiftTilesExactly) {
  torch::manual_seed(22);
  const at::Tensor clean = torch::rand({64, 1, 32, 32}) * 2 - 1;
  const auto noise = monge::test::make_noise("gaussian", {{"sigma", 0.05}});
  for (const std::string op_name : {"nonlinear_blur", "hdr_clip"}) {
    LoadedMap map = random_unet(1, 2);
    map.op = std::dynamic_pointer_cast<monge::ForwardOperator>(
        registry().instantiate(op_name, registry().resolve(op_name, {}, monge::Kind::Operator)));
    auto lift = monge::host::wiener::fit_lift(*map.op, *noise, clean, 9);
    map.op = std::make_shared<monge::host::wiener::WienerLift>(map.op, lift);
    ASSERT_EQ(map.op->lift_radius(), 4) << op_name;
    const at::Tensor y = torch::rand({2, 1, 61, 45}) * 2 - 1;
    EXPECT_LE(max_diff(tiled(map, y, 16, 16), whole_image(map, y, c10::kCPU)), 1e-4) << op_name;
    const at::Tensor lifted = expect_untrained_map_is_the_lift(map, y, op_name);
    EXPECT_GT(max_diff(lifted, y), 1e-2) << op_name;  // the filter does something
  }
}

TEST(Tiling, BlendedTilesForUnknownReceptiveFieldsAreSeamless) {
  LoadedMap map = random_unet(1, 2);
  map.receptive_radius = -1;  // as a TorchScript map: nothing declared
  monge::host::TileOptions o;
  o.tile = 16;
  const auto plan = monge::host::plan_tiles(map, o, c10::kCPU);
  EXPECT_TRUE(plan.blend);
  EXPECT_EQ(plan.halo, 4);
  EXPECT_NE(plan.why.find("blended"), std::string::npos) << plan.why;
  at::Tensor y = torch::rand({1, 1, 61, 45}) * 2 - 1;
  // Windows are fixed by position, so how the rows are cut into strips does not matter.
  const at::Tensor a = tiled(map, y, 16, 16), b = tiled(map, y, 16, 40);
  EXPECT_LE(max_diff(a, b), 1e-5);
  const at::Tensor whole = whole_image(map, y, c10::kCPU);
  // A wider overlap brings the blend closer to whole-image inference.
  const double narrow = (a - whole).abs().mean().item<double>();
  const double wide = (tiled(map, y, 16, 16, 12) - whole).abs().mean().item<double>();
  EXPECT_LT(wide, narrow);
  EXPECT_LE(a.abs().max().item<double>(), 1.0);
}

class Apply : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("monge-apply-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // fp32: these tests hold the output to fp32 whole-image inference; the precision tests below
  // ask for the others.
  static StreamOptions options(int64_t tile = 32, Precision precision = Precision::FP32) {
    StreamOptions o;
    o.tiles.tile = tile;
    o.tiles.precision = precision;
    o.threads = 2;
    return o;
  }

  monge::host::StreamReport apply(const LoadedMap& map, const fs::path& in, const std::string& out,
                                  StreamOptions o = options()) const {
    return monge::host::apply_stream(map, in, out, o);
  }

  std::string error_of(const LoadedMap& map, const fs::path& in, const std::string& out, StreamOptions o = options()) const {
    try {
      apply(map, in, out, o);
    } catch (const monge::Error& e) {
      return e.what();
    }
    return "no error";
  }

  // Files in the test directory: a failed apply must leave no temporary or partial file.
  size_t files() const { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }

  // A TorchScript map out(x) = 0.5 x, saved as PyTorch's torch.jit.save would.
  fs::path scripted_half() const {
    torch::jit::Module m("Half");
    m.define(R"(
def forward(self, x):
    return x * 0.5
)");
    const fs::path file = dir_ / "half.pt";
    m.save(file.string());
    return file;
  }

  // A monge map file: a unet from the plugin, the identity at initialisation (residual).
  fs::path identity_map(int64_t channels, const std::optional<monge::host::PluginSpec>& op = std::nullopt) const {
    monge::host::MapInfo info;
    info.network.name = "unet";
    info.network.params = registry().resolve("unet", {{"channels", int64_t{4}}, {"depth", int64_t{2}}}, monge::Kind::Network);
    info.shape = monge::NetworkShape{channels, channels, 1, 8, 8};
    info.op = op;
    auto net = std::dynamic_pointer_cast<monge::Network>(registry().instantiate("unet", info.network.params));
    auto module = net->build(info.shape);
    const fs::path file = dir_ / ("unet" + std::to_string(channels) + ".pt");
    monge::host::save_map(file, *module, info);
    return file;
  }

  // Raw samples of an image file, as stored (for bit-exact comparisons).
  static at::Tensor raw(const fs::path& file, int bits) {
    at::Tensor v = monge::image::load(file).add(1);  // [0, 2]
    return bits == 8 ? v.mul(127.5).round() : bits == 16 ? v.mul(32767.5).round() : v.mul(0.5);
  }

  fs::path dir_;
};

TEST_F(Apply, StreamedOutputEqualsWholeImageInference) {
  // Through files: 16-bit PNG in, float TIFF out, small tiles; and an RGB image with a grey map,
  // restored channel by channel.
  const LoadedMap map = random_unet(1, 2);
  at::Tensor image = torch::rand({1, 83, 67}) * 2 - 1;
  monge::image::save(image, dir_ / "in.png", 16);
  const at::Tensor y = monge::image::load(dir_ / "in.png");
  const auto r = apply(map, dir_ / "in.png", (dir_ / "out.tif").string(), [] {
    auto o = options(16);
    o.depth = "float";
    return o;
  }());
  EXPECT_EQ(r.out_width, 67);
  EXPECT_EQ(r.out_height, 83);
  EXPECT_FALSE(r.plan.blend);
  EXPECT_LE(max_diff(monge::image::load(dir_ / "out.tif"), whole_image(map, y.unsqueeze(0), c10::kCPU)[0]),
            1e-4);

  monge::image::save(torch::rand({3, 40, 50}) * 2 - 1, dir_ / "rgb.png", 16);
  const at::Tensor rgb = monge::image::load(dir_ / "rgb.png");
  auto o = options(16);
  o.depth = "float";
  apply(map, dir_ / "rgb.png", (dir_ / "rgb.tif").string(), o);
  EXPECT_LE(max_diff(monge::image::load(dir_ / "rgb.tif"), whole_image(map, rgb.unsqueeze(1), c10::kCPU).squeeze(1)),
            1e-4);
}

TEST_F(Apply, WideAndTallImagesEqualWholeImageInferenceComputingEachBlockOnce) {
  // The output is computed in blocks of one strip by four tiles (24 x 96 pixels here), which a
  // tile cache holds until the saver has taken them. A wide, short image and a narrow, tall one
  // of the same pixels must both equal whole-image inference, with every block and every window
  // computed exactly once, for each saver's order of requests (bands of 128 rows or more across
  // the width: several strips at once, and not on strip boundaries).
  const LoadedMap map = random_unet(1, 2);
  const LoadedMap half = load_map(scripted_half(), registry(), {/*trust_code=*/true});
  auto blocks = [](int64_t h, int64_t w, int64_t strip, int64_t chunk) { return (h + strip - 1) / strip * ((w + chunk - 1) / chunk); };
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{150, 1400}, {1400, 150}}) {
    const std::string name = std::to_string(w) + "x" + std::to_string(h);
    monge::image::save(torch::rand({1, h, w}) * 2 - 1, dir_ / (name + ".png"), 16);
    const at::Tensor whole = whole_image(map, monge::image::load(dir_ / (name + ".png")).unsqueeze(0), c10::kCPU)[0];
    struct Out {
      const char* suffix;
      const char* depth;
      double tolerance;  // against whole-image inference, on [-1, 1]
    };
    for (const Out& out : {Out{".tif", "float", 1e-4}, Out{"_tiled.tif[tile,tile_width=32,tile_height=32]", "float", 1e-4},
                           Out{"_pyramid.tif[tile,pyramid,tile_width=64,tile_height=64]", "float", 1e-4},
                           Out{"_out.png", "16", 1e-4 + 1.0 / 65535}, Out{".jpg[Q=90]", "8", 2.0 /* lossy: the counts only */}}) {
      const std::string spec = (dir_ / (name + out.suffix)).string();
      auto o = options(24);
      o.depth = out.depth;
      const auto r = apply(map, dir_ / (name + ".png"), spec, o);
      EXPECT_EQ(r.cache_tiles, blocks(h, w, 24, 96)) << spec;
      EXPECT_EQ(r.recomputed, 0) << spec;
      EXPECT_EQ(r.windows, blocks(h, w, 24, 24)) << spec << ": each cell's window once";
      const std::string file = spec.substr(0, spec.find('['));
      EXPECT_LE(max_diff(monge::image::load(file), whole), out.tolerance) << spec;
    }
    // Blended tiles (a TorchScript map): strips and blocks of four tiles, each block once.
    const auto r = apply(half, dir_ / (name + ".png"), (dir_ / (name + "_half.png")).string(), options(24));
    EXPECT_EQ(r.cache_tiles, blocks(h, w, 96, 96)) << name;
    EXPECT_EQ(r.recomputed, 0) << name;
  }
}

TEST(Stream, TheOutputStripsHeldDependOnTheRowsOnly) {
  // The tile cache holds the strips a saver's band (rows from a multiple of the band) can reach:
  // one when band and strip divide each other (128-row bands and the default 1024-row strips),
  // never a number that grows with the width.
  using monge::host::strips_for_band;
  EXPECT_EQ(strips_for_band(128, 1024), 1);
  EXPECT_EQ(strips_for_band(128, 4096), 1);
  EXPECT_EQ(strips_for_band(128, 128), 1);
  EXPECT_EQ(strips_for_band(128, 64), 2);
  EXPECT_EQ(strips_for_band(256, 32), 8);
  EXPECT_EQ(strips_for_band(128, 96), 3);  // bands cross strip edges: one strip more
  EXPECT_EQ(strips_for_band(128, 24), 7);
  EXPECT_EQ(strips_for_band(48, 1024), 2);
}

TEST_F(Apply, EachBlockIsComputedOnceWhenStripsAndBandsAlign) {
  // With strips a multiple of the saver's band (or the band a multiple of the strips), the cache
  // holds exactly the strips a band reaches, and still no block is computed twice.
  const LoadedMap map = random_unet(1, 2);
  monge::image::save(torch::rand({1, 300, 700}) * 2 - 1, dir_ / "wide.png", 8);
  for (const int64_t tile : {32, 128, 256}) {
    for (const char* suffix : {".tif", "_tiled.tif[tile,tile_width=64,tile_height=64]", "_out.png", ".jpg[Q=90]"}) {
      const std::string spec = (dir_ / ("wide" + std::to_string(tile) + suffix)).string();
      const auto r = apply(map, dir_ / "wide.png", spec, options(tile));
      EXPECT_EQ(r.cache_tiles, (300 + tile - 1) / tile * ((700 + 4 * tile - 1) / (4 * tile))) << spec;
      EXPECT_EQ(r.recomputed, 0) << spec;
    }
  }
}

TEST_F(Apply, FormatsAndDepthsRoundTripThroughTheIdentity) {
  // The untrained residual unet is exactly the identity: every format and depth must come back
  // bit for bit, alpha included.
  const auto grey = load_map(identity_map(1), registry());
  const auto rgb = load_map(identity_map(3), registry());
  struct Case {
    const char* in;
    const char* out;
    int bits, channels;
  };
  const Case cases[] = {
      {"g8.png", "g8_out.png", 8, 1},       {"ga8.png", "ga8_out.png", 8, 2},
      {"g16.png", "g16_out.png", 16, 1},    {"rgba16.png", "rgba16_out.tif", 16, 4},
      {"gf.tif", "gf_out.tif", 32, 1},      {"rgbf.tif", "rgbf_out.tif[compression=deflate]", 32, 3},
      {"g16.tif", "g16_out.tif[tile,pyramid,compression=deflate,bigtiff]", 16, 1},
      {"rgb8.png", "rgb8_out.webp[lossless]", 8, 3},
  };
  for (const Case& c : cases) {
    at::Tensor image = torch::rand({c.channels, 45, 38}) * 2 - 1;
    monge::image::save(image, dir_ / c.in, c.bits);
    const auto& map = c.channels >= 3 ? rgb : grey;
    const auto r = apply(map, dir_ / c.in, (dir_ / c.out).string());
    EXPECT_EQ(r.alpha, c.channels == 2 || c.channels == 4) << c.in;
    std::string out = c.out;
    out = out.substr(0, out.find('['));
    const at::Tensor a = raw(dir_ / out, c.bits), b = raw(dir_ / c.in, c.bits);
    if (c.bits == 16) {
      EXPECT_TRUE((a.remainder(257) != 0).any().item<bool>()) << c.in << " is not really 16-bit";
    }
    // Integer samples come back bit for bit; float ones up to the rounding of [0, 1] -> [-1, 1].
    if (c.bits == 32) {
      EXPECT_LE(max_diff(a, b), 1e-7) << c.in << " -> " << c.out;
    } else {
      EXPECT_TRUE(a.equal(b)) << c.in << " -> " << c.out;
    }
    if (c.channels == 2 || c.channels == 4) {
      EXPECT_TRUE(a[c.channels - 1].equal(b[c.channels - 1])) << "alpha of " << c.in;
    }
  }
  // Depth conversion: 16-bit in, 8-bit out; the alpha follows the depth.
  monge::image::save(torch::rand({2, 20, 30}) * 2 - 1, dir_ / "ga16.png", 16);
  auto o = options();
  o.depth = "8";
  apply(grey, dir_ / "ga16.png", (dir_ / "ga16_8.png").string(), o);
  EXPECT_LE(max_diff(monge::image::load(dir_ / "ga16_8.png"), monge::image::load(dir_ / "ga16.png")), 1.0 / 255 + 1e-6);
  // JPEG is lossy but must run.
  monge::image::save(torch::zeros({1, 16, 16}), dir_ / "flat.png");
  apply(grey, dir_ / "flat.png", (dir_ / "flat.jpg[Q=95]").string());
  EXPECT_LE(max_diff(monge::image::load(dir_ / "flat.jpg"), torch::zeros({1, 16, 16})), 2.0 / 255);
}

TEST_F(Apply, AlphaIsCarriedThroughAndEnlargedBySuperResolutionMaps) {
  monge::host::PluginSpec op{"downsample", registry().resolve("downsample", {{"factor", int64_t{2}}}, monge::Kind::Operator)};
  const auto sr = load_map(identity_map(1, op), registry());
  at::Tensor image = torch::rand({2, 11, 13}) * 2 - 1;  // grey + alpha
  monge::image::save(image, dir_ / "small.png");
  const auto r = apply(sr, dir_ / "small.png", (dir_ / "big.png").string());
  EXPECT_EQ(r.out_width, 26);
  EXPECT_EQ(r.out_height, 22);
  const at::Tensor in = raw(dir_ / "small.png", 8), out = raw(dir_ / "big.png", 8);
  ASSERT_EQ(out.size(0), 2);
  EXPECT_TRUE(out[1].equal(in[1].repeat_interleave(2, 0).repeat_interleave(2, 1))) << "alpha changed";
  // Metadata is carried: the resolution (pixels per mm) grows with the image.
  {
    VipsImage* in = vips_image_new_from_file((dir_ / "small.png").c_str(), nullptr);
    ASSERT_NE(in, nullptr);
    VipsImage* tagged = nullptr;
    ASSERT_EQ(vips_copy(in, &tagged, "xres", 4.0, "yres", 3.0, nullptr), 0);
    ASSERT_EQ(vips_image_write_to_file(tagged, (dir_ / "small.tif").c_str(), nullptr), 0);
    g_object_unref(tagged);
    g_object_unref(in);
    apply(sr, dir_ / "small.tif", (dir_ / "big.tif").string());
    VipsImage* out = vips_image_new_from_file((dir_ / "big.tif").c_str(), nullptr);
    ASSERT_NE(out, nullptr);
    EXPECT_NEAR(vips_image_get_xres(out), 8.0, 1e-3);
    EXPECT_NEAR(vips_image_get_yres(out), 6.0, 1e-3);
    g_object_unref(out);
  }
  // An ICC profile (libvips' built-in sRGB) comes through byte for byte: an RGB image, restored
  // channel by channel by the grey map.
  {
    VipsBlob* profile = nullptr;
    ASSERT_EQ(vips_profile_load("srgb", &profile, nullptr), 0);
    size_t length = 0;
    const void* bytes = vips_blob_get(profile, &length);
    monge::image::save(torch::rand({3, 9, 10}) * 2 - 1, dir_ / "rgb.png");
    VipsImage* in = vips_image_new_from_file((dir_ / "rgb.png").c_str(), nullptr);
    ASSERT_NE(in, nullptr);
    VipsImage* tagged = nullptr;
    ASSERT_EQ(vips_copy(in, &tagged, nullptr), 0);
    vips_image_set_blob_copy(tagged, VIPS_META_ICC_NAME, bytes, length);
    ASSERT_EQ(vips_image_write_to_file(tagged, (dir_ / "rgb_icc.png").c_str(), nullptr), 0);
    g_object_unref(tagged);
    g_object_unref(in);
    apply(sr, dir_ / "rgb_icc.png", (dir_ / "rgb_icc_out.png").string());
    VipsImage* out = vips_image_new_from_file((dir_ / "rgb_icc_out.png").c_str(), nullptr);
    ASSERT_NE(out, nullptr);
    const void* got = nullptr;
    size_t got_length = 0;
    ASSERT_EQ(vips_image_get_blob(out, VIPS_META_ICC_NAME, &got, &got_length), 0) << "the profile was dropped";
    EXPECT_EQ(got_length, length);
    EXPECT_EQ(std::memcmp(got, bytes, std::min(length, got_length)), 0);
    EXPECT_EQ(vips_image_get_width(out), 20);
    g_object_unref(out);
    vips_area_unref(reinterpret_cast<VipsArea*>(profile));
  }
  // The colour is the bicubic lift (identity network), as in whole-image inference.
  const at::Tensor expect = whole_image(sr, monge::image::load(dir_ / "small.png").narrow(0, 0, 1).unsqueeze(0), c10::kCPU);
  EXPECT_LE(max_diff(monge::image::load(dir_ / "big.png")[0], expect[0][0]), 1.0 / 255 + 1e-6);
}

TEST_F(Apply, GreyMapsOnRgbImagesPerChannelOrOnLuminance) {
  const auto grey = load_map(identity_map(1), registry());
  monge::image::save(torch::rand({3, 20, 24}) * 2 - 1, dir_ / "rgb.png");
  apply(grey, dir_ / "rgb.png", (dir_ / "pc.png").string());
  EXPECT_TRUE(raw(dir_ / "pc.png", 8).equal(raw(dir_ / "rgb.png", 8)));
  auto o = options();
  o.colour = "luminance";
  apply(grey, dir_ / "rgb.png", (dir_ / "lum.png").string(), o);
  // Y'CbCr there and back, rounded to 8 bits once.
  EXPECT_LE(max_diff(raw(dir_ / "lum.png", 8), raw(dir_ / "rgb.png", 8)), 1.0);
}

TEST_F(Apply, TorchScriptMapsAreBlendedAndStillRun) {
  const auto map = load_map(scripted_half(), registry(), {/*trust_code=*/true});
  EXPECT_EQ(map.info.network.name, "torchscript");
  EXPECT_EQ(map.receptive_radius, -1);
  at::Tensor rgb = torch::linspace(-1, 1, 3 * 50 * 70).reshape({3, 50, 70});
  monge::image::save(rgb, dir_ / "in.png");
  const auto r = apply(map, dir_ / "in.png", (dir_ / "out.png").string());
  EXPECT_TRUE(r.plan.blend);
  EXPECT_EQ(r.bands, 3);
  const at::Tensor in = monge::image::load(dir_ / "in.png"), out = monge::image::load(dir_ / "out.png");
  EXPECT_LE(max_diff(out, in * 0.5), 1.0 / 255 + 1e-6);  // a pointwise map: blending is exact
}

TEST_F(Apply, BadInputsAreClearErrorsAndLeaveNoFiles) {
  const auto grey = load_map(identity_map(1), registry());
  const auto rgb = load_map(identity_map(3), registry());
  monge::image::save(torch::zeros({1, 40, 40}), dir_ / "a.png");
  monge::image::save(torch::zeros({1, 40, 40}), dir_ / "a16.png", 16);
  std::ofstream(dir_ / "junk.png") << "not an image";
  // A truncated file: the header reads, the pixels run out part-way through the stream.
  monge::image::save(torch::rand({1, 300, 300}) * 2 - 1, dir_ / "big.png");
  fs::copy_file(dir_ / "big.png", dir_ / "cut.png");
  fs::resize_file(dir_ / "cut.png", fs::file_size(dir_ / "big.png") / 2);
  fs::remove(dir_ / "big.png");
  const size_t before = files();
  auto expect_error = [&](const std::string& err, const std::string& want) {
    EXPECT_NE(err.find(want), std::string::npos) << "got: " << err << "\nwanted: " << want;
    EXPECT_EQ(files(), before) << "a file was left behind after: " << err;
  };
  const std::string b = (dir_ / "b.png").string();
  expect_error(error_of(grey, dir_ / "a.png", (dir_ / "a.png").string()), "is the input file");
  expect_error(error_of(grey, dir_ / "nope.png", b), "nope.png: no such image file");
  expect_error(error_of(grey, dir_ / "a.png", (dir_ / "missing" / "b.png").string()), "does not exist");
  // A directory nobody may write in, even root (sysfs); for other users a read-only folder.
  fs::path locked = "/sys";
  if (geteuid() != 0) {
    locked = dir_ / "locked";
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  }
  EXPECT_NE(error_of(grey, dir_ / "a.png", (locked / "b.png").string()).find("cannot write in the output directory " + locked.string()),
            std::string::npos);
  EXPECT_FALSE(fs::exists(locked / "b.png"));
  if (geteuid() != 0) fs::remove(locked);
  EXPECT_EQ(files(), before);
  expect_error(error_of(grey, dir_ / "a.png", (dir_ / "b.xyz").string()), "no image format for the extension '.xyz'");
  expect_error(error_of(rgb, dir_ / "a.png", b), "the map takes RGB images (3 channel(s)) and this image is grey");
  expect_error(error_of(grey, dir_ / "a16.png", (dir_ / "b.jpg").string()), "JPEG holds 8-bit images only");
  auto o = options();
  o.depth = "float";
  expect_error(error_of(grey, dir_ / "a.png", b, o), "PNG holds 8- and 16-bit images only");
  o = options();
  o.max_pixels = 1000;
  expect_error(error_of(grey, dir_ / "a.png", b, o), "40 x 40 pixels is more than max_pixels = 1000");  // Lua's spelling
  o.spell.cli = true;
  expect_error(error_of(grey, dir_ / "a.png", b, o), "40 x 40 pixels is more than --max-pixels 1000");

  expect_error(error_of(grey, dir_ / "junk.png", b), "junk.png: cannot read image");
  const std::string err = error_of(grey, dir_ / "cut.png", b);
  expect_error(err, "cut.png -> " + b + ": ");
  expect_error(err, "no output was written");

  std::ofstream(dir_ / "junk.pt") << "not a map";
  try {
    load_map(dir_ / "junk.pt", registry());
    FAIL();
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a monge map file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(monge::host::resolve_device("gpu", "apply"), monge::Error);
}

// A float image holding NaN or infinity: refused before any work, naming how many (whole-image
// load and streamed apply), or replaced by 0 / full scale under the documented policy.
TEST_F(Apply, NonFiniteFloatInputsAreRefusedOrReplacedNeverSpread) {
  const auto grey = load_map(identity_map(1), registry());
  at::Tensor img = torch::rand({1, 64, 64}) * 2 - 1;
  img[0][3][5] = std::nan("");
  img[0][40][7] = std::numeric_limits<float>::infinity();
  img[0][63][63] = -std::numeric_limits<float>::infinity();
  {
    // As stored: [0, 1] floats, infinities kept (image::save clamps them).
    const at::Tensor stored = img[0].add(1).mul(0.5).contiguous();
    VipsImage* v = vips_image_new_from_memory_copy(stored.data_ptr(), size_t(stored.numel()) * 4, 64, 64, 1, VIPS_FORMAT_FLOAT);
    ASSERT_NE(v, nullptr);
    ASSERT_EQ(vips_image_write_to_file(v, (dir_ / "nan.tif").c_str(), nullptr), 0);
    g_object_unref(v);
  }
  monge::image::save(torch::zeros({1, 64, 64}), dir_ / "clean.tif", 32);
  EXPECT_EQ(monge::image::count_nonfinite(dir_ / "nan.tif"), 3);
  EXPECT_EQ(monge::image::count_nonfinite(dir_ / "clean.tif"), 0);
  const size_t before = files();
  const std::string out = (dir_ / "out.tif").string();
  const std::string err = error_of(grey, dir_ / "nan.tif", out);
  EXPECT_NE(err.find("nan.tif: 3 of 4096 samples"), std::string::npos) << err;
  EXPECT_NE(err.find("NaN or infinite"), std::string::npos) << err;
  EXPECT_NE(err.find("nan = \"replace\""), std::string::npos) << err;  // the library's callers spell it (Lua by default)
  EXPECT_EQ(files(), before) << "a file was left behind";
  try {
    monge::image::load(dir_ / "nan.tif");
    ADD_FAILURE() << "load accepted NaN";
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 of 4096 samples"), std::string::npos) << e.what();
  }

  // Replace: the identity map gives back the image with NaN and -Inf as 0 (-1 here) and +Inf as
  // full scale (1); every pixel is finite.
  auto o = options();
  o.nonfinite = monge::image::NonFinite::Replace;
  const auto rep = apply(grey, dir_ / "nan.tif", out, o);
  EXPECT_EQ(rep.nonfinite, 3);
  const at::Tensor got = monge::image::load(dir_ / "out.tif");
  EXPECT_TRUE(got.isfinite().all().item<bool>());
  at::Tensor want = img.clone();
  want[0][3][5] = -1.0, want[0][40][7] = 1.0, want[0][63][63] = -1.0;
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4);
  const at::Tensor loaded = monge::image::load(dir_ / "nan.tif", monge::image::kLoadMaxPixels, monge::image::NonFinite::Replace);
  EXPECT_LT((loaded - want).abs().max().item<double>(), 1e-6);
}

std::string file_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Precision, ParsesTheThreeNamesAndRefusesOthers) {
  using monge::host::parse_precision;
  EXPECT_EQ(parse_precision("auto", "apply: --precision"), Precision::Auto);
  EXPECT_EQ(parse_precision("fp32", "apply: --precision"), Precision::FP32);
  EXPECT_EQ(parse_precision("bf16", "apply: --precision"), Precision::BF16);
  EXPECT_EQ(error_message([] { parse_precision("fp16", "apply: --precision"); }),
            "apply: --precision must be 'auto', 'fp32' or 'bf16', got 'fp16'");
  EXPECT_STREQ(monge::host::precision_name(Precision::BF16), "bf16");
}

// What auto chooses, and bf16 refused where it would be emulated. Run three times by ctest: as the
// CPU is; under DNNL_MAX_CPU_ISA=AVX2 (apply.precision_without_bf16), where oneDNN has no bf16
// convolutions at all; under DNNL_MAX_CPU_ISA=AVX512_CORE (apply.precision_emulated_bf16), where it
// has them only emulated, slower than fp32. So both branches run on an AVX-512 BF16 machine.
TEST(Precision, AutoIsBf16ExactlyWhereTheCpuHasIt) {
  using monge::host::resolve_precision;
  const bool native = monge::host::cpu_bf16_native();
  const std::string isa = std::getenv("DNNL_MAX_CPU_ISA") ? std::getenv("DNNL_MAX_CPU_ISA") : "";
  if (isa == "AVX2") {
    EXPECT_FALSE(monge::host::cpu_bf16_kernels()) << "the probe ignored DNNL_MAX_CPU_ISA=AVX2";
  }
  if (isa == "AVX2" || isa == "AVX512_CORE") {
    EXPECT_FALSE(native) << "bf16 taken as native under DNNL_MAX_CPU_ISA=" << isa;
  }
  EXPECT_EQ(resolve_precision(Precision::Auto, c10::kCPU, "apply"), native ? Precision::BF16 : Precision::FP32);
  EXPECT_EQ(resolve_precision(Precision::FP32, c10::kCPU, "apply"), Precision::FP32);
  EXPECT_EQ(resolve_precision(Precision::Auto, c10::Device(c10::kCUDA), "apply"), Precision::BF16);
  const std::string err = error_message([] { resolve_precision(Precision::BF16, c10::kCPU, "apply"); });
  if (native) {
    EXPECT_EQ(err, "no error");
  } else {
    EXPECT_NE(err.find("apply: precision 'bf16' needs bfloat16 convolutions in hardware"), std::string::npos) << err;
    EXPECT_NE(err.find("Use precision 'auto' or 'fp32'"), std::string::npos) << err;
  }
}

TEST(Layout, ParsesItsNamesAndAutoIsChannelsLastForBf16OnTheCpuOnly) {
  using monge::host::Layout;
  using monge::host::parse_layout;
  using monge::host::resolve_layout;
  EXPECT_EQ(parse_layout("auto", "apply: layout"), Layout::Auto);
  EXPECT_EQ(parse_layout("nchw", "apply: layout"), Layout::Contiguous);
  EXPECT_EQ(parse_layout("channels-last", "apply: layout"), Layout::ChannelsLast);
  EXPECT_EQ(error_message([] { parse_layout("nhwc", "apply: layout"); }),
            "apply: layout must be 'auto', 'nchw' or 'channels-last', got 'nhwc'");
  EXPECT_STREQ(monge::host::layout_name(Layout::ChannelsLast), "channels-last");
  EXPECT_EQ(resolve_layout(Layout::Auto, Precision::BF16, c10::kCPU), Layout::ChannelsLast);
  EXPECT_EQ(resolve_layout(Layout::Auto, Precision::FP32, c10::kCPU), Layout::Contiguous);  // fp32 bit for bit as before
  EXPECT_EQ(resolve_layout(Layout::Auto, Precision::BF16, c10::Device(c10::kCUDA)), Layout::Contiguous);
  EXPECT_EQ(resolve_layout(Layout::ChannelsLast, Precision::FP32, c10::kCPU), Layout::ChannelsLast);
}

// Layout auto: channels-last for bf16 on a CPU, but only on images large enough to win back the
// kernels oneDNN compiles for each new shape; an explicit layout holds for every image.
TEST(Layout, AutoRunsSmallImagesInNchw) {
  using monge::host::Layout;
  const LoadedMap map = random_unet(1, 2);
  monge::host::TileOptions o;
  o.precision = Precision::FP32;
  EXPECT_FALSE(monge::host::plan_tiles(map, o, c10::kCPU).layout_by_size);  // fp32: nchw, as before
  if (!monge::host::cpu_bf16_native()) return;  // bf16 is refused here (Precision.* tests that)
  o.precision = Precision::BF16;
  const monge::host::TilePlan plan = monge::host::plan_tiles(map, o, c10::kCPU);
  EXPECT_TRUE(plan.layout_by_size);
  EXPECT_EQ(plan.layout, Layout::ChannelsLast);
  EXPECT_EQ(monge::host::TileRunner(map, plan, c10::kCPU, 255, 256).plan().layout, Layout::Contiguous);
  EXPECT_EQ(monge::host::TileRunner(map, plan, c10::kCPU, 256, 256).plan().layout, Layout::ChannelsLast);
  o.layout = Layout::ChannelsLast;
  const monge::host::TilePlan asked = monge::host::plan_tiles(map, o, c10::kCPU);
  EXPECT_FALSE(asked.layout_by_size);
  EXPECT_EQ(monge::host::TileRunner(map, asked, c10::kCPU, 20, 20).plan().layout, Layout::ChannelsLast);
}

// channels-last in fp32 differs from nchw by float rounding only; the weights follow the layout of
// each call, so an nchw call after a channels-last one is bit for bit what it was before.
TEST(Layout, ChannelsLastAgreesWithNchwAndSwitchingBackRestoresItExactly) {
  using monge::host::Layout;
  const LoadedMap map = random_unet(3, 2);
  const at::Tensor y = torch::rand({2, 3, 45, 70}) * 2 - 1;
  auto run = [&](Layout layout) {
    return monge::host::restore(*map.module, map.op.get(), y, c10::kCPU, 2, 1, Precision::FP32, layout);
  };
  const at::Tensor nchw = run(Layout::Auto);
  for (const auto& p : map.module->parameters()) EXPECT_TRUE(p.is_contiguous());
  const at::Tensor nhwc = run(Layout::ChannelsLast);
  bool any_nhwc = false;
  for (const auto& p : map.module->parameters()) any_nhwc |= p.dim() == 4 && !p.is_contiguous();
  EXPECT_TRUE(any_nhwc) << "the weights were not made channels-last";
  EXPECT_TRUE(nhwc.is_contiguous());
  EXPECT_GT(nchw.abs().max().item<double>(), 0.1);
  EXPECT_LE(max_diff(nhwc, nchw), 1e-5);
  EXPECT_TRUE(at::equal(run(Layout::Contiguous), nchw));
  for (const auto& p : map.module->parameters()) EXPECT_TRUE(p.is_contiguous());
  // Tiles in channels-last equal the whole image in channels-last, as in nchw.
  monge::host::TileOptions o;
  o.tile = 16;
  o.layout = Layout::ChannelsLast;
  const auto plan = monge::host::plan_tiles(map, o, c10::kCPU);
  EXPECT_EQ(plan.layout, Layout::ChannelsLast);
  monge::host::TileRunner runner(map, plan, c10::kCPU, y.size(2), y.size(3));
  EXPECT_LE(max_diff(runner.run(y, 0, 0, 0, runner.out_height()), nhwc), 1e-4);
}

TEST(Precision, TheGuardRestoresTheThreadsAutocastState) {
  ASSERT_FALSE(at::autocast::is_cpu_enabled());
  const at::ScalarType dtype = at::autocast::get_autocast_cpu_dtype();
  {
    monge::host::PrecisionGuard fp32(Precision::FP32, c10::kCPU);
    EXPECT_FALSE(at::autocast::is_cpu_enabled());
  }
  {
    monge::host::PrecisionGuard bf16(Precision::BF16, c10::kCPU);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), at::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), dtype);
  // Inside a region the caller opened, the caller's region survives the guard.
  at::autocast::set_cpu_enabled(true);
  { monge::host::PrecisionGuard bf16(Precision::BF16, c10::kCPU); }
  EXPECT_TRUE(at::autocast::is_cpu_enabled());
  at::autocast::set_cpu_enabled(false);
}

TEST_F(Apply, DifferenceCountsLevelsBetweenFiles) {
  auto level = [](double l) { return (l + 0.25) / 127.5 - 1; };  // [-1, 1] values saved as 8-bit level l
  at::Tensor a = torch::full({1, 10, 10}, level(100));
  at::Tensor b = a.clone();
  b[0][0].fill_(level(103));  // 10 samples 3 levels up
  b[0][1][0] = level(99);     // 1 sample 1 level down
  monge::image::save(a, dir_ / "a.png"), monge::image::save(b, dir_ / "b.png");
  const auto d = monge::image::difference(dir_ / "a.png", dir_ / "b.png");
  EXPECT_EQ(d.samples, 100);
  EXPECT_EQ(d.max(), 3);
  EXPECT_EQ(d.histogram[0], 89);
  EXPECT_EQ(d.histogram[1], 1);
  EXPECT_EQ(d.histogram[3], 10);
  EXPECT_EQ(d.quantile(0.89), 0);
  EXPECT_EQ(d.quantile(0.9), 1);
  EXPECT_EQ(d.quantile(0.999), 3);
  EXPECT_DOUBLE_EQ(d.mean(), 0.31);
  monge::image::save(torch::zeros({1, 10, 11}), dir_ / "c.png");
  EXPECT_NE(error_message([&] { monge::image::difference(dir_ / "a.png", dir_ / "c.png"); }).find("differ in size"), std::string::npos);
}

// The bf16 bounds. In 8-bit levels for the random unet below (weights of variance 1 / fan-in, so
// the network's own output is of the image's size, not a small correction as in a trained map):
// measured max 1, 99.9% within 1 (mean 0.02) on AVX-512 BF16 (AMD EPYC, LibTorch 1.13); bounds
// with room for other bf16 CPUs (AMX accumulates in another order). In float output for a small
// correction: measured 1e-5, where rounding the residual sum or the output to bf16 gives 2e-3.
constexpr int64_t kBf16MaxLevels = 4;
constexpr int64_t kBf16P999Levels = 2;
constexpr double kBf16SmallResidualGap = 2e-4;

// fp32 is the plain forward (bit for bit the same before and after a bf16 run in the same
// thread); bf16, where the CPU has it, stays within a few levels of it and auto picks it; where
// the CPU has none, auto is fp32 bit for bit and bf16 is refused before any work.
TEST_F(Apply, Bf16StaysCloseToFp32WhereTheCpuHasItAndIsRefusedElsewhere) {
  const LoadedMap map = random_unet(1, 2);
  monge::image::synthetic((dir_ / "in.png").string(), 150, 97, 1, 3);
  const fs::path in = dir_ / "in.png", fp32 = dir_ / "fp32.png", fp32_again = dir_ / "fp32_again.png";
  EXPECT_EQ(apply(map, in, fp32.string(), options(32, Precision::FP32)).plan.precision, Precision::FP32);
  const auto automatic = apply(map, in, (dir_ / "auto.png").string(), options(32, Precision::Auto));
  if (monge::host::cpu_bf16_native()) {
    EXPECT_EQ(automatic.plan.precision, Precision::BF16);
    EXPECT_EQ(apply(map, in, (dir_ / "bf16.png").string(), options(32, Precision::BF16)).plan.precision, Precision::BF16);
    EXPECT_EQ(file_bytes(dir_ / "auto.png"), file_bytes(dir_ / "bf16.png"));
    const auto d = monge::image::difference(fp32, dir_ / "bf16.png");
    std::cout << "bf16 against fp32: max " << d.max() << " levels, 99.9% within " << d.quantile(0.999) << ", mean " << d.mean() << "\n";
    EXPECT_GT(d.max(), 0) << "bf16 gave the fp32 output: autocast did not run";
    EXPECT_LE(d.max(), kBf16MaxLevels);
    EXPECT_LE(d.quantile(0.999), kBf16P999Levels);
    // A network that corrects its input a little, as a trained residual map does (its last layer
    // scaled down): bf16 rounds the correction, not the image, because the residual sum and the
    // output conversion stay fp32. Either in bf16 would cost up to 2^-8 of the image's values.
    LoadedMap gentle = random_unet(1, 2);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : gentle.module->named_parameters())
        if (p.key().rfind("out.", 0) == 0) p.value().mul_(0.01);
    }
    auto as_float = [&](Precision p, const char* out) {
      auto o = options(32, p);
      o.depth = "float";
      apply(gentle, in, (dir_ / out).string(), o);
      return monge::image::load(dir_ / out);
    };
    const double gap = max_diff(as_float(Precision::FP32, "gentle32.tif"), as_float(Precision::BF16, "gentle16.tif"));
    std::cout << "bf16 against fp32, small residual, float output: max " << gap << "\n";
    EXPECT_GT(gap, 0);
    EXPECT_LT(gap, kBf16SmallResidualGap);
  } else {
    EXPECT_EQ(automatic.plan.precision, Precision::FP32);
    EXPECT_EQ(file_bytes(dir_ / "auto.png"), file_bytes(fp32));
    const size_t before = files();
    const std::string err = error_message([&] { apply(map, in, (dir_ / "bf16.png").string(), options(32, Precision::BF16)); });
    EXPECT_NE(err.find("precision 'bf16' needs bfloat16 convolutions in hardware"), std::string::npos) << err;
    EXPECT_EQ(files(), before) << "a refused apply left a file";
  }
  apply(map, in, fp32_again.string(), options(32, Precision::FP32));
  EXPECT_EQ(file_bytes(fp32), file_bytes(fp32_again)) << "fp32 changed after a run in another precision";
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

}  // namespace
