#include "host/core/cpu_cache.hpp"

#include <cstdlib>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include "monge/plugin.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define MONGE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MONGE_ASAN 1
#endif
#endif

namespace monge::host {
namespace {

constexpr size_t kSmallest = size_t{128} << 10;  // below this, LibTorch's allocator (glibc's heap)

// n rounded up to its size class: four classes per power of two (at most 25% more).
size_t size_class(size_t n) {
  int log2 = 0;
  while ((n >> (log2 + 1)) != 0) ++log2;
  const size_t step = size_t{1} << (log2 - 2);
  return (n + step - 1) / step * step;
}

// LibTorch's oneDNN path allocates through raw_allocate and frees through raw_deleter(), which
// gets the data pointer alone: so every block's context is its data pointer, and the size of a
// large block is looked up by that pointer. Small blocks are not recorded.
class CachingCpuAllocator final : public at::Allocator {
 public:
  at::DataPtr allocate(size_t n) const override {
    void* p = nullptr;
    if (n < kSmallest) {
      p = c10::alloc_cpu(n);
    } else {
      const size_t size = size_class(n);
      p = take(size);
      if (!p) {
        p = c10::alloc_cpu(size);  // throws c10::Error when out of memory
        std::lock_guard<std::mutex> lock(mutex_);
        in_use_.emplace(p, size);
        stats_.misses++;
        stats_.in_use += size;
      }
    }
    return {p, p, &CachingCpuAllocator::free_block, at::Device(at::DeviceType::CPU)};
  }

  at::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::free_block; }

  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.limit = limit;
    trim_locked(limit);
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    trim_locked(0);
  }
  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  static CachingCpuAllocator& instance() {
    static auto* a = new CachingCpuAllocator;  // never destroyed: tensors may outlive static destructors
    return *a;
  }

 private:
  // The smallest cached block that holds `size` bytes and is at most twice as large (so that
  // a window at the image's edge, a little smaller than the others, reuses their blocks rather
  // than adding its own; a small request does not take a block a large one will want).
  void* take(size_t size) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)  // most recently freed first
      if (it->second >= size && it->second / 2 <= size && (best == free_.end() || it->second < best->second)) {
        best = it;
        if (it->second == size) break;
      }
    if (best == free_.end()) return nullptr;
    const auto [p, block] = *best;
    free_.erase(best);
    in_use_.emplace(p, block);
    stats_.cached -= block;
    stats_.in_use += block;
    stats_.hits++;
    return p;
  }

  static void free_block(void* p) {
    auto& self = instance();
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      const auto it = self.in_use_.find(p);
      if (it != self.in_use_.end()) {
        const size_t size = it->second;
        self.in_use_.erase(it);
        self.stats_.in_use -= size;
        self.free_.emplace_front(p, size);
        self.stats_.cached += size;
        self.trim_locked(self.stats_.limit);
        return;
      }
    }
    c10::free_cpu(p);  // a small block
  }

  // Gives the least recently freed blocks back until at most `keep` bytes are cached.
  void trim_locked(size_t keep) const {
    while (stats_.cached > keep && !free_.empty()) {
      const auto [p, size] = free_.back();
      free_.pop_back();
      stats_.cached -= size;
      stats_.released++;
      c10::free_cpu(p);
    }
  }

  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, size_t> in_use_;         // large blocks handed out
  mutable std::list<std::pair<void*, size_t>> free_;          // most recently freed first
  mutable CpuCacheStats stats_{true};
};

std::mutex g_install;
CachingCpuAllocator* g_cache = nullptr;  // installed

}  // namespace

size_t cpu_cache_limit_from_env(size_t fallback) {
  const char* env = std::getenv("MONGE_CPU_CACHE_MB");
  if (!env || !*env) return fallback;
  char* end = nullptr;
  const unsigned long long mib = std::strtoull(env, &end, 10);
  if (*end != '\0' || env[0] == '-' || mib > (size_t{1} << 24))
    throw Error(std::string("MONGE_CPU_CACHE_MB must be a whole number of MiB (0 turns the CPU tensor cache off), got '") +
                env + "'");
  return static_cast<size_t>(mib) << 20;
}

void install_cpu_cache(size_t limit) {
#ifdef MONGE_ASAN
  (void)limit;
  return;
#else
  std::lock_guard<std::mutex> lock(g_install);
  if (!g_cache) {
    if (limit == 0) return;
    g_cache = &CachingCpuAllocator::instance();
    // Priority above LibTorch's own registration (0) so that nothing registered later at the
    // default priority replaces it.
    c10::SetCPUAllocator(g_cache, 1);
  }
  g_cache->set_limit(limit);
#endif
}

void cpu_cache_release() {
  std::lock_guard<std::mutex> lock(g_install);
  if (g_cache) g_cache->release();
}

CpuCacheStats cpu_cache_stats() {
  std::lock_guard<std::mutex> lock(g_install);
  return g_cache ? g_cache->stats() : CpuCacheStats{};
}

}  // namespace monge::host
