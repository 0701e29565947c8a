// Plugin versions, migrations, capabilities and library lifetime, with real plugin libraries: the
// fixture versioned_net (tests/fixtures/plugins/versioned/) built as version 1.0.0 (parameter
// 'radius'), 2.0.0 ('size', with a migration) and 2.0.0 without the migration, each in its own
// directory. A map file written with 1.0.0 loads with only 2.0.0 on the plugin path, through the
// migration, and restores the same output; without a migration, or from a newer version, the
// error names the plugin, both versions and the parameter.
#include <torch/torch.h>

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host/core/registry.hpp"
#include "host/map/map_file.hpp"
#include "host/map/tensor_file.hpp"
#include "monge/network.hpp"
#include "tests/fixtures/plugins/versioned/versioned_net.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using monge::Network;
using monge::NetworkShape;
using monge::host::LoadedMap;
using monge::host::MapInfo;
using monge::host::Registry;

fs::path variant_dir(const std::string& variant) { return fs::path(MONGE_FIXTURE_DIR) / ("versioned_" + variant); }
fs::path variant_file(const std::string& variant) { return variant_dir(variant) / "versioned_net.monge.so"; }

// A registry whose only plugin is one variant of versioned_net.
std::unique_ptr<Registry> registry_of(const std::string& variant) {
  auto reg = std::make_unique<Registry>(std::vector<fs::path>{variant_dir(variant)});
  reg->scan();
  return reg;
}

std::shared_ptr<Network> make_net(const Registry& reg, const monge::ParamMap& params) {
  return std::dynamic_pointer_cast<Network>(reg.create("versioned_net", params, monge::Kind::Network));
}

// Whether the dynamic loader still holds `file` (RTLD_NOLOAD loads nothing; the handle it returns
// counts as a reference, so it is closed again at once).
bool loaded(const fs::path& file) {
  void* handle = dlopen(file.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (handle) dlclose(handle);
  return handle != nullptr;
}

const NetworkShape kShape{1, 1, 1, 8, 8};

at::Tensor probe() {
  torch::manual_seed(11);
  return torch::rand({2, 1, 8, 8}) * 2 - 1;
}

at::Tensor run(monge::Module& m) {
  torch::NoGradGuard no_grad;
  return m.forward(probe());
}

class PluginVersions : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("monge_plugin_versions_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A map of versioned_net written with `variant` loaded, its parameter `param` = 2, random
  // weights; `record_version` false writes it as monge did before versions were recorded.
  fs::path write_map(const std::string& variant, const std::string& param, bool record_version = true) {
    auto reg = registry_of(variant);
    MapInfo info;
    info.network = {"versioned_net", reg->resolve("versioned_net", {{param, int64_t{2}}}, monge::Kind::Network)};
    if (record_version) info.network.version = reg->find("versioned_net").version;
    info.shape = kShape;
    auto module = monge::host::build_module(make_net(*reg, {{param, int64_t{2}}}), kShape);
    torch::manual_seed(5);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : module->parameters()) p.copy_(torch::randn(p.sizes()));
    }
    expected_ = run(*module);
    const fs::path file = dir_ / (variant + (record_version ? "" : "_unversioned") + ".map");
    monge::host::save_map(file, *module, info);
    return file;
  }
  static nlohmann::json network_record(const fs::path& file) {
    return monge::host::tensor_file::TensorFile::read(file).header()["network"];
  }
  static std::string load_error(const fs::path& file, const Registry& reg) {
    return monge::test::error_message([&] { monge::host::load_map(file, reg); });
  }

  fs::path dir_;
  at::Tensor expected_;
};

TEST_F(PluginVersions, AMapWrittenWithVersion1LoadsWithVersion2ThroughItsMigration) {
  const fs::path file = write_map("v1", "radius");
  EXPECT_EQ(network_record(file)["version"], "1.0.0");
  EXPECT_EQ(network_record(file)["params"], nlohmann::json({{"radius", 2}}));

  auto v2 = registry_of("v2");
  LoadedMap m = monge::host::load_map(file, *v2);
  EXPECT_EQ(m.info.network.version, "2.0.0");
  EXPECT_EQ(m.info.network.params.integer("size"), 2);
  EXPECT_EQ(m.info.network.params.values().count("radius"), 0u);
  EXPECT_EQ(m.receptive_radius, 2);
  EXPECT_TRUE(torch::equal(run(*m.module), expected_));

  // Saved again, the map records the version whose parameters it now holds.
  const fs::path again = dir_ / "again.map";
  monge::host::save_map(again, *m.module, m.info);
  EXPECT_EQ(network_record(again)["version"], "2.0.0");
  EXPECT_EQ(network_record(again)["params"], nlohmann::json({{"size", 2}}));
  EXPECT_TRUE(torch::equal(run(*monge::host::load_map(again, *v2).module), expected_));
}

TEST_F(PluginVersions, AnUnversionedMapLoadsAsBeforeAndMigratesFromTheOldest) {
  const fs::path file = write_map("v1", "radius", /*record_version=*/false);
  EXPECT_FALSE(network_record(file).contains("version"));
  auto v1 = registry_of("v1");
  LoadedMap same = monge::host::load_map(file, *v1);
  EXPECT_EQ(same.info.network.params.integer("radius"), 2);
  EXPECT_TRUE(torch::equal(run(*same.module), expected_));

  auto v2 = registry_of("v2");
  LoadedMap migrated = monge::host::load_map(file, *v2);
  EXPECT_EQ(migrated.info.network.params.integer("size"), 2);
  EXPECT_TRUE(torch::equal(run(*migrated.module), expected_));

  // Without a migration an unversioned map reads as it always did: the schema's own error.
  const std::string err = load_error(file, *registry_of("v2_no_migration"));
  EXPECT_NE(err.find("versioned_net: unknown parameter 'radius'"), std::string::npos) << err;
}

TEST_F(PluginVersions, WithoutAMigrationTheErrorNamesPluginVersionsAndParameter) {
  const fs::path file = write_map("v1", "radius");
  const std::string err = load_error(file, *registry_of("v2_no_migration"));
  for (const std::string& part :
       std::vector<std::string>{file.string(), "plugin 'versioned_net' 2.0.0", "does not know the parameter 'radius'",
                                "saved by version 1.0.0", "has no migration for it", "use versioned_net 1.0.0",
                                "MONGE_PLUGIN_MIGRATION"})
    EXPECT_NE(err.find(part), std::string::npos) << "'" << part << "' not in: " << err;
}

TEST_F(PluginVersions, AMapFromANewerVersionSaysWhichToInstall) {
  const fs::path file = write_map("v2", "size");
  EXPECT_EQ(network_record(file)["version"], "2.0.0");
  const std::string err = load_error(file, *registry_of("v1"));
  for (const std::string& part :
       std::vector<std::string>{file.string(), "plugin 'versioned_net' 1.0.0", "does not know the parameter 'size'",
                                "saved by version 2.0.0", "newer", "install versioned_net 2.0.0 or later"})
    EXPECT_NE(err.find(part), std::string::npos) << "'" << part << "' not in: " << err;
  // The same version reads without any migration.
  EXPECT_TRUE(torch::equal(run(*monge::host::load_map(file, *registry_of("v2_no_migration")).module), expected_));
}

TEST_F(PluginVersions, TheLoaderFindsTheOptionalMigration) {
  EXPECT_NE(registry_of("v2")->find("versioned_net").migrate, nullptr);
  EXPECT_EQ(registry_of("v2_no_migration")->find("versioned_net").migrate, nullptr);
  EXPECT_EQ(registry_of("v1")->find("versioned_net").migrate, nullptr);
  // Called directly (while its registry holds the library): it renames only what it recognises.
  const auto v2 = registry_of("v2");
  const auto& migrate = *v2->find("versioned_net").migrate;
  EXPECT_EQ(migrate("1.0.0", {{"radius", int64_t{3}}}), (monge::ParamMap{{"size", int64_t{3}}}));
  EXPECT_EQ(migrate("", {{"size", int64_t{3}}}), (monge::ParamMap{{"size", int64_t{3}}}));
  EXPECT_EQ(migrate("2.0.0", {{"radius", int64_t{3}}}), (monge::ParamMap{{"radius", int64_t{3}}}));
}

TEST(PluginCapabilities, AreAnsweredByVersion) {
  for (const std::string variant : {"v1", "v2"}) {
    auto reg = registry_of(variant);
    auto net = make_net(*reg, {{variant == "v1" ? "radius" : "size", int64_t{3}}});
    const auto* v1 = static_cast<const VersionedNetCapability*>(net->capability(VersionedNetCapability::kName, 1));
    ASSERT_NE(v1, nullptr) << variant;
    EXPECT_EQ(v1->radius, 3);
    // Version 2 of the capability only from the plugin built with it.
    const auto* v2 = monge::capability<VersionedNetCapability>(*net);
    if (variant == "v1") {
      EXPECT_EQ(v2, nullptr);
    } else {
      ASSERT_NE(v2, nullptr);
      EXPECT_EQ(v2->plugin_major, 2);
    }
    EXPECT_EQ(net->capability(VersionedNetCapability::kName, 3), nullptr);
    EXPECT_EQ(net->capability("monge.test.other", 1), nullptr);
  }
  // A plugin that offers none answers nullptr.
  auto unet = monge::test::registry().create("unet", {}, monge::Kind::Network);
  EXPECT_EQ(monge::capability<VersionedNetCapability>(*unet), nullptr);
}

TEST(PluginLifetime, ABuiltModuleKeepsItsLibraryLoaded) {
  const fs::path file = variant_file("v1");
  ASSERT_FALSE(loaded(file)) << "the fixture is loaded before the test loads it";
  std::shared_ptr<monge::Module> module;
  {
    auto reg = registry_of("v1");
    module = monge::host::build_module(make_net(*reg, {{"radius", int64_t{1}}}), kShape);
    ASSERT_TRUE(loaded(file));
  }  // the registry, its records and the network plugin object are gone
  ASSERT_TRUE(loaded(file)) << "the module no longer holds its plugin's library";
  // The module still runs its code: one 3 x 3 convolution.
  const auto params = module->named_parameters();
  const at::Tensor want = torch::conv2d(probe(), params["conv.weight"], params["conv.bias"], 1, 1);
  EXPECT_TRUE(torch::allclose(run(*module), want, 1e-6, 1e-6));
  module.reset();
  // The check above can fail: with the last object from it gone, the library is unloaded.
  EXPECT_FALSE(loaded(file));
}

TEST_F(PluginVersions, ALoadedMapOutlivesItsRegistry) {
  const fs::path file = write_map("v1", "radius");
  const fs::path so = variant_file("v1");
  LoadedMap m;
  {
    auto reg = registry_of("v1");
    m = monge::host::load_map(file, *reg);
  }
  ASSERT_TRUE(loaded(so));
  EXPECT_TRUE(torch::equal(run(*m.module), expected_));
  m = LoadedMap{};
  EXPECT_FALSE(loaded(so));
}

}  // namespace
