#pragma once
// Data-parallel training across processes and machines: where this process sits in the job (read
// from the variables torchrun and Slurm's srun set), and one c10d process group per process
// (Gloo) with the few collectives the trainer needs. See docs/cluster.md.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "monge/network.hpp"

namespace monge::host {

/// This process's place in a data-parallel job.
struct DistEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string store_file;  ///< MONGE_STORE_FILE: rendezvous through a file on a shared filesystem
  std::string source;      ///< "torchrun", "slurm", or empty for a single process
};

/// Reads the environment. torchrun style first: WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR
/// (default 127.0.0.1), MASTER_PORT (default 29500). Otherwise a Slurm job step of more than one
/// task (srun): SLURM_STEP_NUM_TASKS, SLURM_PROCID, SLURM_LOCALID, the first host of
/// SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST), MASTER_PORT or 20000 + SLURM_JOB_ID % 20000.
/// Anything else is a single process. Throws monge::Error for malformed or inconsistent values.
DistEnv dist_env();

/// The first host of a Slurm host list: "node[07-09,12],gpu1" -> "node07".
std::string first_slurm_host(const std::string& list);

/// The job's process group. One per process, created on first use and kept: a pipeline that
/// trains twice reuses it.
class Distributed {
 public:
  /// nullptr in a single process. Joins the job (rendezvous, then a Gloo process group);
  /// `timeout` bounds the rendezvous and every collective, so a hung peer becomes an error.
  static std::shared_ptr<Distributed> get(std::chrono::milliseconds timeout);

  virtual ~Distributed() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;

  /// Averages the gradients of `module`'s parameters over the processes, in one flat buffer.
  virtual void average_gradients(Module& module) = 0;
  /// Element-wise sum over the processes (float64 on the CPU).
  virtual void sum(std::vector<double>& values) = 0;
  /// Element-wise minimum and maximum over the processes.
  virtual void min_max(std::vector<double>& lo, std::vector<double>& hi) = 0;
  /// Rank 0's `bytes` replace everyone else's.
  virtual void broadcast(std::string& bytes) = 0;
  /// Waits for every process, for at most `timeout`.
  virtual void barrier(std::chrono::milliseconds timeout) = 0;
};

}  // namespace monge::host
