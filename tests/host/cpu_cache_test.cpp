// The caching CPU allocator (host/core/cpu_cache.hpp): freed large blocks are reused by size
// class, the cached bytes stay under the limit, oneDNN's raw allocations go through it, results
// are those of LibTorch's own allocator, and concurrent use keeps the books straight.

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include "host/core/cpu_cache.hpp"
#include "monge/plugin.hpp"

using namespace monge::host;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Installs the cache once for this process (the tests share it), emptied before each test.
class CpuCache : public ::testing::Test {
 protected:
  void SetUp() override {
    install_cpu_cache(64 * kMiB);
    cpu_cache_release();
  }
};

TEST_F(CpuCache, ReusesAFreedLargeBlockOfTheSameSizeClass) {
  ASSERT_TRUE(cpu_cache_stats().installed);
  void* first = nullptr;
  {
    const at::Tensor t = at::empty({1, 4, 512, 512});  // 4 MiB
    first = t.data_ptr();
  }
  const auto before = cpu_cache_stats();
  EXPECT_GE(before.cached, 4 * kMiB);
  {
    const at::Tensor t = at::empty({4, 1, 512, 512});  // the same bytes, another shape
    EXPECT_EQ(t.data_ptr(), first);
    const auto during = cpu_cache_stats();
    EXPECT_EQ(during.hits, before.hits + 1);
    EXPECT_EQ(during.misses, before.misses);
  }
  {
    const at::Tensor t = at::empty({1, 8, 512, 512});  // 8 MiB: another class, from the system
    EXPECT_EQ(cpu_cache_stats().misses, before.misses + 1);
  }
  EXPECT_EQ(cpu_cache_stats().in_use, 0u);
}

TEST_F(CpuCache, ASmallerRequestReusesABlockUpToTwiceItsSize) {
  void* block = nullptr;
  {
    const at::Tensor t = at::empty({int64_t(4 * kMiB / 4)});
    block = t.data_ptr();
  }
  {
    const at::Tensor t = at::empty({int64_t(kMiB / 4)});  // 1 MiB: a quarter, not given the 4 MiB block
    EXPECT_NE(t.data_ptr(), block);
  }
  const at::Tensor t = at::empty({int64_t(3 * kMiB / 4)});  // 3 MiB: given it
  EXPECT_EQ(t.data_ptr(), block);
}

TEST_F(CpuCache, KeepsAtMostItsLimitCachedAndFreesTheOldestFirst) {
  std::vector<at::Tensor> held;
  for (int i = 0; i < 3; ++i) held.push_back(at::empty({int64_t(40 * kMiB / 4)}));  // 3 x 40 MiB
  void* newest = held[2].data_ptr();
  const uint64_t released = cpu_cache_stats().released;
  held.clear();  // frees 0, 1, 2 in that order: 120 MiB freed against a 64 MiB limit
  const auto s = cpu_cache_stats();
  EXPECT_LE(s.cached, 64 * kMiB);
  EXPECT_EQ(s.cached, 40 * kMiB);
  EXPECT_EQ(s.released, released + 2);
  const at::Tensor again = at::empty({int64_t(40 * kMiB / 4)});
  EXPECT_EQ(again.data_ptr(), newest);  // the most recently freed block stayed
}

TEST_F(CpuCache, SmallBlocksAreNotCached) {
  const auto before = cpu_cache_stats();
  { const at::Tensor t = at::empty({1000}); }
  const auto after = cpu_cache_stats();
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses);
  EXPECT_EQ(after.cached, before.cached);
}

TEST_F(CpuCache, RawAllocationsOfOneDnnGoThroughItAndConvolutionsAgree) {
  at::Allocator* a = c10::GetCPUAllocator();
  void* p = a->raw_allocate(3 * kMiB);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(cpu_cache_stats().in_use, 3 * kMiB);
  a->raw_deallocate(p);
  EXPECT_EQ(cpu_cache_stats().in_use, 0u);

  // A convolution large enough for oneDNN's own buffers, twice (the second from cached blocks),
  // against the same computation with the cache holding nothing.
  at::manual_seed(3);
  const at::Tensor x = at::randn({1, 8, 256, 256}), w = at::randn({8, 8, 3, 3});
  const at::Tensor first = at::conv2d(x, w, {}, 1, 1);
  const at::Tensor second = at::conv2d(x, w, {}, 1, 1);
  EXPECT_TRUE(at::equal(first, second));
  install_cpu_cache(0);
  const at::Tensor uncached = at::conv2d(x, w, {}, 1, 1);
  install_cpu_cache(64 * kMiB);
  EXPECT_TRUE(at::equal(first, uncached));
}

TEST_F(CpuCache, ConcurrentUseKeepsTheBooks) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i) {
        at::Tensor a = at::empty({int64_t((1 + (i + t) % 3) * kMiB / 4)});
        a.fill_(float(i));
        EXPECT_EQ(a[0].item<float>(), float(i));
      }
    });
  for (auto& th : threads) th.join();
  const auto s = cpu_cache_stats();
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_LE(s.cached, s.limit);
  EXPECT_GT(s.hits, 0u);
}

TEST(CpuCacheLimit, ReadsMiBFromTheEnvironmentAndRefusesNonsense) {
  ::unsetenv("MONGE_CPU_CACHE_MB");
  EXPECT_EQ(cpu_cache_limit_from_env(7), 7u);
  ::setenv("MONGE_CPU_CACHE_MB", "0", 1);
  EXPECT_EQ(cpu_cache_limit_from_env(7), 0u);
  ::setenv("MONGE_CPU_CACHE_MB", "512", 1);
  EXPECT_EQ(cpu_cache_limit_from_env(7), 512 * kMiB);
  for (const char* bad : {"-1", "1.5", "lots", "99999999999"}) {
    ::setenv("MONGE_CPU_CACHE_MB", bad, 1);
    try {
      cpu_cache_limit_from_env(7);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const monge::Error& e) {
      EXPECT_NE(std::string(e.what()).find("MONGE_CPU_CACHE_MB"), std::string::npos);
    }
  }
  ::unsetenv("MONGE_CPU_CACHE_MB");
}

}  // namespace
