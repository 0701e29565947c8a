#include "host/train/distributed.hpp"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "host/core/text.hpp"
#include "monge/plugin.hpp"

namespace monge::host {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int int_env(const char* name, int lo, int hi, int def) {
  const char* v = env(name);
  if (!v) return def;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi)
    throw Error(std::string("distributed training: ") + name + " must be an integer in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "], got '" + v + "'");
  return static_cast<int>(n);
}

class GlooGroup final : public Distributed {
 public:
  GlooGroup(const DistEnv& e, std::chrono::milliseconds timeout) : env_(e), timeout_(timeout) {
    c10::intrusive_ptr<c10d::Store> store;
    try {
      if (!e.store_file.empty()) {
        store = c10::make_intrusive<c10d::FileStore>(e.store_file, e.world);
      } else {
        c10d::TCPStoreOptions o;
        o.port = static_cast<uint16_t>(e.master_port);
        o.isServer = e.rank == 0;
        o.numWorkers = static_cast<size_t>(e.world);
        o.timeout = timeout;
        store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, o);
      }
      store->setTimeout(timeout);
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = env("GLOO_SOCKET_IFNAME"))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (e.master_addr == "127.0.0.1" || e.master_addr == "localhost")
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("monge", store),
                                                          e.rank, e.world, options);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& ex) {
      const std::string where = e.store_file.empty() ? "MASTER_ADDR:MASTER_PORT = " + e.master_addr + ":" +
                                                           std::to_string(e.master_port)
                                                     : "the store file " + e.store_file;
      throw Error("distributed training: rank " + std::to_string(e.rank) + " of " + std::to_string(e.world) +
                  " could not join the job through " + where + " within " + std::to_string(timeout.count() / 1000) +
                  " s (" + without_trace(ex) +
                  "); check that every rank was started, that rank 0's address is reachable from here and the port "
                  "is free, or raise dist_timeout");
    }
  }

  int rank() const override { return env_.rank; }
  int world() const override { return env_.world; }

  void average_gradients(Module& module) override {
    std::vector<at::Tensor> grads;
    for (auto& p : module.parameters())
      if (p.grad().defined()) grads.push_back(p.grad());
    if (grads.empty()) return;
    std::vector<at::Tensor> flat_parts;
    flat_parts.reserve(grads.size());
    for (const auto& g : grads) flat_parts.push_back(g.reshape({-1}));
    // One buffer, reduced on the CPU (Gloo); a CUDA run copies it over and back.
    at::Tensor flat = at::cat(flat_parts).to(at::kCPU);
    reduce(flat, c10d::ReduceOp::SUM, "averaging gradients");
    flat.div_(env_.world);
    flat = flat.to(grads[0].device());
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }

  void sum(std::vector<double>& values) override {
    if (values.empty()) return;
    at::Tensor t = torch::tensor(values, at::kDouble);
    reduce(t, c10d::ReduceOp::SUM, "summing statistics");
    std::memcpy(values.data(), t.data_ptr<double>(), values.size() * sizeof(double));
  }

  void min_max(std::vector<double>& lo, std::vector<double>& hi) override {
    at::Tensor a = torch::tensor(lo, at::kDouble), b = torch::tensor(hi, at::kDouble);
    reduce(a, c10d::ReduceOp::MIN, "comparing replicas");
    reduce(b, c10d::ReduceOp::MAX, "comparing replicas");
    std::memcpy(lo.data(), a.data_ptr<double>(), lo.size() * sizeof(double));
    std::memcpy(hi.data(), b.data_ptr<double>(), hi.size() * sizeof(double));
  }

  void broadcast(std::string& bytes) override {
    at::Tensor size = torch::tensor({static_cast<int64_t>(bytes.size())}, at::kLong);
    run("broadcasting rank 0's state", [&] {
      std::vector<at::Tensor> t{size};
      group_->broadcast(t)->wait();
    });
    if (env_.rank != 0) bytes.assign(static_cast<size_t>(size.item<int64_t>()), '\0');
    at::Tensor data = torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, at::kByte);
    run("broadcasting rank 0's state", [&] {
      std::vector<at::Tensor> t{data};
      group_->broadcast(t)->wait();
    });
  }

  void barrier(std::chrono::milliseconds timeout) override {
    run("waiting for every rank", [&] {
      c10d::BarrierOptions o;
      o.timeout = timeout;
      group_->barrier(o)->wait();
    });
  }

 private:
  void reduce(at::Tensor& t, c10d::ReduceOp op, const char* what) {
    run(what, [&] {
      std::vector<at::Tensor> ts{t};
      c10d::AllreduceOptions o;
      o.reduceOp = op;
      group_->allreduce(ts, o)->wait();
    });
  }

  // Runs a collective; a peer that died (connection closed) or hung (timeout) becomes one clear error.
  template <class F>
  void run(const char* what, F&& f) {
    try {
      f();
    } catch (const std::exception& ex) {
      throw Error("distributed training: rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.world) +
                  " lost the other processes while " + what + " (" + without_trace(ex) +
                  "): a rank died, was killed or hung for more than " + std::to_string(timeout_.count() / 1000) +
                  " s; restart the job with resume = true (monge run --nproc N --max-restarts K does it for you) "
                  "to continue from the last checkpoint");
    }
  }

  DistEnv env_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::string first_slurm_host(const std::string& list) {
  // The first entry ends at a comma outside brackets; its bracket holds ranges like "07-09,12".
  size_t depth = 0, end = list.size();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '[') ++depth;
    else if (list[i] == ']' && depth > 0) --depth;
    else if (list[i] == ',' && depth == 0) {
      end = i;
      break;
    }
  }
  const std::string first = list.substr(0, end);
  const size_t open = first.find('[');
  if (open == std::string::npos) return first;
  const size_t close = first.find(']', open);
  if (close == std::string::npos) throw Error("distributed training: malformed Slurm host list '" + list + "'");
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find_first_of(",-"));
  return first.substr(0, open) + range + first.substr(close + 1);
}

DistEnv dist_env() {
  DistEnv e;
  if (env("WORLD_SIZE")) {
    e.source = "torchrun";
    e.world = int_env("WORLD_SIZE", 1, 1 << 20, 1);
    e.rank = int_env("RANK", 0, e.world - 1, -1);
    if (e.rank < 0) throw Error("distributed training: WORLD_SIZE is set but RANK is not; set both (torchrun does)");
    e.local_rank = int_env("LOCAL_RANK", 0, 1 << 20, 0);
    if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
    e.master_port = int_env("MASTER_PORT", 1, 65535, 29500);
  } else if (env("SLURM_STEP_NUM_TASKS") && int_env("SLURM_STEP_NUM_TASKS", 1, 1 << 20, 1) > 1) {
    e.source = "slurm";
    e.world = int_env("SLURM_STEP_NUM_TASKS", 1, 1 << 20, 1);
    e.rank = int_env("SLURM_PROCID", 0, e.world - 1, -1);
    if (e.rank < 0) throw Error("distributed training: SLURM_STEP_NUM_TASKS is set but SLURM_PROCID is not");
    e.local_rank = int_env("SLURM_LOCALID", 0, 1 << 20, 0);
    const char* nodes = env("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST");
    if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
    else if (nodes) e.master_addr = first_slurm_host(nodes);
    const int job = int_env("SLURM_JOB_ID", 0, 2147483647, 0);
    e.master_port = int_env("MASTER_PORT", 1, 65535, 20000 + job % 20000);
  }
  if (const char* f = env("MONGE_STORE_FILE")) e.store_file = f;
  return e;
}

std::shared_ptr<Distributed> Distributed::get(std::chrono::milliseconds timeout) {
  static std::mutex mutex;
  static std::shared_ptr<Distributed> group;
  static bool joined = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (joined) return group;
  const DistEnv e = dist_env();
  if (e.world > 1) group = std::make_shared<GlooGroup>(e, timeout);
  joined = true;
  return group;
}

}  // namespace monge::host
