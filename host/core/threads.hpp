#pragma once
// Compute threads: LibTorch's intra-op pool and the BLAS library's own.
//
// LibTorch sets its OpenMP pool only; Debian's LibTorch calls BLAS (OpenBLAS, pthread build) for
// matrix products and for the convolutions oneDNN does not take (small inputs), and OpenBLAS keeps
// one thread per core that spins (sched_yield) after each call. With `--threads 1` per process,
// as `monge batch` shards run, those spinning threads took the other process's core: 2 s of CPU
// for each second of work. So every thread count monge sets goes to both.

namespace monge::host {

/// Sets LibTorch's intra-op threads (this thread's pool, under OpenMP) and the BLAS threads to `n`
/// (n >= 1), or the BLAS threads to MONGE_BLAS_THREADS where that is set (a positive number; what
/// `monge bench` uses to run as monge did before). The BLAS part is a no-op when the BLAS in use
/// is not OpenBLAS.
void set_threads(int n);

/// OpenBLAS's thread count, or -1 when the BLAS in use is not OpenBLAS.
int blas_threads();

}  // namespace monge::host
