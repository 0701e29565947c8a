// `monge run`: a Lua pipeline, or N processes of a data-parallel one (host/cli/launch.hpp).

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "host/cli/commands.hpp"
#include "host/cli/launch.hpp"

namespace monge::cli {
namespace {

constexpr const char* kRunHelp = R"(Usage: monge run [--nproc N [--max-restarts K]] SCRIPT.lua [ARGS...]
       monge run [--nproc N [--max-restarts K]] -e CODE

Runs a Lua pipeline with LuaJIT. Inside the script `require "monge"` gives the monge module,
`arg[0]` is the script path and `arg[1..n]` (also `...`) are ARGS. An uncaught error prints the
message (with the script's file:line) and a traceback, and exits with code 1. os.exit(n) exits
with n. See docs/lua.md for the API.

Data-parallel training on this machine (see docs/cluster.md for clusters and torchrun):
  --nproc N          start N processes of the pipeline as one job (RANK, LOCAL_RANK, WORLD_SIZE,
                     MASTER_ADDR, MASTER_PORT are set for each); monge.train{} averages gradients
                     across them, each takes its share of every batch (global batch N x batch),
                     and only rank 0 writes the run directory. Threads per process default to
                     cores / N. If a process fails the others are stopped and the job fails.
  --max-restarts K   restart the whole job up to K times after a failure; monge.train{} then
                     resumes from its last checkpoint (default 0)
)";

int run(const Options& opt, const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("run: give a script (monge run pipeline.lua [args]) or -e CODE");
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << kRunHelp;
    return kExitOk;
  }
  LaunchOptions launch;
  size_t first = 0;
  for (; first + 1 < args.size(); first += 2) {
    int* target = args[first] == "--nproc" ? &launch.nproc : args[first] == "--max-restarts" ? &launch.max_restarts : nullptr;
    if (!target) break;
    char* end = nullptr;
    const long n = std::strtol(args[first + 1].c_str(), &end, 10);
    if (*end != '\0' || n < (target == &launch.nproc ? 1 : 0) || n > 1024)
      return usage_error("run: " + args[first] + " needs " +
                         (target == &launch.nproc ? "a number of processes (1 to 1024)" : "a count (0 to 1024)") +
                         ", got '" + args[first + 1] + "'");
    *target = static_cast<int>(n);
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(first), args.end());
  if (rest.empty() || rest[0] == "--nproc" || rest[0] == "--max-restarts")
    return usage_error("run: give a script after the options (monge run --nproc 2 train.lua)");
  if (first > 0) {
    if (std::getenv("WORLD_SIZE"))
      return usage_error("run: --nproc inside a job that is already distributed (WORLD_SIZE is set); drop --nproc");
    launch.argv = opt.argv;
    launch.argv.insert(launch.argv.end(), rest.begin(), rest.end());
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (opt.threads == 0) launch.threads_per_rank = std::max(1, hw / launch.nproc);
    return launch_local(launch);
  }
  // Scan now so that skipped plugin files are reported before the pipeline starts.
  print_warnings(registry(opt), opt);
  lua::Runtime rt;
  if (rest[0] == "-e") {
    if (rest.size() != 2) return usage_error("run -e: give exactly one chunk of code");
    return rt.run_string(rest[1]);
  }
  return rt.run_file(rest[0], std::vector<std::string>(rest.begin() + 1, rest.end()));
}

std::string help() { return kRunHelp; }

}  // namespace

Command run_command() {
  return {"run",
          {{"[OPTIONS] run SCRIPT.lua [ARGS...]", "run a Lua pipeline; ARGS are visible to it as arg[1..]"},
           {"[OPTIONS] run -e CODE", "run a chunk of Lua code"},
           {"[OPTIONS] run --nproc N [--max-restarts K] SCRIPT.lua [ARGS...]", "run N processes of a data-parallel training job"}},
          &help, &run};
}

}  // namespace monge::cli
