// The plugin loader: real plugins loaded from .so files, and every kind of bad file refused with a
// message naming the file and what was wrong, never a crash.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "host/core/registry.hpp"
#include "monge/operator.hpp"

namespace fs = std::filesystem;
using monge::host::PluginError;
using monge::host::Registry;

namespace {

fs::path builtin_dir() { return Registry::default_dirs(false).front(); }
fs::path fixture(const std::string& name) { return fs::path(MONGE_FIXTURE_DIR) / name; }

std::string load_error(const fs::path& file) {
  try {
    monge::host::load_plugin_file(file);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string find_error(const Registry& reg, const std::string& name) {
  try {
    reg.find(name);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("monge-loader-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Loader, BuiltinDirectoryHasTheFirstPlugins) {
  Registry reg({builtin_dir()});
  reg.scan();
  EXPECT_TRUE(reg.warnings().empty()) << reg.warnings().front();
  for (const char* name : {"identity", "gaussian_blur", "downsample", "hdr_clip"}) {
    const auto& r = reg.find(name);
    EXPECT_EQ(r.kind, monge::Kind::Operator) << name;
    EXPECT_EQ(r.sdk_major, monge::kSdkMajor);
    EXPECT_EQ(r.file.parent_path(), builtin_dir());
  }
  EXPECT_EQ(reg.find("gaussian").kind, monge::Kind::Noise);
  // Listing is grouped by kind, in the order operator, noise, cost, network, solver, metric.
  auto list = reg.list();
  ASSERT_GE(list.size(), 5u);
  EXPECT_EQ(list.front()->kind, monge::Kind::Operator);
  for (size_t i = 1; i < list.size(); ++i) EXPECT_LE(list[i - 1]->kind, list[i]->kind) << list[i]->name;
}

TEST(Loader, CreatedObjectsWorkAndOutliveTheRegistry) {
  std::shared_ptr<monge::ForwardOperator> op;
  {
    Registry reg({builtin_dir()});
    reg.scan();
    op = std::dynamic_pointer_cast<monge::ForwardOperator>(reg.create("identity", {}, monge::Kind::Operator));
    ASSERT_TRUE(op);
  }
  // The object's deleter holds the library: calling into it after the registry is gone is safe.
  auto x = torch::randn({2, 1, 4, 4});
  EXPECT_TRUE(op->forward(x).equal(x));
  EXPECT_EQ(op->lipschitz().value(), 1.0);
}

TEST(Loader, WrongKindIsAnError) {
  Registry reg({builtin_dir()});
  reg.scan();
  try {
    reg.create("gaussian", {}, monge::Kind::Operator);
    FAIL() << "expected an error";
  } catch (const PluginError& e) {
    EXPECT_TRUE(contains(e.what(), "plugin 'gaussian' is a noise, not a operator")) << e.what();
  }
}

TEST(Loader, UnknownNameSuggestsAndListsSearchPath) {
  Registry reg({builtin_dir()});
  reg.scan();
  const std::string err = find_error(reg, "gausian_blur");
  EXPECT_TRUE(contains(err, "unknown plugin 'gausian_blur' (did you mean 'gaussian_blur'?)")) << err;
  EXPECT_TRUE(contains(err, builtin_dir().string())) << err;
}

TEST(Loader, WrongSdkMajorIsRefusedWithBothVersionsAndTheFile) {
  const fs::path file = fixture("bad_sdk") / "future_op.monge.so";
  const std::string err = load_error(file);
  EXPECT_TRUE(contains(err, file.string())) << err;
  const std::string minor = std::to_string(monge::kSdkMinor);
  EXPECT_TRUE(contains(err, "built for monge SDK 99." + minor + ", but this monge provides SDK " +
                                std::to_string(monge::kSdkMajor) + "." + minor))
      << err;
  // While scanning it is a warning, and asking for it by name repeats why.
  Registry reg({builtin_dir(), fixture("bad_sdk")});
  reg.scan();
  ASSERT_EQ(reg.warnings().size(), 1u);
  EXPECT_TRUE(contains(reg.warnings()[0], "SDK 99." + minor)) << reg.warnings()[0];
  const std::string use = find_error(reg, "future_op");
  EXPECT_TRUE(contains(use, "plugin 'future_op' cannot be used")) << use;
  EXPECT_TRUE(contains(use, "SDK 99." + minor)) << use;
  // The good plugins are still there.
  EXPECT_NO_THROW(reg.find("gaussian_blur"));
}

TEST(Loader, NonPluginLibraryIsRefused) {
  const fs::path file = fixture("not_a_plugin") / "not_a_plugin.monge.so";
  const std::string err = load_error(file);
  EXPECT_TRUE(contains(err, file.string() + ": not a monge plugin")) << err;
}

TEST(Loader, MissingFactorySymbolIsNamed) {
  const fs::path file = fixture("missing_create") / "half_plugin.monge.so";
  const std::string err = load_error(file);
  EXPECT_TRUE(contains(err, file.string())) << err;
  EXPECT_TRUE(contains(err, "plugin 'half_plugin' lacks the symbol 'monge_plugin_create'")) << err;
}

TEST(Loader, DuplicateNamesNameBothFiles) {
  Registry reg({builtin_dir(), fixture("duplicate")});
  reg.scan();
  const std::string err = find_error(reg, "identity");
  EXPECT_TRUE(contains(err, "plugin 'identity' is provided by two files")) << err;
  EXPECT_TRUE(contains(err, (builtin_dir() / "identity.monge.so").string())) << err;
  EXPECT_TRUE(contains(err, (fixture("duplicate") / "identity_copy.monge.so").string())) << err;
  EXPECT_NO_THROW(reg.find("downsample"));
}

TEST(Loader, TruncatedLibraryIsRefused) {
  // glibc's dlopen dies with SIGBUS on truncated libraries; the loader must refuse them first.
  TempDir dir;
  const fs::path src = builtin_dir() / "gaussian_blur.monge.so";
  std::string bytes;
  {
    std::ifstream in(src, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 10000u);
  for (size_t cut : {size_t(63), size_t(2048), bytes.size() / 2, bytes.size() - 100, bytes.size() - 1}) {
    const fs::path file = dir.path() / ("truncated" + std::to_string(cut) + ".monge.so");
    std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    const std::string err = load_error(file);
    EXPECT_TRUE(contains(err, file.string() + ": cannot be loaded")) << cut << ": " << err;
    EXPECT_TRUE(contains(err, "truncated, corrupt or built for another system")) << err;
  }
  Registry reg({dir.path()});
  reg.scan();
  EXPECT_EQ(reg.warnings().size(), 5u);
  EXPECT_TRUE(contains(find_error(reg, "truncated2048"), "cannot be loaded"));
}

TEST(Loader, GarbageAndEmptyFilesAreRefused) {
  TempDir dir;
  const fs::path garbage = dir.path() / "garbage.monge.so";
  {
    std::mt19937 rng(1);
    std::ofstream out(garbage, std::ios::binary);
    for (int i = 0; i < 10000; ++i) out.put(static_cast<char>(rng() & 0xFF));
  }
  EXPECT_TRUE(contains(load_error(garbage), garbage.string() + ": not a shared library (no ELF header)"));
  const fs::path empty = dir.path() / "empty.monge.so";
  std::ofstream(empty).close();
  EXPECT_TRUE(contains(load_error(empty), "no ELF header"));
  // An ELF header followed by garbage.
  const fs::path elf = dir.path() / "elfjunk.monge.so";
  {
    std::ofstream out(elf, std::ios::binary);
    out << "\x7f" "ELF" << std::string(5000, '\x01');
  }
  EXPECT_TRUE(contains(load_error(elf), "cannot be loaded"));
  EXPECT_TRUE(contains(load_error(dir.path() / "absent.monge.so"), "no such plugin file"));
}

TEST(Loader, ScanIgnoresOtherFilesAndReportsMissingDirectories) {
  TempDir dir;
  std::ofstream(dir.path() / "README.txt") << "not a plugin";
  fs::copy_file(builtin_dir() / "hdr_clip.monge.so", dir.path() / "libsomething.so");
  Registry reg({dir.path(), dir.path() / "missing"});
  reg.scan();
  EXPECT_TRUE(reg.list().empty());
  ASSERT_EQ(reg.warnings().size(), 1u);
  EXPECT_TRUE(contains(reg.warnings()[0], "does not exist")) << reg.warnings()[0];
}

TEST(Loader, ExplicitFileCanBeAdded) {
  Registry reg(std::vector<fs::path>{});
  reg.add_path(builtin_dir() / "hdr_clip.monge.so");
  EXPECT_EQ(reg.find("hdr_clip").kind, monge::Kind::Operator);
  EXPECT_THROW(reg.add_path(fixture("bad_sdk") / "future_op.monge.so"), PluginError);
}

TEST(Loader, ParamsAreValidatedBeforeConstruction) {
  Registry reg({builtin_dir()});
  reg.scan();
  try {
    reg.create("gaussian_blur", {{"sigmma", 2.0}});
    FAIL() << "expected an error";
  } catch (const monge::ParamError& e) {
    EXPECT_TRUE(contains(e.what(), "gaussian_blur: unknown parameter 'sigmma' (did you mean 'sigma'?)")) << e.what();
  }
}

}  // namespace
