// Applying maps to image files: monge map files and TorchScript modules, alpha carried through,
// channel checks, atomic output and the errors a user meets.
#include <torch/script.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "host/apply/apply.hpp"
#include "host/core/registry.hpp"
#include "host/image/vips_io.hpp"
#include "host/train/map_file.hpp"

namespace fs = std::filesystem;
using monge::host::apply_file;
using monge::host::load_map;
using monge::host::Registry;

namespace {

class Apply : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("monge-apply-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static const Registry& registry() {
    static Registry* reg = [] {
      auto* r = new Registry(Registry::default_dirs(false));
      r->scan();
      return r;
    }();
    return *reg;
  }

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

  // A monge map file: a 1-channel unet from the plugin, identity at init (residual).
  fs::path unet_map(int64_t channels, const std::optional<monge::host::PluginSpec>& op = std::nullopt) const {
    monge::host::MapInfo info;
    info.network.name = "unet";
    info.network.params = registry().resolve("unet", {{"channels", int64_t{4}}, {"depth", int64_t{1}}}, monge::Kind::Network);
    info.shape = monge::NetworkShape{channels, channels, 1, 8, 8};
    info.op = op;
    auto net = std::dynamic_pointer_cast<monge::Network>(registry().instantiate("unet", info.network.params));
    auto module = net->build(info.shape);
    const fs::path file = dir_ / ("unet" + std::to_string(channels) + ".pt");
    monge::host::save_map(file, *module, info);
    return file;
  }

  fs::path dir_;
};

TEST_F(Apply, TorchScriptMapRunsAndAlphaIsCarriedThrough) {
  const auto map = load_map(scripted_half(), registry());
  EXPECT_EQ(map.info.network.name, "torchscript");
  // Grey + alpha: the TorchScript map does not say how many channels it takes, so the image is
  // passed as it is (both channels halved); an RGB image likewise.
  at::Tensor rgb = torch::linspace(-1, 1, 3 * 5 * 7).reshape({3, 5, 7});
  monge::image::save(rgb, dir_ / "in.png");
  const auto r = apply_file(map, dir_ / "in.png", dir_ / "out.png", c10::kCPU);
  EXPECT_EQ(r.out_width, 7);
  EXPECT_EQ(r.channels, 3);
  const at::Tensor in = monge::image::load(dir_ / "in.png"), out = monge::image::load(dir_ / "out.png");
  EXPECT_LE((out - in * 0.5).abs().max().item<double>(), 1.0 / 255 + 1e-6);
}

TEST_F(Apply, MongeMapKeepsAlphaAndChecksChannels) {
  const auto grey = load_map(unet_map(1), registry());
  at::Tensor image = torch::rand({2, 9, 11}) * 2 - 1;  // grey + alpha
  monge::image::save(image, dir_ / "ga.png");
  apply_file(grey, dir_ / "ga.png", dir_ / "ga_out.png", c10::kCPU);
  const at::Tensor in = monge::image::load(dir_ / "ga.png"), out = monge::image::load(dir_ / "ga_out.png");
  ASSERT_EQ(out.size(0), 2);
  EXPECT_TRUE(out[1].equal(in[1])) << "alpha changed";
  EXPECT_LE((out[0] - in[0]).abs().max().item<double>(), 1.0 / 255 + 1e-6);  // identity at init

  // An RGB image for a grey map: a clear error, and no output file appears.
  monge::image::save(torch::zeros({3, 8, 8}), dir_ / "rgb.png");
  try {
    apply_file(grey, dir_ / "rgb.png", dir_ / "rgb_out.png", c10::kCPU);
    FAIL();
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the map takes 1-channel images (grey), this image has 3 channel(s)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "rgb_out.png"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 4);  // map, 3 images: no temporary files
}

TEST_F(Apply, TheOperatorsLiftRunsFirst) {
  // A super-resolution map: downsample's lift (bicubic x2) makes a 6x5 input 12x10.
  monge::host::PluginSpec op{"downsample", registry().resolve("downsample", {{"factor", int64_t{2}}}, monge::Kind::Operator)};
  const auto sr = load_map(unet_map(1, op), registry());
  monge::image::save(torch::zeros({1, 5, 6}), dir_ / "small.png");
  const auto r = apply_file(sr, dir_ / "small.png", dir_ / "big.png", c10::kCPU);
  EXPECT_EQ(r.out_width, 12);
  EXPECT_EQ(r.out_height, 10);
}

TEST_F(Apply, BadInputsAreClearErrors) {
  const auto map = load_map(scripted_half(), registry());
  auto error_of = [&](const fs::path& in, const fs::path& out) {
    try {
      apply_file(map, in, out, c10::kCPU);
    } catch (const monge::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  monge::image::save(torch::zeros({1, 4, 4}), dir_ / "a.png");
  EXPECT_NE(error_of(dir_ / "a.png", dir_ / "a.png").find("is the input file"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "nope.png", dir_ / "b.png").find("nope.png: no such image file"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "a.png", dir_ / "missing" / "b.png").find("does not exist"), std::string::npos);
  std::ofstream(dir_ / "junk.png") << "not an image";
  EXPECT_NE(error_of(dir_ / "junk.png", dir_ / "b.png").find("junk.png: cannot read image"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "b.png"));

  std::ofstream(dir_ / "junk.pt") << "not a map";
  try {
    load_map(dir_ / "junk.pt", registry());
    FAIL();
  } catch (const monge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a monge map file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(monge::host::resolve_device("gpu", "apply"), monge::Error);
}

}  // namespace
