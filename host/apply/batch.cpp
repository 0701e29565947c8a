#include "host/apply/batch.hpp"

#include "host/core/temp_files.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#ifdef MONGE_WITH_VIPS  // libarchive comes with image I/O (a training-only build has neither)
#include <archive.h>
#include <archive_entry.h>
#endif
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/core/json_text.hpp"
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
  for (const char* ext : {".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.bz2", ".tbz2", ".tbz", ".zip"})
    if (ends_with(n, ext)) return true;
  return false;
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

std::atomic<int64_t> g_archive_opens{0}, g_archive_bytes{0};

// Shortens a name for a message or a key (a hostile archive may name a member with 1 MiB).
std::string shown_name(const std::string& name, size_t keep = 200) {
  if (name.size() <= keep) return name;
  return name.substr(0, keep) + "... (" + std::to_string(name.size()) + " bytes)";
}

std::string byte_count(int64_t n) {
  char buf[64];
  if (n >= (int64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%lld bytes (%.1f GiB)", static_cast<long long>(n), double(n) / double(1 << 30));
  else std::snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(n));
  return buf;
}

// One archive entry as libarchive's header describes it.
struct Entry {
  enum Kind { Regular, Directory, Symlink, Hardlink, Other };
  int64_t index = -1;   // position among the archive's entries, counting every header
  std::string name;     // as stored (raw bytes), with leading "./" removed
  Kind kind = Other;
  std::string link;     // the target of a link
  int64_t size = -1;    // -1: not declared
  std::string warning;  // what libarchive found wrong in the header ("" when nothing)
};

#ifdef MONGE_WITH_VIPS
// An archive read front to back, once, by libarchive: tar (ustar, pax, GNU, v7) and zip, plain or
// compressed with gzip, xz, zstd or bzip2. Only decompressors built into libarchive are enabled:
// none that would run an external program. The file is read through our own callbacks so that
// the bytes read can be counted.
class ArchiveReader {
 public:
  explicit ArchiveReader(const fs::path& path) : path_(path), buffer_(1 << 16) {
    try {
      open();
    } catch (...) {
      close();
      throw;
    }
  }
  ~ArchiveReader() { close(); }
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  const fs::path& path() const { return path_; }
  // The last entry reached (-1 before the first).
  int64_t index() const { return index_; }
  // Set once the archive cannot be read any further.
  const std::string& broken() const { return broken_; }

  // The next entry's header (its data, if unread, is skipped); false at the end of the archive.
  // Throws monge::Error, and the reader is broken, when the archive cannot be read further.
  bool next(Entry& e) {
    if (!broken_.empty()) throw Error(broken_);
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(a_, &entry);
    if (r == ARCHIVE_EOF) return false;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail("cannot read the header after " + after());
    e = Entry{};
    e.index = ++index_;
    const char* name = archive_entry_pathname(entry);
    if (!name) name = archive_entry_pathname_utf8(entry);
    e.name = name ? name : "";
    while (e.name.rfind("./", 0) == 0) e.name.erase(0, 2);
    // A name that is not valid in the C locale is only a warning (EILSEQ): the raw bytes are kept.
    if (r == ARCHIVE_WARN && archive_errno(a_) != EILSEQ) e.warning = error_text();
    if (const char* hard = archive_entry_hardlink(entry)) {
      e.kind = Entry::Hardlink, e.link = hard;
    } else {
      switch (archive_entry_filetype(entry)) {
        case AE_IFREG: e.kind = Entry::Regular; break;
        case AE_IFDIR: e.kind = Entry::Directory; break;
        case AE_IFLNK:
          e.kind = Entry::Symlink;
          if (const char* target = archive_entry_symlink(entry)) e.link = target;
          break;
        default: e.kind = Entry::Other;
      }
    }
    if (archive_entry_size_is_set(entry)) e.size = archive_entry_size(entry);
    last_name_ = e.name;
    return true;
  }

  // Reads past the current entry's data (a seek where the file allows).
  void skip() {
    if (archive_read_data_skip(a_) != ARCHIVE_OK) fail("cannot read past " + after());
  }

  // Writes the current entry's data to `file` (an existing, empty file), at most `cap` bytes.
  // Throws monge::Error: for this member only, or, when the archive cannot be read further, for
  // it and every later member (broken()).
  void extract(const fs::path& file, int64_t cap) {
    const int out = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (out < 0) throw Error("cannot write a temporary copy in " + file.parent_path().string() + " (" + std::strerror(errno) + ")");
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{out};
    std::vector<char> buf(1 << 20);
    for (int64_t total = 0;;) {
      const la_ssize_t n = archive_read_data(a_, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        if (n == ARCHIVE_FATAL) fail("cannot read the data of " + after());
        throw Error("cannot read the member's data (" + error_text() + ")");
      }
      total += int64_t(n);
      if (total > cap)
        throw Error("the member holds more than the " + byte_count(cap) +
                    " an archive member may have (extract it and give the file itself)");
      for (la_ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(out, buf.data() + done, size_t(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw Error("cannot write a temporary copy in " + file.parent_path().string() + " (" + std::strerror(errno) + ")");
        done += w;
      }
    }
  }

 private:
  void open() {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(path_.string() + ": cannot open the archive (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) seekable_ = true, file_size_ = int64_t(st.st_size);
    a_ = archive_read_new();
    if (!a_) throw Error(path_.string() + ": cannot start libarchive (out of memory)");
    struct Support {
      int (*enable)(struct archive*);
      const char* what;
    };
    const Support support[] = {{archive_read_support_format_tar, "tar"},   {archive_read_support_format_zip, "zip"},
                               {archive_read_support_filter_gzip, "gzip"}, {archive_read_support_filter_xz, "xz"},
                               {archive_read_support_filter_zstd, "zstd"}, {archive_read_support_filter_bzip2, "bzip2"}};
    for (const auto& s : support)
      if (s.enable(a_) != ARCHIVE_OK)  // ARCHIVE_WARN: only through an external program
        throw Error(path_.string() + ": this libarchive cannot read " + s.what + " by itself (" + error_text() + ")");
    archive_read_set_callback_data(a_, this);
    archive_read_set_read_callback(a_, &ArchiveReader::read_callback);
    archive_read_set_skip_callback(a_, &ArchiveReader::skip_callback);
    if (seekable_) archive_read_set_seek_callback(a_, &ArchiveReader::seek_callback);
    ++g_archive_opens;
    if (archive_read_open1(a_) != ARCHIVE_OK)
      throw Error(path_.string() + ": not a tar or zip archive, or damaged (" + error_text() + ")");
  }
  void close() {
    if (a_) archive_read_free(a_);
    if (fd_ >= 0) ::close(fd_);
    a_ = nullptr, fd_ = -1;
  }
  std::string error_text() const {
    const char* e = archive_error_string(a_);
    return e ? e : "unknown error";
  }
  // Where the archive stands, for messages: "member 3 (x.png)", counted from 1.
  std::string after() const {
    return index_ < 0 ? "the start" : "member " + std::to_string(index_ + 1) + " (" + shown_name(last_name_) + ")";
  }
  [[noreturn]] void fail(const std::string& what) {
    broken_ = path_.string() + ": damaged or truncated archive: " + what + " (" + error_text() + ")";
    throw Error(broken_);
  }

  static la_ssize_t read_callback(struct archive* a, void* self, const void** block) {
    auto* r = static_cast<ArchiveReader*>(self);
    for (;;) {
      const ssize_t n = ::read(r->fd_, r->buffer_.data(), r->buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        archive_set_error(a, errno, "read error: %s", std::strerror(errno));
        return ARCHIVE_FATAL;
      }
      g_archive_bytes += n;
      *block = r->buffer_.data();
      return n;
    }
  }
  // Skips by seeking, never past the end of the file (libarchive then reads, finds the end and
  // reports the archive as truncated). 0: not seekable, libarchive reads instead.
  static la_int64_t skip_callback(struct archive*, void* self, la_int64_t request) {
    auto* r = static_cast<ArchiveReader*>(self);
    if (!r->seekable_ || request <= 0) return 0;
    const off_t at = ::lseek(r->fd_, 0, SEEK_CUR);
    if (at < 0) return 0;
    const la_int64_t n = std::min<la_int64_t>(request, std::max<la_int64_t>(0, r->file_size_ - int64_t(at)));
    return ::lseek(r->fd_, off_t(n), SEEK_CUR) < 0 ? 0 : n;
  }
  static la_int64_t seek_callback(struct archive*, void* self, la_int64_t offset, int whence) {
    auto* r = static_cast<ArchiveReader*>(self);
    const off_t at = ::lseek(r->fd_, off_t(offset), whence);
    return at < 0 ? ARCHIVE_FATAL : la_int64_t(at);
  }

  fs::path path_;
  std::vector<char> buffer_;
  int fd_ = -1;
  bool seekable_ = false;
  int64_t file_size_ = 0;
  struct archive* a_ = nullptr;
  int64_t index_ = -1;
  std::string last_name_, broken_;
};

#else
// A training-only build (MONGE_WITH_VIPS=OFF) has no libarchive, and no image I/O to restore
// members with: every archive is an error record.
class ArchiveReader {
 public:
  explicit ArchiveReader(const fs::path& path) : path_(path) {
    throw Error(path.string() + ": this monge was built without libvips and libarchive (MONGE_WITH_VIPS=OFF); archives cannot be read");
  }
  const fs::path& path() const { return path_; }
  int64_t index() const { return -1; }
  const std::string& broken() const { return broken_; }
  bool next(Entry&) { return false; }
  void skip() {}
  void extract(const fs::path&, int64_t) {}

 private:
  fs::path path_;
  std::string broken_;
};
#endif

// What a manifest record says about a member that is not restored ("" for one that is).
std::string member_problem(const Entry& e) {
  if (!e.warning.empty()) return "the member's header is damaged (" + e.warning + ")";
  if (e.name.size() > kMaxMemberNameBytes)
    return "a member name of " + std::to_string(e.name.size()) + " bytes, over the limit of " + std::to_string(kMaxMemberNameBytes);
  switch (e.kind) {
    case Entry::Symlink: return "a symbolic link (to " + shown_name(e.link) + "): links are not followed";
    case Entry::Hardlink: return "a hard link (to " + shown_name(e.link) + "): links are not followed";
    case Entry::Other: return "not a regular file (a device, a FIFO or a socket): only regular files are images";
    default: break;
  }
  if (e.size > kMaxMemberBytes)
    return "a member of " + byte_count(e.size) + ", over the limit of " + byte_count(kMaxMemberBytes) +
           " per archive member (extract it and give the file itself)";
  return "";
}

// The key of the record for an archive that cannot be read (to its end): its own name.
std::string archive_key(const fs::path& archive, const std::string& prefix) {
  return prefix.empty() ? archive.filename().string() : prefix.substr(0, prefix.size() - 1);
}

// The members of an archive, read by their headers only: regular files become items, links,
// over-size members and the like become records; an archive that cannot be read to its end adds
// one record for itself, after the members read before the damage.
void list_archive(const fs::path& archive, const std::string& prefix, std::vector<BatchItem>& out,
                  const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  try {
    ArchiveReader reader(archive);
    for (Entry e; reader.next(e);) {
      if (e.kind != Entry::Directory && !e.name.empty() && wanted(prefix + e.name, include, exclude)) {
        BatchItem it;
        const std::string name = e.name.size() > kMaxMemberNameBytes ? shown_name(e.name) : e.name;
        it.key = prefix + name;
        it.archive = archive;
        it.member = e.index;
        it.size = e.size;
        it.source = archive.string() + ":" + name;
        if (const std::string problem = member_problem(e); !problem.empty()) it.error = it.source + ": " + problem;
        out.push_back(std::move(it));
      }
      reader.skip();
    }
  } catch (const Error& e) {
    BatchItem it;
    it.key = archive_key(archive, prefix);
    it.source = archive.string();
    it.error = std::string(e.what()) + "; the members after that point are not restored";
    out.push_back(std::move(it));
  }
}

// Gives each wanted archive member to the batch in listing order, reading each archive once,
// front to back. (A member asked for out of order reopens the archive; batch never does.)
class ArchiveWalk {
 public:
  // Copies the member `it` into `file`. Throws monge::Error (this member failed).
  void extract(const BatchItem& it, const fs::path& file) {
    if (!reader_ || reader_->path() != it.archive || reader_->index() >= it.member) {
      reader_.reset();
      reader_ = std::make_unique<ArchiveReader>(it.archive);
    }
    if (!reader_->broken().empty()) throw Error("not read: " + reader_->broken());
    Entry e;
    while (reader_->index() < it.member)
      if (!reader_->next(e))
        throw Error(it.archive.string() + ": the archive ended before this member (was it changed since the batch listed it?)");
    if (it.archive.string() + ":" + e.name != it.source)
      throw Error(it.archive.string() + ": member " + std::to_string(it.member + 1) + " is now " + shown_name(e.name) +
                  " (the archive changed since the batch listed it)");
    reader_->extract(file, kMaxMemberBytes);
  }

 private:
  std::unique_ptr<ArchiveReader> reader_;
};

void add_file(const fs::path& file, const std::string& key, std::vector<BatchItem>& out) {
  BatchItem it;
  it.key = key;
  it.file = file;
  it.source = file.string();
  out.push_back(std::move(it));
}

constexpr const char* kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Every manifest in `out` (all shards, all runs): the last record for each key.
std::map<std::string, ManifestRecord> read_manifests(const fs::path& out) {
  std::map<std::string, ManifestRecord> done;
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
      auto rec = parse_manifest_line(line);
      // A key with U+FFFD may have been written for a name that was not UTF-8 (json_text puts
      // U+FFFD for such bytes): it could stand for another file than the one it spells, so its
      // file is done again rather than skipped, as when such lines were not JSON at all.
      if (rec && rec->key.find(kReplacementCharacter) == std::string::npos) done[rec->key] = std::move(*rec);
    }
  }
  return done;
}

// Appends lines; a torn last line left by a killed run is closed off first. Each line reaches the
// kernel at once (a killed process loses none); it is flushed to disk (fsync) at most once a second
// and when the manifest closes, so a machine that goes down loses at most the last second's
// records, whose files a resumed run restores again (outputs are written by renaming a whole file,
// so none is left half-written). A batch of small images finishes ~50 files a second per process.
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
    if (!f_) return;
    std::fflush(f_);
    fsync(fileno(f_));
    std::fclose(f_);
  }
  void append(const std::string& line) {
    std::fputs((line + "\n").c_str(), f_);
    std::fflush(f_);
    const auto now = std::chrono::steady_clock::now();
    if (now - synced_ >= std::chrono::seconds(1)) {
      fsync(fileno(f_));
      synced_ = now;
    }
  }

 private:
  fs::path file_;
  FILE* f_ = nullptr;
  std::chrono::steady_clock::time_point synced_{};
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

namespace {

// The files below a folder, sorted; symbolic links and other non-regular files become records.
void list_folder(const fs::path& in, const std::string& prefix, std::vector<BatchItem>& out,
                 const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  std::error_code ec;
  std::vector<std::pair<fs::path, std::string>> files;  // path, why it is not restored
  for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("batch: cannot walk " + in.string() + " (" + ec.message() + ")");
    std::error_code ec2;
    if (it->is_symlink(ec2)) {  // (the walk does not enter linked folders either)
      const fs::path target = fs::read_symlink(it->path(), ec2);
      files.emplace_back(it->path(), "a symbolic link (to " + shown_name(target.string()) +
                                         "): links inside an input folder are not followed (give the target itself)");
    } else if (it->is_regular_file(ec2)) {
      files.emplace_back(it->path(), "");
    } else if (!it->is_directory(ec2)) {
      files.emplace_back(it->path(), "not a regular file (a device, a FIFO or a socket): only regular files are images");
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& [f, problem] : files) {
    const std::string key = prefix + f.lexically_relative(in).string();
    if (!wanted(key, include, exclude)) continue;
    add_file(f, key, out);
    if (!problem.empty()) out.back().error = f.string() + ": " + problem;
  }
}

// Every input after the first with the same key is a record ("duplicate of ..."), under a key of
// its own ("KEY (duplicate N)", never an input's key) so that its record and the first's stay apart
// in the manifest.
void mark_duplicates(std::vector<BatchItem>& items) {
  std::set<std::string> keys;
  for (const auto& it : items) keys.insert(it.key);
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < items.size(); ++i) {
    BatchItem& it = items[i];
    const auto [at, fresh] = first.emplace(it.key, i);
    if (fresh) continue;
    const BatchItem& owner = items[at->second];
    if (it.error.empty())
      it.error = it.source + ": a duplicate of " + owner.source + " (both are " + shown_name(it.key) + "): only the first is restored";
    for (int n = 2;; ++n) {
      const std::string key = it.key + " (duplicate " + std::to_string(n) + ")";
      if (!keys.count(key)) {
        keys.insert(key);
        first.emplace(key, i);
        it.key = key;
        break;
      }
    }
  }
}

fs::path output_of(const BatchItem& it, const fs::path& out, const std::string& ext) {
  fs::path output = out / it.key;
  if (!ext.empty()) output.replace_extension(ext);
  return output;
}

// Refuses, before any work and over every shard's inputs (so that all shards agree), the inputs
// whose output would leave `out`, would be shared with another input, or would replace an input.
void check_outputs(std::vector<BatchItem>& items, const fs::path& out, const std::string& ext) {
  std::vector<fs::path> outputs(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    BatchItem& it = items[i];
    if (!it.error.empty()) continue;
    if (!safe_key(it.key))
      it.error = it.source + ": unsafe path " + it.key + " (absolute or with '..'): not written outside " + out.string();
    else
      outputs[i] = output_of(it, out, ext).lexically_normal();
  }
  // Two inputs, one output: neither is restored; each record names the other(s).
  std::map<std::string, std::vector<size_t>> by_output;
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].error.empty()) by_output[outputs[i].string()].push_back(i);
  for (const auto& [output, group] : by_output) {
    if (group.size() < 2) continue;
    for (size_t i : group) {
      std::string others;
      for (size_t j : group)
        if (j != i) others += (others.empty() ? "" : ", ") + items[j].source;
      items[i].error = items[i].source + ": " + others + " would be written to the same output " +
                       fs::path(output).lexically_relative(out.lexically_normal()).string() +
                       "; neither is restored (rename one, or choose another --format or --out)";
    }
  }
  // An output that is an input file (the same path, or the same file through a link).
  std::map<std::pair<dev_t, ino_t>, std::string> inputs;
  struct stat st {};
  for (const auto& it : items) {
    if (!it.file.empty() && ::stat(it.file.c_str(), &st) == 0) inputs.emplace(std::make_pair(st.st_dev, st.st_ino), it.source);
    if (!it.archive.empty() && ::stat(it.archive.c_str(), &st) == 0)
      inputs.emplace(std::make_pair(st.st_dev, st.st_ino), it.archive.string());
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].error.empty() || ::stat(outputs[i].c_str(), &st) != 0) continue;
    const auto hit = inputs.find({st.st_dev, st.st_ino});
    if (hit == inputs.end()) continue;
    items[i].error = items[i].source + ": the output " + outputs[i].string() + " would overwrite the input" +
                     (hit->second == items[i].source ? std::string() : " " + hit->second) +
                     "; not restored (choose another --out or --format)";
  }
}

std::string manifest_line(const BatchItem& it, const std::string& output, const std::string& status, const std::string& error,
                          double secs, const StreamReport& r, const Shard& shard, Precision precision) {
  static const std::string host = [] {
    char name[256] = "";
    gethostname(name, sizeof name - 1);
    return std::string(name);
  }();
  const auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s); };
  return json_text::dump({{"key", it.key},
                          {"input", it.source},
                          {"output", text_or_null(output)},
                          {"status", status},
                          {"error", text_or_null(error)},
                          {"seconds", json_text::number(secs, 6)},
                          {"width", r.in_width},
                          {"height", r.in_height},
                          {"out_width", r.out_width},
                          {"out_height", r.out_height},
                          {"precision", precision_name(precision)},
                          {"shard", std::to_string(shard.index) + "/" + std::to_string(shard.count)},
                          {"host", host},
                          {"pid", getpid()},
                          {"time", std::time(nullptr)}});
}

}  // namespace

std::optional<ManifestRecord> parse_manifest_line(const std::string& line) {
  // Without exceptions: malformed text comes back discarded. The parser is iterative, so deep
  // nesting costs memory bounded by the line's length, not stack.
  const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  for (const auto& member : j)
    if (member.is_structured()) return std::nullopt;  // monge writes flat records only
  const auto key = j.find("key"), status = j.find("status"), output = j.find("output");
  if (key == j.end() || !key->is_string() || status == j.end() || !status->is_string()) return std::nullopt;
  ManifestRecord rec;
  rec.key = key->get<std::string>();
  rec.status = status->get<std::string>();
  if (output != j.end() && output->is_string()) rec.output = output->get<std::string>();
  return rec;
}

ArchiveReads archive_reads() { return ArchiveReads{g_archive_opens.load(), g_archive_bytes.load()}; }

std::vector<BatchItem> list_inputs(const std::vector<std::string>& inputs, const std::vector<std::string>& include,
                                   const std::vector<std::string>& exclude) {
  if (inputs.empty()) throw Error("batch: give at least one input (a folder, a list file, an archive or an image)");
  std::vector<BatchItem> out;
  std::error_code ec;
  const bool several = inputs.size() > 1;
  for (const std::string& raw : inputs) {
    const bool forced_list = !raw.empty() && raw[0] == '@';
    fs::path in = forced_list ? fs::path(raw.substr(1)) : fs::path(raw);
    if (!fs::exists(in, ec)) throw Error("batch: input " + in.string() + " does not exist");
    if (!in.has_filename() && in.has_parent_path()) in = in.parent_path();  // "scans/" names scans
    // With several inputs, each one's outputs go under its own name so that they cannot collide.
    const std::string prefix = several ? in.filename().string() + "/" : "";
    if (fs::is_directory(in, ec)) {
      list_folder(in, prefix, out, include, exclude);
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
      list_archive(in, prefix, out, include, exclude);
    } else {
      add_file(in, in.filename().string(), out);
    }
  }
  if (out.empty())
    throw Error("batch: no images found in " + inputs.front() + (inputs.size() > 1 ? " and the other inputs" : "") +
                (include.empty() ? " (by extension; use --include to choose files)" : " matching --include"));
  mark_duplicates(out);
  return out;
}

namespace {

void prepare_out(const fs::path& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (!fs::is_directory(out, ec)) throw Error("batch: cannot create the output folder " + out.string());
  if (access(out.c_str(), W_OK) != 0) throw Error("batch: the output folder " + out.string() + " is not writable");
}

// What an earlier run wrote (recorded ok) is not an input: with --out inside an input folder,
// last run's outputs would come back as new inputs, each refused as overwriting itself.
void drop_earlier_outputs(std::vector<BatchItem>& items, const std::map<std::string, ManifestRecord>& before,
                          const fs::path& out) {
  std::error_code ec;
  std::set<std::string> written;
  for (const auto& [key, rec] : before)
    if (rec.status == "ok") written.insert(fs::absolute(out / rec.output, ec).lexically_normal().string());
  items.erase(std::remove_if(items.begin(), items.end(),
                             [&](const BatchItem& it) {
                               return !it.file.empty() && written.count(fs::absolute(it.file, ec).lexically_normal().string());
                             }),
              items.end());
}

fs::path manifest_path(const BatchOptions& opt) {
  return opt.out / (opt.shard.count > 1 ? "manifest.shard-" + std::to_string(opt.shard.index) + "-of-" +
                                              std::to_string(opt.shard.count) + ".jsonl"
                                        : std::string("manifest.jsonl"));
}

// This shard's work, the records of inputs refused before any work, and the size of the work.
struct Work {
  std::vector<const BatchItem*> todo, refused;
  double total_mpix = 0;  // of the inputs to do whose header could be read
};

// Sorts this shard's items into work to do and refused inputs, skipping what earlier runs already
// finished (and, without --retry-failed, what they failed); counts them in `rep`.
Work plan_work(const std::vector<BatchItem>& items, const std::map<std::string, ManifestRecord>& before,
               const BatchOptions& opt, BatchReport& rep) {
  std::error_code ec;
  Work work;
  for (const BatchItem& it : items) {
    if (shard_of(it.key, opt.shard.count) != opt.shard.index) continue;
    ++rep.mine;
    const auto prev = before.find(it.key);
    if (prev != before.end()) {
      if (it.error.empty() && prev->second.status == "ok" && fs::exists(opt.out / prev->second.output, ec)) {
        ++rep.already;
        continue;
      }
      if (prev->second.status == "error" && !opt.retry_failed) {
        ++rep.failed_before;
        continue;
      }
    }
    if (!it.error.empty()) {
      work.refused.push_back(&it);
      continue;
    }
    work.todo.push_back(&it);
    if (!it.file.empty()) {
      try {
        const auto h = image::header(it.file);
        work.total_mpix += double(h.width * h.height) / 1e6;
      } catch (const Error&) {
      }
    }
  }
  return work;
}

// One item's result, as its manifest line records it.
struct Outcome {
  std::string status = "ok", error;
  StreamReport report;
};

// Restores one item into `output`; an archive member is first copied to a hidden file beside the
// output. A failure becomes the outcome's error, naming the input.
Outcome restore_item(const LoadedMap& map, const BatchItem& it, const fs::path& output, const std::string& save_options,
                     const BatchOptions& opt, Precision precision, ArchiveWalk& archives) {
  Outcome o;
  fs::path extracted;
  try {
    std::error_code ec;
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
      archives.extract(it, extracted);
      input = extracted;
    }
    StreamOptions so = opt.apply;
    so.progress = false;
    so.tiles.precision = precision;
    o.report = apply_stream(map, input, output.string() + save_options, so);
  } catch (const std::exception& e) {
    o.status = "error";
    o.error = e.what();
    if (!extracted.empty()) {  // name the member, not the temporary copy
      for (size_t at; (at = o.error.find(extracted.string())) != std::string::npos;)
        o.error.replace(at, extracted.string().size(), it.source);
    }
    if (o.error.find(it.source) == std::string::npos) o.error = it.source + ": " + o.error;
  }
  return o;
}

// The progress of the batch after its n-th item (1-based); a failure on a line of its own.
void progress_line(size_t n, const Work& work, double done_mpix, const BatchReport& rep, const Outcome& o,
                   std::chrono::steady_clock::time_point t0, bool tty) {
  const size_t todo = work.todo.size();
  const double run = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double frac = work.total_mpix > 0 ? std::min(1.0, done_mpix / work.total_mpix) : double(n) / double(todo);
  const double eta = frac > 0 ? run * (1 - frac) / frac : 0;
  char msg[256];
  std::snprintf(msg, sizeof msg, "batch: %zu/%zu files (%lld failed), %.1f/%.1f MPix, %.2f files/s, %.2f MPix/s, ETA %s",
                n, todo, static_cast<long long>(rep.failed), done_mpix, work.total_mpix, double(n) / run,
                done_mpix / run, fmt_seconds(eta).c_str());
  if (o.status != "ok") std::cerr << (tty ? "\r\033[K" : "") << "batch: failed: " << o.error << "\n";
  if (tty) std::cerr << "\r\033[K" << msg << std::flush;
  else std::cerr << msg << "\n";
}

}  // namespace

BatchReport run_batch(const LoadedMap& map, const std::vector<std::string>& inputs, const BatchOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const Precision precision = resolve_precision(opt.apply.tiles.precision, opt.apply.device, "batch");
  prepare_out(opt.out);
  std::vector<BatchItem> items = list_inputs(inputs, opt.include, opt.exclude);
  const auto before = read_manifests(opt.out);
  drop_earlier_outputs(items, before, opt.out);
  BatchReport rep;
  rep.found = int64_t(items.size());
  rep.precision = precision;
  rep.manifest = manifest_path(opt);
  std::string ext, save_options;
  if (!opt.format.empty()) {
    std::tie(ext, save_options) = image::split_save_options(opt.format);
    ext = "." + ext;
  }
  check_outputs(items, opt.out, ext);

  const Work work = plan_work(items, before, opt, rep);
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (opt.progress)
    std::cerr << "batch: " << rep.found << " input(s), " << rep.mine << " in shard " << opt.shard.index << "/"
              << opt.shard.count << " (" << opt.shard.from << "), " << rep.already << " already done, "
              << rep.failed_before << " failed before" << (rep.failed_before ? " (--retry-failed redoes them)" : "")
              << ", " << work.refused.size() << " refused, " << work.todo.size() << " to do\n";

  Manifest manifest(rep.manifest);
  for (const BatchItem* it : work.refused) {
    manifest.append(manifest_line(*it, "", "error", it->error, 0, StreamReport{}, opt.shard, precision));
    ++rep.failed;
    if (opt.progress) std::cerr << "batch: refused: " << it->error << "\n";
  }
  ArchiveWalk archives;
  double done_mpix = 0;
  for (size_t n = 0; n < work.todo.size(); ++n) {
    const BatchItem& it = *work.todo[n];
    const fs::path output = output_of(it, opt.out, ext);
    const auto start = std::chrono::steady_clock::now();
    const Outcome o = restore_item(map, it, output, save_options, opt, precision, archives);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::error_code ec;
    manifest.append(manifest_line(it, fs::relative(output, opt.out, ec).string(), o.status, o.error, secs, o.report,
                                  opt.shard, precision));
    (o.status == "ok" ? rep.ok : rep.failed) += 1;
    const StreamReport& r = o.report;
    const double mpix = double(r.in_width * r.in_height) / 1e6;
    done_mpix += mpix, rep.mpix += double(r.out_width * r.out_height) / 1e6;
    if (opt.progress) progress_line(n + 1, work, done_mpix, rep, o, t0, tty);
  }
  if (opt.progress && tty) std::cerr << "\n";
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace monge::host
