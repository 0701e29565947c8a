#include "host/core/threads.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include <ATen/Parallel.h>

namespace monge::host {

namespace {

// OpenBLAS's entry points, looked up once in the libraries already loaded (LibTorch links the
// BLAS of Debian's alternatives; another BLAS simply lacks these symbols).
struct OpenBlas {
  using Set = void (*)(int);
  using Get = int (*)();
  Set set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  Get get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
};

const OpenBlas& openblas() {
  static const OpenBlas blas;
  return blas;
}

// MONGE_BLAS_THREADS as a count, or 0 where it is unset or not a positive number below 1025.
int blas_threads_from_env() {
  const char* text = std::getenv("MONGE_BLAS_THREADS");
  if (!text || !*text) return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  return *end == '\0' && n >= 1 && n <= 1024 ? int(n) : 0;
}

}  // namespace

void set_threads(int n) {
  if (n < 1) n = 1;
  if (at::get_num_threads() != n) at::set_num_threads(n);
  const OpenBlas& blas = openblas();
  const int env = blas_threads_from_env();
  const int want = env > 0 ? env : n;
  if (blas.set && (!blas.get || blas.get() != want)) blas.set(want);
}

int blas_threads() {
  const OpenBlas& blas = openblas();
  return blas.get ? blas.get() : -1;
}

}  // namespace monge::host
