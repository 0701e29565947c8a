// Compute threads (host/core/threads.hpp): one count for LibTorch's pool and OpenBLAS's, whose
// idle threads otherwise spin on the cores other processes (batch shards) need.

#include <gtest/gtest.h>

#include <cstdlib>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "host/core/threads.hpp"

using namespace monge::host;

// install-deps.sh installs OpenBLAS (libopenblas0-pthread), which Debian's LibTorch then uses.
TEST(Threads, SetThreadsSetsLibTorchAndOpenBlasAlike) {
  ASSERT_NE(blas_threads(), -1) << "LibTorch's BLAS here is not OpenBLAS; the BLAS threads cannot be set";
  set_threads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(blas_threads(), 2);
  set_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(blas_threads(), 1);
  // A matrix product (BLAS) still gives the right answer on one thread.
  const at::Tensor a = at::rand({64, 48}), b = at::rand({48, 32});
  EXPECT_TRUE(at::allclose(at::matmul(a, b), (a.unsqueeze(2) * b.unsqueeze(0)).sum(1), 1e-4, 1e-5));
  set_threads(0);  // nonsense counts become 1
  EXPECT_EQ(blas_threads(), 1);
}

TEST(Threads, MongeBlasThreadsOverridesTheBlasCountOnly) {
  ASSERT_NE(blas_threads(), -1);
  setenv("MONGE_BLAS_THREADS", "3", 1);
  set_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(blas_threads(), 3);
  setenv("MONGE_BLAS_THREADS", "lots", 1);  // not a count: ignored
  set_threads(2);
  EXPECT_EQ(blas_threads(), 2);
  unsetenv("MONGE_BLAS_THREADS");
  set_threads(1);
  EXPECT_EQ(blas_threads(), 1);
}
