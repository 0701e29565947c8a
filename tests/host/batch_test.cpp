// Batch apply: sharding (every file in exactly one shard), inputs from folders, lists and tar
// archives, the manifest that makes re-runs resume, corrupt files recorded and skipped.
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "host/apply/batch.hpp"
#include "host/core/json.hpp"
#include "host/core/registry.hpp"
#include "host/image/vips_io.hpp"
#include "host/train/map_file.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace fs = std::filesystem;
using monge::host::BatchOptions;
using monge::host::list_inputs;
using monge::host::resolve_shard;
using monge::host::shard_of;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const monge::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Shards, EveryKeyInExactlyOneShard) {
  std::vector<std::string> keys;
  for (int i = 0; i < 600; ++i) keys.push_back("scans/" + std::to_string(i % 7) + "/img" + std::to_string(i) + ".tif");
  for (int64_t n = 1; n <= 6; ++n) {
    std::map<int64_t, int64_t> sizes;
    for (const auto& k : keys) {
      const int64_t s = shard_of(k, n);
      ASSERT_GE(s, 0);
      ASSERT_LT(s, n);
      ++sizes[s];
      EXPECT_EQ(shard_of(k, n), s);  // stable
    }
    int64_t total = 0;
    for (const auto& [s, count] : sizes) {
      total += count;
      EXPECT_GT(count, 600 / n / 2) << "shard " << s << " of " << n << " is badly unbalanced";
    }
    EXPECT_EQ(total, 600);  // disjoint (each key counted once) and complete
  }
}

TEST(Shards, FromTheFlagOrTheLaunchersEnvironment) {
  const char* vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_PROCID",
                        "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "RANK", "WORLD_SIZE"};
  for (const char* v : vars) unsetenv(v);
  auto s = resolve_shard("");
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.count, 1);
  s = resolve_shard("2/5");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.from, "--shard");
  setenv("RANK", "3", 1), setenv("WORLD_SIZE", "4", 1);
  s = resolve_shard("");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.from, "RANK/WORLD_SIZE");
  setenv("OMPI_COMM_WORLD_RANK", "1", 1), setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  EXPECT_EQ(resolve_shard("").from, "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE");
  setenv("SLURM_PROCID", "0", 1), setenv("SLURM_NTASKS", "8", 1);
  EXPECT_EQ(resolve_shard("").count, 8);
  // A Slurm array numbered from 1: the index counts from SLURM_ARRAY_TASK_MIN.
  setenv("SLURM_ARRAY_TASK_ID", "4", 1), setenv("SLURM_ARRAY_TASK_COUNT", "4", 1), setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
  s = resolve_shard("");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(resolve_shard("1/2").from, "--shard");  // the flag wins
  for (const char* v : vars) unsetenv(v);
  EXPECT_NE(error_of([] { resolve_shard("3"); }).find("--shard must be I/N"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_shard("4/4"); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_shard("a/4"); }).find("must be an integer"), std::string::npos);
}

class Batch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("monge-batch-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "in" / "sub" / "deeper");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The identity map (an untrained residual unet), in memory.
  static monge::host::LoadedMap identity() {
    auto& registry = monge::test::registry();
    const auto params = registry.resolve("unet", {{"channels", int64_t{4}}, {"depth", int64_t{1}}}, monge::Kind::Network);
    auto net = std::dynamic_pointer_cast<monge::Network>(registry.instantiate("unet", params));
    monge::host::LoadedMap m;
    m.module = net->build(monge::NetworkShape{1, 1, 1, 0, 0});
    m.module->eval();
    m.info.network = {"unet", params};
    m.info.shape = monge::NetworkShape{1, 1, 1, 0, 0};
    monge::host::describe_tiling(m, *net);
    return m;
  }

  void image(const fs::path& rel, int64_t h = 20, int64_t w = 24) const {
    monge::image::save(torch::rand({1, h, w}) * 2 - 1, dir_ / rel);
  }

  // status per key over every manifest in `out`, and how many ok records each key has.
  static std::map<std::string, std::pair<std::string, int>> manifest(const fs::path& out) {
    std::map<std::string, std::pair<std::string, int>> r;
    for (const auto& e : fs::directory_iterator(out)) {
      if (e.path().filename().string().rfind("manifest", 0) != 0) continue;
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);) {
        auto rec = monge::json::parse_flat(line);
        if (!rec) continue;
        auto& entry = r[rec->at("key")];
        entry.first = rec->at("status");
        if (entry.first == "ok") ++entry.second;
      }
    }
    return r;
  }

  BatchOptions options(const std::string& out) const {
    BatchOptions o;
    o.out = dir_ / out;
    o.progress = false;
    o.apply.tiles.tile = 16;
    o.apply.threads = 1;
    return o;
  }

  fs::path dir_;
};

TEST_F(Batch, InputsFromFoldersListsAndTarArchives) {
  image("in/a.png"), image("in/sub/b.png"), image("in/sub/deeper/c.tif"), image("in/sub/skip.png");
  std::ofstream(dir_ / "in" / "notes.txt") << "not an image";
  auto keys = [](const std::vector<monge::host::BatchItem>& items) {
    std::vector<std::string> k;
    for (const auto& it : items) k.push_back(it.key);
    return k;
  };
  const std::string in = (dir_ / "in").string();
  EXPECT_EQ(keys(list_inputs({in}, {}, {})),
            (std::vector<std::string>{"a.png", "sub/b.png", "sub/deeper/c.tif", "sub/skip.png"}));
  EXPECT_EQ(keys(list_inputs({in}, {"*.png"}, {"skip*"})), (std::vector<std::string>{"a.png", "sub/b.png"}));
  EXPECT_EQ(keys(list_inputs({in, (dir_ / "in" / "sub").string()}, {"b.png"}, {})),
            (std::vector<std::string>{"in/sub/b.png", "sub/b.png"}));

  std::ofstream(dir_ / "list.txt") << "# scans to restore\nin/a.png\n\nin/sub/deeper/c.tif\n";
  EXPECT_EQ(keys(list_inputs({(dir_ / "list.txt").string()}, {}, {})), (std::vector<std::string>{"in/a.png", "in/sub/deeper/c.tif"}));

  // Tar archives, plain and gzipped, with a member name longer than the 100 bytes of a ustar header.
  const std::string long_dir = "in/" + std::string(120, 'x');
  fs::create_directories(dir_ / long_dir);
  image(long_dir + "/long.png");
  const std::string tar = "cd '" + dir_.string() + "' && tar --format=gnu -cf a.tar in && tar -czf a.tgz in";
  ASSERT_EQ(std::system(tar.c_str()), 0);
  auto items = list_inputs({(dir_ / "a.tar").string()}, {"*.png"}, {});
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  const std::vector<std::string> members = {"in/a.png", "in/sub/b.png", "in/sub/skip.png", long_dir + "/long.png"};
  EXPECT_EQ(keys(items), members);  // (sorted here: an archive lists members in the order tar found them)
  auto gz = keys(list_inputs({(dir_ / "a.tgz").string()}, {"*.png"}, {}));
  std::sort(gz.begin(), gz.end());
  EXPECT_EQ(gz, members);
  EXPECT_EQ(items[0].source, (dir_ / "a.tar").string() + ":in/a.png");

  EXPECT_NE(error_of([&] { list_inputs({(dir_ / "nope").string()}, {}, {}); }).find("does not exist"), std::string::npos);
  fs::create_directories(dir_ / "empty");
  EXPECT_NE(error_of([&] { list_inputs({(dir_ / "empty").string()}, {}, {}); }).find("no images found"), std::string::npos);
  std::ofstream(dir_ / "junk.tar") << std::string(1024, 'j');
  EXPECT_NE(error_of([&] { list_inputs({(dir_ / "junk.tar").string()}, {}, {}); }).find("not a tar archive"), std::string::npos);
}

TEST_F(Batch, ResumesFromTheManifestAndRecordsCorruptFiles) {
  for (int i = 0; i < 5; ++i) image("in/sub/img" + std::to_string(i) + ".png", 20 + i, 30);
  std::ofstream(dir_ / "in" / "broken.png") << "\x89PNG\r\n\x1a\n not really";
  const auto map = identity();
  auto o = options("out");
  auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.found, 6);
  EXPECT_EQ(r.ok, 5);
  EXPECT_EQ(r.failed, 1);
  auto m = manifest(o.out);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m["broken.png"].first, "error");
  for (int i = 0; i < 5; ++i) {
    const std::string key = "sub/img" + std::to_string(i) + ".png";
    EXPECT_EQ(m[key].first, "ok") << key;
    // The identity map: the output tree mirrors the input, pixel for pixel.
    EXPECT_TRUE(monge::image::load(o.out / key).equal(monge::image::load(dir_ / "in" / key))) << key;
  }

  // A re-run does nothing; the failed file is skipped unless asked.
  const auto stamp = fs::last_write_time(o.out / "sub/img0.png");
  r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.already, 5);
  EXPECT_EQ(r.failed_before, 1);
  EXPECT_EQ(r.ok + r.failed, 0);
  EXPECT_EQ(fs::last_write_time(o.out / "sub/img0.png"), stamp);

  // A deleted output is redone, and neither a damaged line (a bad escape) nor a torn last line (a
  // killed run) confuses the next.
  fs::remove(o.out / "sub/img3.png");
  std::ofstream(o.out / "manifest.jsonl", std::ios::app) << "{\"key\": \"sub/\\uZZZZ.png\", \"status\": \"ok\"}\n"
                                                          << "{\"key\": \"sub/img4.png\", \"sta";
  o.retry_failed = true;
  r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.ok, 1);
  EXPECT_EQ(r.failed, 1);
  m = manifest(o.out);
  EXPECT_EQ(m["sub/img3.png"].second, 2);  // once before the deletion, once now
  EXPECT_EQ(m["sub/img4.png"].second, 1);
  EXPECT_TRUE(fs::exists(o.out / "sub/img3.png"));
  for (const auto& e : fs::recursive_directory_iterator(o.out))
    EXPECT_NE(e.path().filename().string()[0], '.') << "temporary file left: " << e.path();
}

TEST_F(Batch, ShardsShareTheWorkAndTarMembersAreRestored) {
  for (int i = 0; i < 12; ++i) image("in/img" + std::to_string(i) + ".png");
  const std::string tar = "cd '" + dir_.string() + "/in' && tar -cf ../in.tar .";
  ASSERT_EQ(std::system(tar.c_str()), 0);
  const auto map = identity();
  int64_t total = 0;
  for (int64_t s = 0; s < 3; ++s) {
    auto o = options("out");
    o.shard = monge::host::Shard{s, 3, "--shard"};
    o.format = "tif[compression=deflate]";
    const auto r = monge::host::run_batch(map, {(dir_ / "in.tar").string()}, o);
    EXPECT_EQ(r.manifest.filename().string(), "manifest.shard-" + std::to_string(s) + "-of-3.jsonl");
    EXPECT_EQ(r.failed, 0);
    total += r.ok;
  }
  EXPECT_EQ(total, 12);
  const auto m = manifest(dir_ / "out");
  ASSERT_EQ(m.size(), 12u);
  for (const auto& [key, entry] : m) {
    EXPECT_EQ(entry.second, 1) << key;
    fs::path out = dir_ / "out" / key;
    out.replace_extension(".tif");
    EXPECT_TRUE(monge::image::load(out).equal(monge::image::load(dir_ / "in" / key))) << key;
  }
  // One process over everything afterwards finds nothing left to do.
  auto o = options("out");
  o.format = "tif[compression=deflate]";
  EXPECT_EQ(monge::host::run_batch(map, {(dir_ / "in.tar").string()}, o).already, 12);
}

}  // namespace
