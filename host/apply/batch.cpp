#include "host/apply/batch.hpp"

#include "host/core/temp_files.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <fnmatch.h>
#include <unistd.h>
#include <zlib.h>

#include "host/core/json.hpp"
#include "host/core/text.hpp"
#include "host/image/vips_io.hpp"

namespace fs = std::filesystem;

namespace monge::host {

namespace {

const std::set<std::string> kImageExtensions = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".pgm",
                                                 ".ppm", ".pbm", ".pnm", ".pfm", ".hdr", ".jxl", ".heic", ".heif",
                                                 ".avif", ".jp2", ".fits", ".v", ".bmp"};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_archive(const std::string& name) {
  const std::string n = lower(name);
  return ends_with(n, ".tar") || ends_with(n, ".tar.gz") || ends_with(n, ".tgz");
}

bool is_list(const std::string& name) {
  const std::string n = lower(name);
  return ends_with(n, ".txt") || ends_with(n, ".lst");
}

bool glob_match(const std::vector<std::string>& globs, const std::string& key) {
  const std::string base = fs::path(key).filename().string();
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
    return fnmatch(g.c_str(), key.c_str(), 0) == 0 || fnmatch(g.c_str(), base.c_str(), 0) == 0;
  });
}

bool wanted(const std::string& key, const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  if (!exclude.empty() && glob_match(exclude, key)) return false;
  if (!include.empty()) return glob_match(include, key);
  return kImageExtensions.count(lower(fs::path(key).extension().string())) > 0;
}

// A key must stay inside the output root: no absolute paths, no "..", no empty components.
bool safe_key(const std::string& key) {
  if (key.empty() || key[0] == '/') return false;
  for (const auto& part : fs::path(key))
    if (part == ".." || part.empty()) return false;
  return true;
}

int64_t octal(const char* p, size_t n) {
  int64_t v = 0;
  for (size_t i = 0; i < n && p[i]; ++i) {
    if (p[i] == ' ') continue;
    if (p[i] < '0' || p[i] > '7') break;
    v = v * 8 + (p[i] - '0');
  }
  return v;
}

// The largest GNU long-name or pax header read (their data is held in memory): names are at most
// PATH_MAX (4096) bytes, and pax records of other keys are skipped.
constexpr int64_t kMaxTarHeaderData = int64_t{1} << 20;

struct GzFile {
  gzFile f = nullptr;
  explicit GzFile(const fs::path& p) : f(gzopen(p.c_str(), "rb")) {}
  ~GzFile() {
    if (f) gzclose(f);
  }
  bool read(void* buf, size_t n) { return gzread(f, buf, unsigned(n)) == int(n); }
};

// The regular files of a tar archive (ustar, GNU long names, pax paths), with their offsets in
// the decompressed stream.
void list_tar(const fs::path& archive, const std::string& prefix, std::vector<BatchItem>& out,
              const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  GzFile gz(archive);
  if (!gz.f) throw Error(archive.string() + ": cannot open the archive");
  char h[512];
  std::string long_name;
  int64_t pos = 0;
  while (true) {
    if (!gz.read(h, 512)) throw Error(archive.string() + ": the archive is truncated (no end-of-archive block)");
    pos += 512;
    if (std::all_of(h, h + 512, [](char c) { return c == 0; })) break;
    unsigned sum = 0;
    for (int i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? unsigned(' ') : static_cast<unsigned char>(h[i]);
    if (int64_t(sum) != octal(h + 148, 8)) throw Error(archive.string() + ": not a tar archive, or corrupt (bad header checksum)");
    const int64_t size = octal(h + 124, 12);
    const char type = h[156];
    std::string name(h, strnlen(h, 100));
    if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = std::string(h + 345, strnlen(h + 345, 155)) + "/" + name;
    std::string data;
    if (type == 'L' || type == 'x') {  // GNU long name, pax extended header: read their data
      // Read into memory: bounded, so that a small archive cannot claim gigabytes here.
      if (size > kMaxTarHeaderData)
        throw Error(archive.string() + ": a long-name or pax header of " + std::to_string(size) +
                    " bytes (more than " + std::to_string(kMaxTarHeaderData) + "): not a tar archive monge reads, or corrupt");
      data.resize(size_t(size));
      if (size > 0 && !gz.read(data.data(), size_t(size))) throw Error(archive.string() + ": the archive is truncated");
      const int64_t pad = (512 - size % 512) % 512;
      if (pad) gzseek(gz.f, pad, SEEK_CUR);
      pos += size + pad;
      if (type == 'L') long_name = data.c_str();
      else {
        for (size_t at = 0; at < data.size();) {  // records "LEN key=value\n"
          const size_t sp = data.find(' ', at), nl = data.find('\n', at);
          if (sp == std::string::npos || nl == std::string::npos) break;
          const std::string rec = data.substr(sp + 1, nl - sp - 1);
          if (rec.rfind("path=", 0) == 0) long_name = rec.substr(5);
          at = nl + 1;
        }
      }
      continue;
    }
    if (!long_name.empty()) name = long_name, long_name.clear();
    const int64_t data_at = pos, padded = (size + 511) / 512 * 512;
    if (padded > 0 && gzseek(gz.f, padded, SEEK_CUR) < 0) throw Error(archive.string() + ": the archive is truncated");
    pos += padded;
    if (type != '0' && type != '\0') continue;  // directories, links, ...
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    const std::string key = prefix + name;
    if (!wanted(key, include, exclude)) continue;
    BatchItem it;
    it.key = key;
    it.archive = archive;
    it.offset = data_at;
    it.size = size;
    it.source = archive.string() + ":" + name;
    out.push_back(std::move(it));
  }
}

void add_file(const fs::path& file, const std::string& key, std::vector<BatchItem>& out) {
  BatchItem it;
  it.key = key;
  it.file = file;
  it.source = file.string();
  out.push_back(std::move(it));
}

// A manifest record of an earlier run.
struct Record {
  std::string status, output;
};

// Every manifest in `out` (all shards, all runs): the last record for each key.
std::map<std::string, Record> read_manifests(const fs::path& out) {
  std::map<std::string, Record> done;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(out, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("manifest", 0) == 0 && ends_with(n, ".jsonl")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) {
      const auto rec = json::parse_flat(line);
      if (!rec || !rec->count("key") || !rec->count("status")) continue;  // a torn line of a killed run
      Record& r = done[rec->at("key")];
      r.status = rec->at("status");
      r.output = rec->count("output") ? rec->at("output") : "";
    }
  }
  return done;
}

// Appends one line durably; a torn last line left by a killed run is closed off first.
class Manifest {
 public:
  explicit Manifest(const fs::path& file) : file_(file) {
    std::error_code ec;
    bool need_newline = false;
    if (fs::exists(file, ec) && fs::file_size(file, ec) > 0) {
      std::ifstream in(file, std::ios::binary);
      in.seekg(-1, std::ios::end);
      need_newline = in.get() != '\n';
    }
    f_ = std::fopen(file.c_str(), "a");
    if (!f_) throw Error(file.string() + ": cannot open the manifest for appending");
    if (need_newline) std::fputc('\n', f_);
  }
  ~Manifest() {
    if (f_) std::fclose(f_);
  }
  void append(const std::string& line) {
    std::fputs((line + "\n").c_str(), f_);
    std::fflush(f_);
    fsync(fileno(f_));
  }

 private:
  fs::path file_;
  FILE* f_ = nullptr;
};

std::string fmt_seconds(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.0f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

}  // namespace

int64_t shard_of(const std::string& key, int64_t count) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  return int64_t(h % uint64_t(std::max<int64_t>(1, count)));
}

Shard resolve_shard(const std::string& flag) {
  auto number = [](const std::string& text, const std::string& what) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') throw Error(what + " must be an integer, got '" + text + "'");
    return int64_t(v);
  };
  Shard s;
  if (!flag.empty()) {
    const auto slash = flag.find('/');
    if (slash == std::string::npos) throw Error("--shard must be I/N (0-based shard I of N), got '" + flag + "'");
    s.index = number(flag.substr(0, slash), "--shard I");
    s.count = number(flag.substr(slash + 1), "--shard N");
    s.from = "--shard";
  } else {
    const char* pairs[][2] = {{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"},
                              {"SLURM_PROCID", "SLURM_NTASKS"},
                              {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                              {"RANK", "WORLD_SIZE"}};
    for (const auto& p : pairs) {
      const char* i = std::getenv(p[0]);
      const char* n = std::getenv(p[1]);
      if (!i || !n) continue;
      s.index = number(i, p[0]);
      s.count = number(n, p[1]);
      if (std::string(p[0]) == "SLURM_ARRAY_TASK_ID")
        if (const char* min = std::getenv("SLURM_ARRAY_TASK_MIN")) s.index -= number(min, "SLURM_ARRAY_TASK_MIN");
      s.from = std::string(p[0]) + "/" + p[1];
      break;
    }
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw Error("shard " + std::to_string(s.index) + "/" + std::to_string(s.count) + " (from " + s.from +
                ") is out of range: the index must be 0 .. count-1");
  return s;
}

std::vector<BatchItem> list_inputs(const std::vector<std::string>& inputs, const std::vector<std::string>& include,
                                   const std::vector<std::string>& exclude) {
  if (inputs.empty()) throw Error("batch: give at least one input (a folder, a list file, a tar archive or an image)");
  std::vector<BatchItem> out;
  std::error_code ec;
  const bool several = inputs.size() > 1;
  for (const std::string& raw : inputs) {
    const bool forced_list = !raw.empty() && raw[0] == '@';
    const fs::path in = forced_list ? fs::path(raw.substr(1)) : fs::path(raw);
    if (!fs::exists(in, ec)) throw Error("batch: input " + in.string() + " does not exist");
    // With several inputs, each one's outputs go under its own name so that they cannot collide.
    const std::string prefix = several ? in.filename().string() + "/" : "";
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) throw Error("batch: cannot walk " + in.string() + " (" + ec.message() + ")");
        if (it->is_regular_file(ec)) files.push_back(it->path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        const std::string key = prefix + fs::relative(f, in, ec).string();
        if (wanted(key, include, exclude)) add_file(f, key, out);
      }
    } else if (forced_list || is_list(in.string())) {
      std::ifstream list(in);
      if (!list) throw Error("batch: cannot read the list file " + in.string());
      std::string line;
      while (std::getline(list, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        const fs::path p = fs::path(line).is_absolute() ? fs::path(line) : in.parent_path() / line;
        std::string key = fs::path(line).is_absolute() ? fs::path(line).relative_path().string() : fs::path(line).lexically_normal().string();
        add_file(p, prefix + key, out);
      }
    } else if (is_archive(in.string())) {
      list_tar(in, prefix, out, include, exclude);
    } else {
      add_file(in, in.filename().string(), out);
    }
  }
  if (out.empty())
    throw Error("batch: no images found in " + inputs.front() + (inputs.size() > 1 ? " and the other inputs" : "") +
                (include.empty() ? " (by extension; use --include to choose files)" : " matching --include"));
  std::set<std::string> seen;
  for (const auto& it : out)
    if (!seen.insert(it.key).second) throw Error("batch: two inputs would write the same output " + it.key);
  return out;
}

BatchReport run_batch(const LoadedMap& map, const std::vector<std::string>& inputs, const BatchOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::create_directories(opt.out, ec);
  if (!fs::is_directory(opt.out, ec)) throw Error("batch: cannot create the output folder " + opt.out.string());
  if (access(opt.out.c_str(), W_OK) != 0) throw Error("batch: the output folder " + opt.out.string() + " is not writable");
  const std::vector<BatchItem> items = list_inputs(inputs, opt.include, opt.exclude);
  BatchReport rep;
  rep.found = int64_t(items.size());
  rep.manifest = opt.out / (opt.shard.count > 1 ? "manifest.shard-" + std::to_string(opt.shard.index) + "-of-" +
                                                      std::to_string(opt.shard.count) + ".jsonl"
                                                : std::string("manifest.jsonl"));
  const auto before = read_manifests(opt.out);
  std::string ext, save_options;
  if (!opt.format.empty()) {
    std::tie(ext, save_options) = image::split_save_options(opt.format);
    ext = "." + ext;
  }

  // This shard's work, and what earlier runs already finished.
  std::vector<const BatchItem*> todo;
  double total_mpix = 0;
  for (const BatchItem& it : items) {
    if (shard_of(it.key, opt.shard.count) != opt.shard.index) continue;
    ++rep.mine;
    fs::path output = opt.out / it.key;
    if (!ext.empty()) output.replace_extension(ext);
    const auto prev = before.find(it.key);
    if (prev != before.end()) {
      if (prev->second.status == "ok" && fs::exists(opt.out / prev->second.output, ec)) {
        ++rep.already;
        continue;
      }
      if (prev->second.status == "error" && !opt.retry_failed) {
        ++rep.failed_before;
        continue;
      }
    }
    todo.push_back(&it);
    if (!it.file.empty()) {
      try {
        const auto h = image::header(it.file);
        total_mpix += double(h.width * h.height) / 1e6;
      } catch (const Error&) {
      }
    }
  }
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (opt.progress)
    std::cerr << "batch: " << rep.found << " input(s), " << rep.mine << " in shard " << opt.shard.index << "/"
              << opt.shard.count << " (" << opt.shard.from << "), " << rep.already << " already done, "
              << rep.failed_before << " failed before" << (rep.failed_before ? " (--retry-failed redoes them)" : "")
              << ", " << todo.size() << " to do\n";

  Manifest manifest(rep.manifest);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  double done_mpix = 0;
  for (size_t n = 0; n < todo.size(); ++n) {
    const BatchItem& it = *todo[n];
    fs::path output = opt.out / it.key;
    if (!ext.empty()) output.replace_extension(ext);
    const auto start = std::chrono::steady_clock::now();
    std::string status = "ok", error;
    StreamReport r;
    fs::path extracted;
    try {
      if (!safe_key(it.key)) throw Error("unsafe path " + it.key + " (absolute or with '..'): not written outside " + opt.out.string());
      fs::create_directories(output.parent_path(), ec);
      // What an interrupted earlier attempt at this output left behind (the output is this shard's
      // alone, so any age): its temporary and its extracted archive member.
      const fs::path member_target = output.parent_path() / (output.stem().string() + ".input" + fs::path(it.key).extension().string());
      remove_stale_temporaries(output, 0);
      remove_stale_temporaries(member_target, 0);
      fs::path input = it.file;
      std::optional<Temporary> member;
      if (!it.archive.empty()) {  // an archive member: copied to a hidden file beside the output
        member.emplace(member_target);
        extracted = member->path();
        GzFile gz(it.archive);
        if (!gz.f || gzseek(gz.f, it.offset, SEEK_SET) < 0) throw Error("cannot read " + it.source);
        std::ofstream x(extracted, std::ios::binary);
        std::vector<char> buf(1 << 20);
        for (int64_t left = it.size; left > 0;) {
          const size_t chunk = size_t(std::min<int64_t>(left, int64_t(buf.size())));
          if (!gz.read(buf.data(), chunk)) throw Error(it.source + ": the archive is truncated");
          x.write(buf.data(), std::streamsize(chunk));
          left -= int64_t(chunk);
        }
        if (!x) throw Error("cannot write a temporary copy of " + it.source + " in " + output.parent_path().string());
        input = extracted;
      }
      StreamOptions so = opt.apply;
      so.progress = false;
      r = apply_stream(map, input, output.string() + save_options, so);
    } catch (const std::exception& e) {
      status = "error";
      error = e.what();
      if (!extracted.empty()) {  // name the member, not the temporary copy
        for (size_t at; (at = error.find(extracted.string())) != std::string::npos;) error.replace(at, extracted.string().size(), it.source);
      }
    }
    if (!extracted.empty()) fs::remove(extracted, ec);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::ostringstream line;
    line << "{\"key\": " << json::quote(it.key) << ", \"input\": " << json::quote(it.source)
         << ", \"output\": " << json::quote(fs::relative(output, opt.out, ec).string()) << ", \"status\": \"" << status
         << "\", \"error\": " << (error.empty() ? "null" : json::quote(error)) << ", \"seconds\": " << secs
         << ", \"width\": " << r.in_width << ", \"height\": " << r.in_height << ", \"out_width\": " << r.out_width
         << ", \"out_height\": " << r.out_height << ", \"shard\": \"" << opt.shard.index << "/" << opt.shard.count
         << "\", \"host\": " << json::quote(host) << ", \"pid\": " << getpid() << ", \"time\": " << std::time(nullptr) << "}";
    manifest.append(line.str());
    (status == "ok" ? rep.ok : rep.failed) += 1;
    const double mpix = double(r.in_width * r.in_height) / 1e6;
    done_mpix += mpix, rep.mpix += double(r.out_width * r.out_height) / 1e6;
    if (opt.progress) {
      const double run = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double frac = total_mpix > 0 ? std::min(1.0, done_mpix / total_mpix) : double(n + 1) / double(todo.size());
      const double eta = frac > 0 ? run * (1 - frac) / frac : 0;
      char msg[256];
      std::snprintf(msg, sizeof msg, "batch: %zu/%zu files (%lld failed), %.1f/%.1f MPix, %.2f files/s, %.2f MPix/s, ETA %s",
                    n + 1, todo.size(), static_cast<long long>(rep.failed), done_mpix, total_mpix, double(n + 1) / run,
                    done_mpix / run, fmt_seconds(eta).c_str());
      if (status != "ok") std::cerr << (tty ? "\r\033[K" : "") << "batch: failed: " << error << "\n";
      if (tty) std::cerr << "\r\033[K" << msg << std::flush;
      else std::cerr << msg << "\n";
    }
  }
  if (opt.progress && tty) std::cerr << "\n";
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace monge::host
