// Map files are data (format 3, host/map/tensor_file.hpp): a round trip keeps every weight and the
// lift bit for bit without running anything; old PyTorch-archive maps (formats 1 and 2) load only
// when trusted and convert exactly; and hostile files, each made by editing a real map's header or
// bytes, are refused with an error saying what is wrong, before any weight is used.
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "host/core/alloc_budget.hpp"
#include "host/core/temp_files.hpp"
#include "host/map/tensor_file.hpp"
#include "host/restore/wiener.hpp"
#include "host/map/map_file.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace tf = monge::host::tensor_file;
using monge::host::load_map;
using monge::host::LoadedMap;
using monge::host::MapInfo;
using monge::test::make_op;
using monge::test::registry;
using nlohmann::json;

class MapFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("monge_map_format_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    // A small unet map on the Wiener lift of a blur, with trained-looking (random) weights.
    auto blur = make_op("gaussian_blur", {{"size", int64_t{7}}, {"sigma", 1.0}});
    torch::manual_seed(3);
    const at::Tensor clean = torch::rand({40, 1, 16, 16}) * 2 - 1;
    info_.network = {"unet", registry().resolve("unet", {{"channels", int64_t{4}}, {"depth", int64_t{1}}}, monge::Kind::Network)};
    info_.shape = monge::NetworkShape{1, 1, 1, 16, 16};
    info_.op = monge::host::PluginSpec{
        "gaussian_blur", registry().resolve("gaussian_blur", {{"size", int64_t{7}}, {"sigma", 1.0}}, monge::Kind::Operator)};
    info_.lift = monge::host::wiener::make_lift(*blur, clean, 0.0025);
    info_.notes["solver"] = "uotip";
    info_.metrics["psnr"] = 21.5;
    auto net = std::dynamic_pointer_cast<monge::Network>(registry().instantiate("unet", info_.network.params));
    module_ = net->build(info_.shape);
    torch::NoGradGuard no_grad;
    for (auto& p : module_->parameters()) p.copy_(torch::randn(p.sizes()) * 0.1);
    file_ = dir_ / "map.pt";
    monge::host::save_map(file_, *module_, info_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  at::Tensor probe() const {
    torch::manual_seed(9);
    return torch::rand({2, 1, 16, 16}) * 2 - 1;
  }
  static at::Tensor restore(LoadedMap& m, const at::Tensor& y) {
    torch::NoGradGuard no_grad;
    return m.module->forward(m.op->lift(y));
  }
  std::string bytes() const {
    std::ifstream in(file_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path write(const std::string& name, const std::string& content) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  // The map re-encoded with its header changed by `edit` (the checksum made right again, as an
  // attacker would): what the reader must catch are the records themselves.
  fs::path edited(const std::string& name, const std::function<void(json&)>& edit) const {
    const auto file = tf::TensorFile::read(file_);
    json header = file.header();
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& n : file.names()) {
      for (const auto& e : header["tensors"]) {
        if (e["name"] != n) continue;
        const std::string dtype = e["dtype"];
        const at::ScalarType type = dtype == "float64" ? at::kDouble : dtype == "int64" ? at::kLong : at::kFloat;
        tensors.emplace_back(n, file.take_any(n, type, static_cast<int64_t>(e["shape"].size()), int64_t{1} << 30));
      }
    }
    header.erase("tensors");
    edit(header);
    return write(name, tf::encode(header, tensors));
  }
  // The file with its tensor table replaced by `table` (offsets and all), checksum recomputed.
  fs::path with_table(const std::string& name, const std::function<void(json&)>& edit) const {
    std::string b = bytes();
    uint64_t header_bytes;
    std::memcpy(&header_bytes, &b[16], 8);
    json header = json::parse(b.substr(40, header_bytes));
    edit(header["tensors"]);
    const std::string text = header.dump();
    const uint64_t data_start = (40 + header_bytes + 63) / 64 * 64, new_start = (40 + text.size() + 63) / 64 * 64;
    const std::string data = b.substr(data_start);
    std::string out(new_start, '\0');
    std::memcpy(&out[0], b.data(), 40);
    const uint64_t len = text.size();
    std::memcpy(&out[16], &len, 8);
    std::memcpy(&out[40], text.data(), text.size());
    out += data;
    uint64_t sum = tf::checksum(&out[40], text.size());
    sum = tf::checksum(out.data() + new_start, data.size(), sum);
    std::memcpy(&out[32], &sum, 8);
    return write(name, out);
  }
  // load_map's error for `file`, or "" when it loads.
  static std::string error_of(const fs::path& file, bool trust = false) {
    try {
      load_map(file, registry(), {trust});
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_, file_;
  MapInfo info_;
  std::shared_ptr<monge::Module> module_;
};

TEST_F(MapFormat, ARoundTripKeepsEveryWeightAndTheLiftWithoutTrust) {
  EXPECT_TRUE(tf::has_magic(file_));
  auto m = load_map(file_, registry());
  EXPECT_EQ(m.info.format, 3);
  EXPECT_EQ(m.info.notes.at("solver"), "uotip");
  EXPECT_EQ(m.info.metrics.at("psnr"), 21.5);
  const auto loaded = m.module->named_parameters();
  for (const auto& p : module_->named_parameters()) EXPECT_TRUE(at::equal(p.value(), loaded[p.key()])) << p.key();
  EXPECT_TRUE(at::equal(m.info.lift->filter.weight, info_.lift->filter.weight));
  EXPECT_TRUE(at::equal(m.info.lift->prior.autocov, info_.lift->prior.autocov));
  // The same restoration as the module it was written from, bit for bit.
  auto op = std::make_shared<monge::host::wiener::WienerLift>(
      make_op("gaussian_blur", {{"size", int64_t{7}}, {"sigma", 1.0}}), info_.lift);
  torch::NoGradGuard no_grad;
  module_->eval();
  EXPECT_TRUE(at::equal(restore(m, probe()), module_->forward(op->lift(probe()))));
}

TEST_F(MapFormat, OldArchiveMapsLoadOnlyWhenTrustedAndConvertExactly) {
  const fs::path old_file = dir_ / "old.pt";
  monge::host::save_map_legacy(old_file, *module_, info_);
  const std::string refused = error_of(old_file);
  EXPECT_NE(refused.find("not a data-only monge map"), std::string::npos) << refused;
  EXPECT_NE(refused.find("monge map upgrade"), std::string::npos) << refused;
  auto old_map = load_map(old_file, registry(), {true});
  EXPECT_EQ(old_map.info.format, 2);
  // What `monge map upgrade` does: write format 3 from the trusted load; the output is unchanged.
  monge::host::save_map(dir_ / "new.pt", *old_map.module, old_map.info);
  auto new_map = load_map(dir_ / "new.pt", registry());
  EXPECT_EQ(new_map.info.format, 3);
  EXPECT_TRUE(at::equal(restore(old_map, probe()), restore(new_map, probe())));
}

TEST_F(MapFormat, DamagedFilesAreRefused) {
  const std::string b = bytes();
  EXPECT_NE(error_of(write("short.pt", b.substr(0, b.size() - 100))).find("truncated or damaged"), std::string::npos);
  std::string flipped = b;
  flipped[flipped.size() - 7] ^= 0x10;  // one bit of one weight
  EXPECT_NE(error_of(write("flip.pt", flipped)).find("checksum mismatch"), std::string::npos);
  std::string huge = b;
  const uint64_t big = uint64_t{1} << 40;
  std::memcpy(&huge[16], &big, 8);
  EXPECT_NE(error_of(write("huge.pt", huge)).find("over the limit"), std::string::npos);
  EXPECT_NE(error_of(write("junk.pt", "not a map")).find("not a monge map file"), std::string::npos);
  EXPECT_NE(error_of(write("empty.pt", "")).find("not a monge map file"), std::string::npos);
}

TEST_F(MapFormat, HostileHeadersAreRefusedBeforeAnythingIsBuilt) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"channels", [](json& h) { h["shape"][0] = int64_t{1} << 22; }, "shape record"},
      {"scale", [](json& h) { h["shape"][2] = 0; }, "shape record"},
      {"format", [](json& h) { h["monge_map_format"] = 9; }, "newer than this monge"},
      {"network", [](json& h) { h["network"] = "unet"; }, "network record"},
      {"params", [](json& h) { h["network"]["params"]["channels"] = json::object(); }, "cannot have"},
      {"range", [](json& h) { h["network"]["params"]["channels"] = 100000; }, "channels"},
      // In range, but about 1.3 GB of weights for a file holding a few kilobytes: refused at the
      // build's first large allocation (before, the host built and initialised the whole network).
      {"wide", [](json& h) { h["network"]["params"]["channels"] = 512; h["network"]["params"]["depth"] = 5; },
       "larger than the"},
      {"latent", [](json& h) { h["latent_channels"] = -3; }, "latent_channels"},
      {"notes", [](json& h) { h["notes"]["x"] = 3; }, "notes"},
      {"lift", [](json& h) { h["lift"]["kind"] = "magic"; }, "unknown lift"},
      {"radius", [](json& h) { h["lift"]["filter_radius"] = 2; }, "do not fit"},
      {"fitted_scale", [](json& h) { h["lift"]["kind"] = "fitted"; h["lift"]["scale"] = 2; }, "do not fit"},
      {"code", [](json& h) { h["operator"] = {{"name", "torchscript"}, {"params", {{"file", "/tmp/evil.pt"}}}}; },
       "--trust-code"},
      // Plugin versions (optional, since SDK 7): a short string of plain characters.
      {"version_type", [](json& h) { h["network"]["version"] = 2; }, "network's version must be a string"},
      {"version_empty", [](json& h) { h["operator"]["version"] = ""; }, "operator's version must be 1 to 64"},
      {"version_long", [](json& h) { h["network"]["version"] = std::string(65, '1'); }, "network's version must be 1 to 64"},
      {"version_chars", [](json& h) { h["noise"] = {{"name", "gaussian"}, {"version", "1.0\n; rm -rf"}, {"params", json::object()}}; },
       "noise's version must be 1 to 64"},
      {"version_list", [](json& h) { h["network"]["version"] = {1, 0}; }, "network's version must be a string"},
      {"version_newer", [](json& h) { h["network"]["version"] = "99.0"; h["network"]["params"]["width"] = 3; },
       "install unet 99.0 or later"},
  };
  for (const auto& c : cases) {
    const std::string err = error_of(edited(std::string(c.name) + ".pt", c.edit));
    EXPECT_NE(err.find(c.error), std::string::npos) << c.name << ": " << err;
  }
}

TEST_F(MapFormat, HostileTensorTablesAreRefused) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* error;
  };
  const auto first_weight = [](json& t) -> json& {
    for (auto& e : t)
      if (e["name"].get<std::string>().rfind("weights.", 0) == 0) return e;
    return t[0];
  };
  const std::vector<Case> cases = {
      {"offset", [&](json& t) { first_weight(t)["offset"] = uint64_t{1} << 32; }, "outside the data section"},
      {"past", [&](json& t) { first_weight(t)["offset"] = uint64_t{1} << 24; }, "outside the data section"},
      {"numel", [&](json& t) { first_weight(t)["shape"] = {uint64_t{1} << 31, uint64_t{1} << 31}; }, "more values than the file"},
      {"shape", [&](json& t) { first_weight(t)["shape"] = {1}; }, "expected"},
      {"dtype", [&](json& t) { first_weight(t)["dtype"] = "float64"; }, "expected float32"},
      {"kind", [&](json& t) { first_weight(t)["dtype"] = "pickle"; }, "unknown dtype"},
      {"missing", [&](json& t) { t.erase(t.begin()); }, "is missing"},
      {"extra", [&](json& t) { t.push_back({{"name", "weights.evil"}, {"dtype", "float32"}, {"shape", {1}}, {"offset", 0}}); },
       "is not a weight"},
      {"twice", [&](json& t) { t.push_back(t[0]); }, "listed twice"},
  };
  for (const auto& c : cases) {
    const std::string err = error_of(with_table(std::string(c.name) + ".pt", c.edit));
    EXPECT_NE(err.find(c.error), std::string::npos) << c.name << ": " << err;
  }
}

TEST_F(MapFormat, NonFiniteWeightsAreRefused) {
  torch::NoGradGuard no_grad;
  module_->parameters()[0].view(-1)[0] = std::nan("");
  monge::host::save_map(dir_ / "nan.pt", *module_, info_);
  EXPECT_NE(error_of(dir_ / "nan.pt").find("NaN or infinite"), std::string::npos);
}

// nlohmann-json refuses to write text that is not UTF-8: the writer says so as a monge::Error.
TEST_F(MapFormat, TextThatIsNotUtf8IsRefusedByTheWriter) {
  info_.notes["solver"] = "uotip\xff";
  std::string err;
  try {
    monge::host::save_map(dir_ / "latin1.pt", *module_, info_);
  } catch (const monge::Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("the header cannot be written as JSON"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir_ / "latin1.pt"));
}

TEST_F(MapFormat, TheWriterLeavesNoTemporaryAndAPlantedSymlinkIsNotFollowed) {
  const fs::path victim = dir_ / "victim.txt";
  std::ofstream(victim) << "mine";
  // The old writer's predictable temporaries, planted as symlinks to the victim.
  for (int pid = 1; pid < 50; ++pid) fs::create_symlink(victim, dir_ / (".map.pt.tmp" + std::to_string(pid)));
  monge::host::save_map(file_, *module_, info_);
  std::ifstream in(victim);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "mine");
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".monge-"), std::string::npos) << e.path();
  const monge::host::Temporary a(file_), b(file_);
  EXPECT_TRUE(monge::host::is_temporary_of(a.path().filename().string(), file_)) << a.path();
  EXPECT_NE(a.path(), b.path());
}

}  // namespace

// The bound itself: an allocation past it throws monge::Error naming what was being built; what
// was allocated before stays usable, and the bound ends with its scope.
TEST(AllocationBudget, RefusesTheAllocationThatPassesItAndEndsWithItsScope) {
  at::Tensor small;
  {
    monge::host::AllocationBudget budget(uint64_t{1} << 20, "the test network");
    small = torch::zeros({1000});
    EXPECT_GE(budget.used(), 4000u);
    try {
      (void)torch::empty({int64_t{1} << 20});  // 4 MiB
      ADD_FAILURE() << "a 4 MiB allocation passed a 1 MiB budget";
    } catch (const monge::Error& e) {
      EXPECT_NE(std::string(e.what()).find("the test network"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(small.sum().item<float>(), 0.0f);
  EXPECT_EQ(torch::ones({int64_t{1} << 20}).sum().item<float>(), float(int64_t{1} << 20));
}
