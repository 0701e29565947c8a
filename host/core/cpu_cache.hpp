#pragma once
// A caching allocator for LibTorch's CPU tensors.
//
// Why: every network call allocates its feature maps afresh (tens of MiB each for a 1024-pixel
// tile) and frees them at its end. glibc serves blocks that large with mmap and gives them back
// with munmap, so each call touches its memory for the first time again: one page fault per 4 KiB.
// On the virtualised machines we run on a page fault is expensive, and the fp32 network spent
// more time faulting pages in than convolving (perf: about a third of all samples in the page
// fault path at 512 x 512, 1 thread; the same call ran 2.5x as fast with glibc told to keep its
// memory). This allocator keeps freed blocks of 128 KiB and more, by size class, and hands them
// out again, up to a limit of cached (free) bytes beyond which the least recently freed blocks go
// back to the system. A request takes the smallest cached block that holds it, up to twice its
// size. Smaller blocks are allocated and freed as LibTorch's own allocator does.
//
// Memory: what is cached is memory a call just used and the next call of the same shape uses
// again, so peak RSS stays what the largest call needs (see docs/performance.md); blocks are
// rounded up to a size class (at most 25% more, never touched, so not resident).

#include <cstddef>
#include <cstdint>

namespace monge::host {

struct CpuCacheStats {
  bool installed = false;
  size_t limit = 0;        ///< most bytes kept cached (free) at once
  size_t cached = 0;       ///< bytes in free blocks now
  size_t in_use = 0;       ///< bytes in blocks handed out now (large blocks only)
  uint64_t hits = 0;       ///< large allocations served from the cache
  uint64_t misses = 0;     ///< large allocations that went to the system
  uint64_t released = 0;   ///< blocks given back to the system (over the limit, or cpu_cache_release)
};

/// The cache limit asked for by the environment: MONGE_CPU_CACHE_MB (MiB; 0 turns the cache off),
/// else `fallback`. Throws monge::Error for a value that is not a whole number of MiB.
size_t cpu_cache_limit_from_env(size_t fallback);

/// The default limit: 1 GiB (more than one call of the networks we ship needs at the default
/// tile size, so the cache rarely gives memory back; change it with MONGE_CPU_CACHE_MB).
constexpr size_t kDefaultCpuCacheLimit = size_t{1} << 30;

/// Makes the caching allocator LibTorch's CPU allocator (once per process; later calls change
/// the limit). A limit of 0 leaves LibTorch's allocator in place (or, once installed, caches
/// nothing). Not installed under AddressSanitizer, whose checks need every free to reach it.
void install_cpu_cache(size_t limit);

/// Frees every cached block (blocks in use are untouched).
void cpu_cache_release();

CpuCacheStats cpu_cache_stats();

}  // namespace monge::host
