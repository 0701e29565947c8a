// Batch apply: sharding (every file in exactly one shard), inputs from folders, lists and
// archives (tar of every kind, zip), the manifest that makes re-runs resume, corrupt files
// recorded and skipped; hostile inputs (links, duplicates, huge archive headers, outputs that
// collide or would replace an input) recorded per file while the rest of the batch goes on.
#include <torch/torch.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/apply/batch.hpp"
#include "host/core/cpu_features.hpp"
#include "host/core/json_text.hpp"
#include "host/core/registry.hpp"
#include "host/image/vips_io.hpp"
#include "host/map/map_file.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace fs = std::filesystem;
using monge::host::BatchOptions;
using monge::host::list_inputs;
using monge::host::parse_manifest_line;
using monge::host::resolve_shard;
using monge::host::shard_of;

namespace {

using monge::test::error_message;

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
  EXPECT_NE(error_message([] { resolve_shard("3"); }).find("--shard must be I/N"), std::string::npos);
  EXPECT_NE(error_message([] { resolve_shard("4/4"); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_message([] { resolve_shard("a/4"); }).find("must be an integer"), std::string::npos);
}

// The layout and numbers of monge's JSON lines (manifest, log.jsonl) as the writers before
// nlohmann-json printed them: numbers through an ostream at 6 or 8 significant digits.
TEST(JsonText, LaysOutLinesAndNumbersAsBefore) {
  using monge::json_text::number;
  const nlohmann::ordered_json line = {{"iter", 400},     {"time", number(3.03586654, 8)}, {"loss", number(-0.0380874719, 8)},
                                       {"n", number(20, 8)}, {"tiny", number(1.234567891e-5, 6)}, {"nan", number(std::nan(""), 8)},
                                       {"inf", number(-HUGE_VAL, 8)}, {"big", number(123456789, 8)},
                                       {"text", "tab\tquote\" back\\ \x01 caf\xc3\xa9"}, {"shape", {16, 1, 3}}, {"none", nullptr}};
  EXPECT_EQ(monge::json_text::dump(line),
            "{\"iter\": 400, \"time\": 3.0358665, \"loss\": -0.038087472, \"n\": 20, \"tiny\": 1.23457e-05, \"nan\": null, "
            "\"inf\": null, \"big\": 123456790, \"text\": \"tab\\tquote\\\" back\\\\ \\u0001 caf\xc3\xa9\", \"shape\": [16, 1, 3], "
            "\"none\": null}");
  EXPECT_EQ(monge::json_text::dump({{"key", "bad\xff name"}}), "{\"key\": \"bad\xef\xbf\xbd name\"}");
  EXPECT_EQ(monge::json_text::dump({{"a", nlohmann::ordered_json::object()}, {"b", nlohmann::ordered_json::array()}}),
            "{\"a\": {}, \"b\": []}");
}

// Lines as the writer before nlohmann-json produced them: raw UTF-8, \" \\ \n \r \t escapes and
// other control bytes as \u00XX, numbers as an ostream prints them; and the \u escapes (a
// surrogate pair too) other JSON writers use for the same text.
TEST(ManifestLine, ReadsLinesInTheOldWritersFormat) {
  const std::string key = "sub/caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \t\x1f.png";
  const std::string quoted = "\"sub/caf\xc3\xa9 \xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\t\\u001f.png\"";
  const std::string old_ok = "{\"key\": " + quoted + ", \"input\": \"/data/in/" + quoted.substr(1) +
                             ", \"output\": " + quoted + ", \"status\": \"ok\", \"error\": null, \"seconds\": 1.23457e-05, "
                             "\"width\": 24, \"height\": 20, \"out_width\": 24, \"out_height\": 20, \"precision\": \"fp32\", "
                             "\"shard\": \"0/1\", \"host\": \"node7\", \"pid\": 4242, \"time\": 1733412345}";
  auto rec = parse_manifest_line(old_ok);
  ASSERT_TRUE(rec) << old_ok;
  EXPECT_EQ(rec->key, key);
  EXPECT_EQ(rec->output, key);
  EXPECT_EQ(rec->status, "ok");

  const std::string old_error = "{\"key\": \"bad.png\", \"input\": \"/data/in/bad.png\", \"output\": null, \"status\": \"error\", "
                                "\"error\": \"/data/in/bad.png: cannot read \\\"bad\\\"\\r\\nVipsForeignLoad: \\u0001\", "
                                "\"seconds\": 0, \"width\": 0, \"height\": 0, \"out_width\": 0, \"out_height\": 0, "
                                "\"precision\": \"bf16\", \"shard\": \"2/3\", \"host\": \"n\", \"pid\": 1, \"time\": 0}";
  rec = parse_manifest_line(old_error);
  ASSERT_TRUE(rec) << old_error;
  EXPECT_EQ(rec->key, "bad.png");
  EXPECT_EQ(rec->status, "error");
  EXPECT_EQ(rec->output, "");

  rec = parse_manifest_line("{\"key\": \"sub/caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\t\\u001F.png\", \"status\": \"ok\", "
                            "\"output\": \"o.png\", \"seconds\": 12.3457, \"time\": 1.7e9}");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->key, key);
  EXPECT_EQ(rec->output, "o.png");
}

// A damaged or hostile line is skipped (nullopt), never an exception or a crash.
TEST(ManifestLine, HostileLinesAreSkipped) {
  const std::vector<std::string> lines = {
      "", "{", "{\"key\": \"a\", \"sta", "[]", "\"key\"", "null", "{\"key\": \"a\"}",
      "{\"key\": \"\\uZZZZ\", \"status\": \"ok\"}",            // a bad escape
      "{\"key\": \"\\ud800\", \"status\": \"ok\"}",            // a lone surrogate
      "{\"key\": \"\\x\", \"status\": \"ok\"}",                // an unknown escape
      "{\"key\": \"caf\xe9\", \"status\": \"ok\"}",            // Latin-1, not UTF-8
      "{\"key\": \"\xed\xa0\x80\", \"status\": \"ok\"}",       // an encoded surrogate
      std::string("{\"key\": \"a\0b\", \"status\": \"ok\"}", 30),  // a raw control byte
      "{\"key\": \"a\", \"status\": \"ok\", \"n\": 1e999}",    // out of a double's range
      "{\"key\": \"a\", \"status\": \"ok\", \"n\": -1e400}",
      "{\"key\": 5, \"status\": \"ok\"}",
      "{\"key\": \"a\", \"status\": [\"ok\"]}",
      "{\"key\": \"a\", \"status\": \"ok\", \"nested\": {\"x\": 1}}",
      std::string(1 << 20, '['),                               // deep nesting, torn
      "{\"key\": \"a\", \"status\": \"ok\", \"n\": " + std::string(100000, '[') + std::string(100000, ']') + "}",
  };
  for (const auto& line : lines) {
    std::optional<monge::host::ManifestRecord> rec;
    EXPECT_NO_THROW(rec = parse_manifest_line(line)) << line.substr(0, 60);
    EXPECT_FALSE(rec) << line.substr(0, 60);
  }
  // Integers past 64 bits are still numbers: the line is read.
  const auto big = parse_manifest_line("{\"key\": \"a\", \"status\": \"ok\", \"pid\": 123456789012345678901234567890}");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->key, "a");
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
    monge::host::describe_tiling(m, net);
    return m;
  }

  void image(const fs::path& rel, int64_t h = 20, int64_t w = 24) const {
    monge::image::save(torch::rand({1, h, w}) * 2 - 1, dir_ / rel);
  }

  // Every line of every manifest in `out` that is a JSON object (a torn line is not).
  static std::vector<nlohmann::json> records(const fs::path& out) {
    std::vector<nlohmann::json> r;
    for (const auto& e : fs::directory_iterator(out)) {
      if (e.path().filename().string().rfind("manifest", 0) != 0) continue;
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);) {
        auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (rec.is_object()) r.push_back(std::move(rec));
      }
    }
    return r;
  }

  // status per key over every manifest in `out`, and how many ok records each key has.
  static std::map<std::string, std::pair<std::string, int>> manifest(const fs::path& out) {
    std::map<std::string, std::pair<std::string, int>> r;
    for (const auto& rec : records(out)) {
      auto& entry = r[rec.at("key").get<std::string>()];
      entry.first = rec.at("status").get<std::string>();
      if (entry.first == "ok") ++entry.second;
    }
    return r;
  }

  // The error of each key's last record over every manifest in `out` ("null" for none).
  static std::map<std::string, std::string> errors(const fs::path& out) {
    std::map<std::string, std::string> r;
    for (const auto& rec : records(out)) {
      const auto& error = rec.at("error");
      r[rec.at("key").get<std::string>()] = error.is_string() ? error.get<std::string>() : error.dump();
    }
    return r;
  }

  // Runs a shell command in the test's folder.
  void sh(const std::string& command) const {
    ASSERT_EQ(std::system(("cd '" + dir_.string() + "' && " + command).c_str()), 0) << command;
  }

  static std::string bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
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

  EXPECT_NE(error_message([&] { list_inputs({(dir_ / "nope").string()}, {}, {}); }).find("does not exist"), std::string::npos);
  fs::create_directories(dir_ / "empty");
  EXPECT_NE(error_message([&] { list_inputs({(dir_ / "empty").string()}, {}, {}); }).find("no images found"), std::string::npos);
  // Not an archive: one record naming it (the rest of a batch goes on), not an exception.
  std::ofstream(dir_ / "junk.tar") << std::string(1024, 'j');
  const auto junk = list_inputs({(dir_ / "junk.tar").string()}, {}, {});
  ASSERT_EQ(junk.size(), 1u);
  EXPECT_EQ(junk[0].key, "junk.tar");
  EXPECT_NE(junk[0].error.find((dir_ / "junk.tar").string() + ": not a tar or zip archive"), std::string::npos) << junk[0].error;
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

// The writer escapes names as the writer before nlohmann-json did, and a manifest that writer
// left is read on resume: its finished files are skipped.
TEST_F(Batch, ResumesFromAManifestInTheOldWritersFormat) {
  const std::string name = "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \t.png";
  const std::string quoted = "\"caf\xc3\xa9 \xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\t.png\"";
  image("in/" + name);
  image("in/plain.png");
  const auto map = identity();
  auto o = options("out");
  auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  ASSERT_EQ(r.ok, 2);
  const std::string written = bytes(o.out / "manifest.jsonl");
  EXPECT_NE(written.find("{\"key\": " + quoted + ", \"input\": "), std::string::npos) << written;
  EXPECT_NE(written.find(", \"output\": " + quoted + ", \"status\": \"ok\", \"error\": null, \"seconds\": "), std::string::npos)
      << written;

  const auto old_line = [&](const std::string& q) {
    return "{\"key\": " + q + ", \"input\": \"" + (dir_ / "in").string() + "/" + q.substr(1) + ", \"output\": " + q +
           ", \"status\": \"ok\", \"error\": null, \"seconds\": 0.0123457, \"width\": 24, \"height\": 20, \"out_width\": 24, "
           "\"out_height\": 20, \"precision\": \"fp32\", \"shard\": \"0/1\", \"host\": \"node7\", \"pid\": 4242, "
           "\"time\": 1733412345}\n";
  };
  std::ofstream(o.out / "manifest.jsonl", std::ios::trunc) << old_line(quoted) << old_line("\"plain.png\"");
  r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.already, 2);
  EXPECT_EQ(r.ok + r.failed, 0);
}

// A name that is not UTF-8 (from a foreign archive or file system) is written with U+FFFD in its
// place, so that every line stays JSON; such a record cannot name its file for sure, so a re-run
// does that file again, as it did when the line was unreadable.
TEST_F(Batch, ANameThatIsNotUtf8IsRecordedReadablyAndDoneAgain) {
  image("in/latin1-caf\xe9.png");
  image("in/plain.png");
  const auto map = identity();
  auto o = options("out");
  auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(records(o.out).size(), 2u);  // both lines are JSON
  const auto m = manifest(o.out);
  ASSERT_EQ(m.count("latin1-caf\xef\xbf\xbd.png"), 1u);
  EXPECT_EQ(m.at("latin1-caf\xef\xbf\xbd.png").first, "ok");
  EXPECT_TRUE(fs::exists(o.out / "latin1-caf\xe9.png"));
  r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.already, 1);
  EXPECT_EQ(r.ok, 1);
  EXPECT_EQ(r.failed, 0);
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

std::vector<std::string> keys_of(const std::vector<monge::host::BatchItem>& items) {
  std::vector<std::string> k;
  for (const auto& it : items) k.push_back(it.key);
  std::sort(k.begin(), k.end());
  return k;
}

// The error of the item with `key` ("" when it has none; "missing" when there is no such item).
std::string error_for(const std::vector<monge::host::BatchItem>& items, const std::string& key) {
  for (const auto& it : items)
    if (it.key == key) return it.error;
  return "missing";
}

TEST_F(Batch, ZipAndCompressedTarArchivesAreListedAndRestored) {
  image("in/a.png"), image("in/sub/b.png", 17, 9), image("in/sub/deeper/c.tif", 12, 30);
  sh("tar -cJf in.tar.xz in && tar --zstd -cf in.tar.zst in && tar -cjf in.tar.bz2 in && tar --format=pax -cf in.pax.tar in"
     " && tar -czf in.tgz in && python3 -m zipfile -c in.zip in");
  const std::vector<std::string> members = {"in/a.png", "in/sub/b.png", "in/sub/deeper/c.tif"};
  const std::vector<std::string> archives = {"in.tar.xz", "in.tar.zst", "in.tar.bz2", "in.pax.tar", "in.tgz", "in.zip"};
  for (const auto& a : archives) {
    const auto items = list_inputs({(dir_ / a).string()}, {}, {});
    EXPECT_EQ(keys_of(items), members) << a;
    for (const auto& it : items) EXPECT_EQ(it.error, "") << a << ": " << it.key;
  }
  // All six at once: each under its own name, restored pixel for pixel (the identity map).
  std::vector<std::string> inputs;
  for (const auto& a : archives) inputs.push_back((dir_ / a).string());
  const auto map = identity();
  auto o = options("out");
  const auto r = monge::host::run_batch(map, inputs, o);
  EXPECT_EQ(r.found, 18);
  EXPECT_EQ(r.ok, 18);
  EXPECT_EQ(r.failed, 0);
  for (const auto& a : archives)
    for (const auto& m : members)
      EXPECT_TRUE(monge::image::load(o.out / a / m).equal(monge::image::load(dir_ / m))) << a << ": " << m;
  for (const auto& e : fs::recursive_directory_iterator(o.out))
    EXPECT_NE(e.path().filename().string()[0], '.') << "temporary file left: " << e.path();
}

TEST_F(Batch, ATarGzIsReadInOnePass) {
  constexpr int kMembers = 40;
  for (int i = 0; i < kMembers; ++i) image("in/img" + std::to_string(100 + i) + ".png", 10, 12);
  sh("tar -czf many.tar.gz in");
  const fs::path archive = dir_ / "many.tar.gz";
  const auto map = identity();
  const auto before = monge::host::archive_reads();
  const auto r = monge::host::run_batch(map, {archive.string()}, options("out"));
  const auto after = monge::host::archive_reads();
  EXPECT_EQ(r.ok, kMembers);
  // Opened once to list the members, once to restore them all, each time read once through (the
  // old reader decompressed from the start for every member: 1 + 40 opens, ~20x the bytes).
  EXPECT_EQ(after.opens - before.opens, 2);
  EXPECT_LE(after.bytes - before.bytes, 2 * int64_t(fs::file_size(archive)));
  // Three shards: each lists the archive once and reads it once for its own members.
  const auto b3 = monge::host::archive_reads();
  int64_t ok = 0;
  for (int64_t s = 0; s < 3; ++s) {
    auto o = options("out3");
    o.shard = monge::host::Shard{s, 3, "--shard"};
    ok += monge::host::run_batch(map, {archive.string()}, o).ok;
  }
  EXPECT_EQ(ok, kMembers);
  EXPECT_EQ(monge::host::archive_reads().opens - b3.opens, 6);
}

TEST_F(Batch, LinkAndDuplicateMembersAreRecordsAndTheRestIsRestored) {
  image("first.png", 10, 10), image("second.png", 14, 14), image("b.png", 12, 8);
  std::ofstream(dir_ / "make.py") << R"(import io, tarfile, zipfile
def tar(path):
    t = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
    t.add("first.png", "a.png")
    link = tarfile.TarInfo("s.png"); link.type = tarfile.SYMTYPE; link.linkname = "/etc/passwd"; t.addfile(link)
    hard = tarfile.TarInfo("h.png"); hard.type = tarfile.LNKTYPE; hard.linkname = "a.png"; t.addfile(hard)
    t.add("second.png", "a.png")  # a second member with the same name
    t.add("b.png", "b.png")
    d = tarfile.TarInfo("dir"); d.type = tarfile.DIRTYPE; t.addfile(d)
    t.close()
tar("links.tar")
z = zipfile.ZipFile("links.zip", "w")
z.write("first.png", "a.png")
info = zipfile.ZipInfo("s.png"); info.external_attr = (0o120777 << 16); z.writestr(info, "/etc/passwd")
import warnings; warnings.simplefilter("ignore")
z.write("second.png", "a.png")
z.write("b.png", "b.png")
z.close()
)";
  sh("python3 make.py");
  for (const std::string a : {"links.tar", "links.zip"}) {
    SCOPED_TRACE(a);
    const fs::path archive = dir_ / a;
    const auto items = list_inputs({archive.string()}, {}, {});
    const bool tar = a == "links.tar";
    EXPECT_EQ(keys_of(items), tar ? (std::vector<std::string>{"a.png", "a.png (duplicate 2)", "b.png", "h.png", "s.png"})
                                  : (std::vector<std::string>{"a.png", "a.png (duplicate 2)", "b.png", "s.png"}));
    EXPECT_EQ(error_for(items, "a.png"), "");
    EXPECT_EQ(error_for(items, "b.png"), "");
    EXPECT_EQ(error_for(items, "s.png"), archive.string() + ":s.png: a symbolic link (to /etc/passwd): links are not followed");
    if (tar) {
      EXPECT_EQ(error_for(items, "h.png"), archive.string() + ":h.png: a hard link (to a.png): links are not followed");
    }
    EXPECT_EQ(error_for(items, "a.png (duplicate 2)"),
              archive.string() + ":a.png: a duplicate of " + archive.string() + ":a.png (both are a.png): only the first is restored");

    const auto map = identity();
    auto o = options("out-" + a);
    auto r = monge::host::run_batch(map, {archive.string()}, o);
    EXPECT_EQ(r.ok, 2);
    EXPECT_EQ(r.failed, tar ? 3 : 2);
    EXPECT_TRUE(monge::image::load(o.out / "a.png").equal(monge::image::load(dir_ / "first.png")));  // the first
    EXPECT_TRUE(monge::image::load(o.out / "b.png").equal(monge::image::load(dir_ / "b.png")));
    EXPECT_FALSE(fs::exists(o.out / "s.png"));
    EXPECT_FALSE(fs::exists(o.out / "h.png"));
    const auto m = manifest(o.out);
    EXPECT_EQ(m.at("a.png"), (std::pair<std::string, int>{"ok", 1}));
    EXPECT_EQ(m.at("a.png (duplicate 2)").first, "error");
    EXPECT_EQ(m.at("s.png").first, "error");
    // A re-run: the first a.png is done, the records are failures from before.
    r = monge::host::run_batch(map, {archive.string()}, o);
    EXPECT_EQ(r.already, 2);
    EXPECT_EQ(r.failed_before, tar ? 3 : 2);
  }
}

TEST_F(Batch, SymlinksInAFolderAreRecordedNotFollowed) {
  fs::create_directories(dir_ / "secret");
  image("in/a.png"), image("in/sub/b.png"), image("secret/s.png");
  fs::create_symlink(dir_ / "secret" / "s.png", dir_ / "in" / "link.png");
  fs::create_directory_symlink(dir_ / "secret", dir_ / "in" / "linked");
  const auto items = list_inputs({(dir_ / "in").string()}, {}, {});
  EXPECT_EQ(keys_of(items), (std::vector<std::string>{"a.png", "link.png", "sub/b.png"}));  // the linked folder is not entered
  EXPECT_EQ(error_for(items, "link.png"), (dir_ / "in" / "link.png").string() + ": a symbolic link (to " +
                                              (dir_ / "secret" / "s.png").string() +
                                              "): links inside an input folder are not followed (give the target itself)");
  const auto map = identity();
  auto o = options("out");
  const auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(r.failed, 1);
  EXPECT_FALSE(fs::exists(o.out / "link.png"));
  EXPECT_EQ(manifest(o.out).at("link.png").first, "error");
  EXPECT_NE(errors(o.out).at("link.png").find("a symbolic link"), std::string::npos);
}

// A ustar header block (sizes of 8^11 bytes or more in base-256, as GNU tar writes them).
std::string tar_header(const std::string& name, uint64_t size, char type) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(&h[100], "0000644", 7), std::memcpy(&h[108], "0000000", 7), std::memcpy(&h[116], "0000000", 7);
  if (size < (uint64_t{1} << 33)) {
    char field[13];
    std::snprintf(field, sizeof field, "%011llo", static_cast<unsigned long long>(size));
    std::memcpy(&h[124], field, 11);
  } else {
    h[124] = char(0x80);
    for (int i = 0; i < 8; ++i) h[135 - i] = char((size >> (8 * i)) & 0xff);
  }
  std::memcpy(&h[136], "00000000000", 11);
  h[156] = type;
  std::memcpy(&h[257], "ustar", 6), std::memcpy(&h[263], "00", 2);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char check[8];
  std::snprintf(check, sizeof check, "%06o", sum);
  std::memcpy(&h[148], check, 7);
  return h;
}

std::string tar_padded(const std::string& data) { return data + std::string((512 - data.size() % 512) % 512, '\0'); }

// A pax record "LEN key=value\n" (LEN counts itself).
std::string pax_record(const std::string& key, const std::string& value) {
  const size_t body = key.size() + value.size() + 3;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

TEST_F(Batch, HugeArchiveHeadersAllocateNothingLargeAndTheRestGoesOn) {
  image("in/good.png");
  const std::string png = bytes(dir_ / "in" / "good.png");
  const std::string end(1024, '\0');
  const auto write = [&](const std::string& name, const std::string& content) { std::ofstream(dir_ / name, std::ios::binary) << content; };
  // A pax extended header whose own block claims 2^32 bytes (the old reader allocated them).
  write("bigpax.tar", tar_header("PaxHeader/x.png", uint64_t{1} << 32, 'x') + tar_padded(pax_record("path", "x.png")) +
                          tar_header("x.png", png.size(), '0') + tar_padded(png) + end);
  // A GNU long name claiming 2^32 bytes.
  write("biglong.tar", tar_header("././@LongLink", uint64_t{1} << 32, 'L') + tar_padded("x.png") + end);
  // A pax record that declares itself 2^32 bytes long, inside a small header.
  const std::string lying = "4294967306 path=y.png\n";
  write("bigrecord.tar", tar_header("PaxHeader/y.png", lying.size(), 'x') + tar_padded(lying) + tar_header("y.png", png.size(), '0') +
                             tar_padded(png) + tar_header("z.png", png.size(), '0') + tar_padded(png) + end);
  // A member declaring 2^32 bytes (pax size), in a 4 KiB file.
  const std::string big = pax_record("size", std::to_string(uint64_t{1} << 32));
  write("bigsize.tar", tar_header("w.png", png.size(), '0') + tar_padded(png) + tar_header("PaxHeader/v.png", big.size(), 'x') +
                           tar_padded(big) + tar_header("v.png", 3, '0') + tar_padded("abc") + end);
  // A 100000-byte member name (pax path), then an ordinary member.
  const std::string long_name = std::string(100000, 'n') + ".png";
  const std::string path = pax_record("path", long_name);
  write("longname.tar", tar_header("PaxHeader/n.png", path.size(), 'x') + tar_padded(path) + tar_header("n.png", png.size(), '0') +
                            tar_padded(png) + tar_header("u.png", png.size(), '0') + tar_padded(png) + end);
  std::vector<std::string> inputs = {(dir_ / "in").string()};
  for (const char* a : {"bigpax.tar", "biglong.tar", "bigrecord.tar", "bigsize.tar", "longname.tar"}) inputs.push_back((dir_ / a).string());

  // Listing in a child process that may not grow by more than 256 MiB of address space.
  const fs::path result = dir_ / "listing.txt";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    long pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    const rlim_t limit = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t{256} << 20);
    const struct rlimit rl = {limit, limit};
    setrlimit(RLIMIT_AS, &rl);
    try {
      std::ofstream out(result);
      for (const auto& it : list_inputs(inputs, {}, {})) out << it.key << "\t" << it.error << "\n";
      out.close();
      _exit(out ? 0 : 2);
    } catch (...) {
      _exit(3);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "listing failed or ran out of memory, status " << status;
  std::map<std::string, std::string> listed;
  std::ifstream in(result);
  for (std::string line; std::getline(in, line);) listed[line.substr(0, line.find('\t'))] = line.substr(line.find('\t') + 1);
  auto has = [&](const std::string& key, const std::string& text) {
    EXPECT_TRUE(listed.count(key)) << key;
    EXPECT_NE(listed[key].find(text), std::string::npos) << key << ": " << listed[key];
  };
  has("bigpax.tar", (dir_ / "bigpax.tar").string() + ": damaged or truncated archive: cannot read the header after the start (Special header too large)");
  has("biglong.tar", "Special header too large");
  has("bigrecord.tar/y.png", (dir_ / "bigrecord.tar").string() + ":y.png: the member's header is damaged (Rejecting pax extended attribute");
  EXPECT_EQ(listed["bigrecord.tar/z.png"], "");
  EXPECT_EQ(listed["bigsize.tar/w.png"], "");
  has("bigsize.tar/v.png", "a member of 4294967296 bytes (4.0 GiB), over the limit of 2147483648 bytes (2.0 GiB) per archive member");
  has("bigsize.tar", "damaged or truncated archive: cannot read past member 2 (v.png)");
  const std::string long_key = "longname.tar/" + std::string(200, 'n') + "... (100004 bytes)";
  has(long_key, "a member name of 100004 bytes, over the limit of 4096");
  EXPECT_EQ(listed["longname.tar/u.png"], "");
  EXPECT_EQ(listed["in/good.png"], "");
  EXPECT_EQ(listed.size(), 10u);

  // The batch: every good image is restored, every bad one recorded.
  const auto map = identity();
  auto o = options("out");
  const auto r = monge::host::run_batch(map, inputs, o);
  EXPECT_EQ(r.ok, 4);      // in/good.png, bigrecord.tar/z.png, bigsize.tar/w.png, longname.tar/u.png
  EXPECT_EQ(r.failed, 6);  // bigpax.tar, biglong.tar, y.png, v.png, bigsize.tar, the long name
  const auto m = manifest(o.out);
  for (const char* key : {"in/good.png", "bigrecord.tar/z.png", "bigsize.tar/w.png", "longname.tar/u.png"}) {
    EXPECT_EQ(m.at(key).first, "ok") << key;
    EXPECT_TRUE(monge::image::load(o.out / key).equal(monge::image::load(dir_ / "in" / "good.png"))) << key;
  }
  EXPECT_EQ(m.at(long_key).first, "error");
}

TEST_F(Batch, OutputsSharedByTwoInputsAreRefusedBeforeAnyWork) {
  image("in/a.png"), image("in/a.tif", 16, 16), image("in/b.png"), image("in/sub/c.jpg");
  const auto map = identity();
  auto o = options("out");
  o.format = "png";
  const auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.ok, 2);  // b.png, sub/c.png
  EXPECT_EQ(r.failed, 2);
  EXPECT_FALSE(fs::exists(o.out / "a.png"));  // neither wrote it
  const auto e = errors(o.out);
  const std::string a_png = (dir_ / "in" / "a.png").string(), a_tif = (dir_ / "in" / "a.tif").string();
  EXPECT_EQ(e.at("a.png"), a_png + ": " + a_tif + " would be written to the same output a.png; neither is restored (rename one, or choose another --format or --out)");
  EXPECT_EQ(e.at("a.tif"), a_tif + ": " + a_png + " would be written to the same output a.png; neither is restored (rename one, or choose another --format or --out)");
  EXPECT_EQ(e.at("b.png"), "null");
  EXPECT_TRUE(fs::exists(o.out / "sub" / "c.png"));
}

TEST_F(Batch, AnOutputNeverReplacesAnInput) {
  image("in/a.png"), image("in/sub/b.png"), image("in/x.tif", 16, 16);
  const std::string a = bytes(dir_ / "in" / "a.png"), b = bytes(dir_ / "in" / "sub" / "b.png");
  struct stat before {};
  ASSERT_EQ(stat((dir_ / "in" / "a.png").c_str(), &before), 0);
  const auto map = identity();
  // --out the input folder itself: a.png and sub/b.png would be replaced; x.tif -> x.png is new.
  auto o = options("in");
  o.format = "png";
  auto r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.ok, 1);
  EXPECT_EQ(r.failed, 2);
  EXPECT_EQ(bytes(dir_ / "in" / "a.png"), a);
  EXPECT_EQ(bytes(dir_ / "in" / "sub" / "b.png"), b);
  struct stat after {};
  ASSERT_EQ(stat((dir_ / "in" / "a.png").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // not replaced by a rename either
  EXPECT_TRUE(fs::exists(dir_ / "in" / "x.png"));
  auto e = errors(o.out);
  const std::string in_a = (dir_ / "in" / "a.png").string();
  EXPECT_EQ(e.at("a.png"), in_a + ": the output " + in_a + " would overwrite the input; not restored (choose another --out or --format)");
  EXPECT_EQ(manifest(o.out).at("x.tif").first, "ok");
  // A re-run: the x.png it wrote is not taken as a new input; nothing is redone or replaced.
  r = monge::host::run_batch(map, {(dir_ / "in").string()}, o);
  EXPECT_EQ(r.found, 3);
  EXPECT_EQ(r.already, 1);
  EXPECT_EQ(r.failed_before, 2);
  EXPECT_EQ(r.ok + r.failed, 0);
  EXPECT_EQ(bytes(dir_ / "in" / "a.png"), a);

  // The same folder through a link: the same file, also refused.
  fs::create_directory_symlink(dir_ / "in", dir_ / "via");
  auto v = options("via");
  v.include = {"*.png"};
  r = monge::host::run_batch(map, {(dir_ / "in" / "sub").string()}, v);  // sub/b.png -> via/b.png: not in
  EXPECT_EQ(r.ok, 1);
  v.out = dir_ / "via" / "sub";
  r = monge::host::run_batch(map, {(dir_ / "in" / "sub").string()}, v);  // via/sub/b.png is in/sub/b.png
  EXPECT_EQ(r.ok, 0);
  EXPECT_EQ(r.failed, 1);
  EXPECT_NE(errors(v.out).at("b.png").find("would overwrite the input"), std::string::npos);
  EXPECT_EQ(bytes(dir_ / "in" / "sub" / "b.png"), b);
}

// Every record says which precision ran (failed inputs too), resolved once for the batch; bf16 on a
// CPU without it is refused before anything is written.
TEST_F(Batch, TheManifestRecordsThePrecisionThatRan) {
  using monge::host::Precision;
  image("in/a.png"), image("in/sub/b.png");
  std::ofstream(dir_ / "in" / "bad.png") << "not a png";
  auto precisions = [](const fs::path& out) {
    std::multiset<std::string> seen;
    for (const auto& rec : records(out)) seen.insert(rec.at("precision").get<std::string>());
    return seen;
  };
  const std::string in = (dir_ / "in").string();
  auto o = options("fp32");
  o.apply.tiles.precision = Precision::FP32;
  EXPECT_EQ(monge::host::run_batch(identity(), {in}, o).precision, Precision::FP32);
  EXPECT_EQ(precisions(dir_ / "fp32"), (std::multiset<std::string>{"fp32", "fp32", "fp32"}));

  const bool native = monge::host::cpu_bf16_native();
  const std::string chosen = native ? "bf16" : "fp32";
  o = options("auto");
  o.apply.tiles.precision = Precision::Auto;
  const auto r = monge::host::run_batch(identity(), {in}, o);
  EXPECT_EQ(r.ok, 2);
  EXPECT_EQ(monge::host::precision_name(r.precision), chosen);
  EXPECT_EQ(precisions(dir_ / "auto"), (std::multiset<std::string>{chosen, chosen, chosen}));

  o = options("bf16");
  o.apply.tiles.precision = Precision::BF16;
  if (native) {
    EXPECT_EQ(monge::host::run_batch(identity(), {in}, o).precision, Precision::BF16);
  } else {
    EXPECT_NE(error_message([&] { monge::host::run_batch(identity(), {in}, o); }).find("batch: precision 'bf16' needs bfloat16"),
              std::string::npos);
    EXPECT_FALSE(fs::exists(dir_ / "bf16")) << "a refused batch created its output folder";
  }
}

}  // namespace
