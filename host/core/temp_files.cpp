#include "host/core/temp_files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include "host/core/text.hpp"
#include "monge/plugin.hpp"

namespace fs = std::filesystem;

namespace monge::host {

namespace {

// The registered temporaries, in fixed storage a signal handler can read without allocating.
constexpr int kSlots = 256;
constexpr size_t kPathMax = 4096;
struct Slot {
  std::atomic<bool> used{false};
  char path[kPathMax];
};
std::array<Slot, kSlots> g_slots;
std::mutex g_mutex;  // slot allocation and handler installation (not taken by the handler)
bool g_installed = false;
struct sigaction g_previous[3];
constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

extern "C" void remove_temporaries_and_reraise(int sig) {
  for (auto& s : g_slots)
    if (s.used.load(std::memory_order_acquire)) ::unlink(s.path);
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  ::raise(sig);
}

void install_handlers() {
  if (g_installed) return;
  g_installed = true;
  for (int i = 0; i < 3; ++i) {
    struct sigaction act {};
    act.sa_handler = &remove_temporaries_and_reraise;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESETHAND;
    ::sigaction(kSignals[i], nullptr, &g_previous[i]);
    // A signal the process ignores (nohup) stays ignored.
    if (g_previous[i].sa_handler != SIG_IGN) ::sigaction(kSignals[i], &act, nullptr);
  }
}

int register_path(const fs::path& p) {
  const std::string s = p.string();
  if (s.size() >= kPathMax) return -1;
  std::lock_guard<std::mutex> lock(g_mutex);
  install_handlers();
  for (int i = 0; i < kSlots; ++i) {
    if (!g_slots[i].used.load(std::memory_order_relaxed)) {
      std::memcpy(g_slots[i].path, s.c_str(), s.size() + 1);
      g_slots[i].used.store(true, std::memory_order_release);
      return i;
    }
  }
  return -1;  // more than kSlots at once: still safe, only not removed on a signal
}

void unregister(int slot) {
  if (slot >= 0) g_slots[slot].used.store(false, std::memory_order_release);
}

uint64_t random64() {
  static std::mutex mutex;
  static std::random_device device;
  std::lock_guard<std::mutex> lock(mutex);
  return (uint64_t{device()} << 32) ^ device();
}

std::string stem_of(const fs::path& target) { return target.stem().string(); }

}  // namespace

Temporary::Temporary(const fs::path& target) : target_(target) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  for (int attempt = 0; attempt < 16; ++attempt) {
    char random[24];
    std::snprintf(random, sizeof random, "%016llx", static_cast<unsigned long long>(random64()));
    const fs::path candidate = dir / ("." + stem_of(target) + ".monge-" + random + target.extension().string());
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      path_ = candidate;
      slot_ = register_path(path_);
      return;
    }
    if (errno != EEXIST)
      throw Error(target.string() + ": cannot create a temporary file in " + dir.string() + " (" + std::strerror(errno) + ")");
  }
  throw Error(target.string() + ": cannot create a temporary file in " + dir.string());
}

Temporary::~Temporary() {
  if (!done_) {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  unregister(slot_);
}

void Temporary::commit() {
  std::error_code ec;
  fs::rename(path_, target_, ec);
  if (ec) throw Error(target_.string() + ": cannot move the finished file into place (" + ec.message() + ")");
  done_ = true;
  unregister(slot_);
  slot_ = -1;
}

bool is_temporary_of(const std::string& name, const fs::path& target) {
  const std::string head = "." + stem_of(target) + ".monge-", tail = target.extension().string();
  if (name.size() != head.size() + 16 + tail.size() || name.rfind(head, 0) != 0) return false;
  if (name.compare(name.size() - tail.size(), tail.size(), tail) != 0) return false;
  for (size_t i = head.size(); i < head.size() + 16; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

int remove_stale_temporaries(const fs::path& target, double min_age_seconds) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  int removed = 0;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!is_temporary_of(e.path().filename().string(), target)) continue;
    std::error_code ec2;
    if (!e.is_regular_file(ec2) || e.is_symlink(ec2)) continue;
    const auto age = std::chrono::duration<double>(now - e.last_write_time(ec2)).count();
    if (!ec2 && age >= min_age_seconds && fs::remove(e.path(), ec2)) ++removed;
  }
  return removed;
}

void write_atomically(const fs::path& file, const std::function<void(const std::string& tmp)>& write) {
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(file.string() + ": directory " + dir.string() + " does not exist");
  remove_stale_temporaries(file, kStaleSeconds);
  Temporary tmp(file);
  try {
    write(tmp.path().string());
  } catch (const std::exception& e) {
    throw Error(file.string() + ": cannot write (" + without_trace(e) + ")");
  }
  tmp.commit();
}

}  // namespace monge::host
