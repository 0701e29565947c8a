#pragma once
// `monge run --nproc N`: a local launcher in the manner of torchrun. It starts N copies of this
// monge with the torchrun variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), waits
// for them, stops the others when one fails, and restarts the whole job up to K times (the
// trainer resumes from its last checkpoint when MONGE_RESTART_COUNT > 0).

#include <string>
#include <vector>

namespace monge::cli {

struct LaunchOptions {
  int nproc = 1;
  int max_restarts = 0;
  std::vector<std::string> argv;  ///< each rank's command line, without --nproc/--max-restarts
  int threads_per_rank = 0;       ///< MONGE_THREADS for the ranks; 0 leaves it alone
  int grace_seconds = 10;         ///< after a rank fails, how long the others get to stop on their own
};

/// Runs the job; returns the exit code of the first rank that failed (1 when it was killed by a
/// signal), or 0.
int launch_local(const LaunchOptions& options);

}  // namespace monge::cli
