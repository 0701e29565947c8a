#include "host/cli/launch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace monge::cli {

namespace {

std::vector<pid_t> g_children;  // read by the signal handler
volatile sig_atomic_t g_signalled = 0;

void forward_signal(int sig) {
  g_signalled = sig;
  for (pid_t p : g_children)
    if (p > 0) kill(p, sig);
}

// A TCP port that is free on the loopback interface now (the kernel picks it).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : std::string());
  }
  return "stopped (status " + std::to_string(status) + ")";
}

pid_t spawn(const LaunchOptions& o, int rank, int port, int attempt) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // The child: die with the launcher, then become rank `rank` of the job.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) _exit(1);
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
  setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  setenv("MONGE_RESTART_COUNT", std::to_string(attempt).c_str(), 1);
  if (o.threads_per_rank > 0) setenv("MONGE_THREADS", std::to_string(o.threads_per_rank).c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : o.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  std::cerr << "monge run: cannot start rank " << rank << " (" << std::strerror(errno) << ")" << std::endl;
  _exit(127);
}

// Runs one attempt of the job; returns the first failure's exit code or 0.
int run_once(const LaunchOptions& o, int attempt) {
  const char* fixed_port = std::getenv("MASTER_PORT");
  const int port = fixed_port && *fixed_port ? std::atoi(fixed_port) : free_port();
  g_children.assign(static_cast<size_t>(o.nproc), 0);
  for (int r = 0; r < o.nproc; ++r) g_children[static_cast<size_t>(r)] = spawn(o, r, port, attempt);

  using clock = std::chrono::steady_clock;
  int running = o.nproc, code = 0, failed_rank = -1;
  clock::time_point stop_at{}, kill_at{};
  bool terminated = false;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = -1;
      for (size_t i = 0; i < g_children.size(); ++i)
        if (g_children[i] == pid) {
          rank = static_cast<int>(i);
          g_children[i] = 0;
        }
      if (rank < 0) continue;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failed_rank < 0) {
        failed_rank = rank;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (running > 0) {
          std::cerr << "monge run: rank " << rank << " of " << o.nproc << " " << describe(status)
                    << "; the other ranks get " << o.grace_seconds << " s to stop" << std::endl;
          stop_at = clock::now() + std::chrono::seconds(o.grace_seconds);
          kill_at = stop_at + std::chrono::seconds(5);
        } else {
          std::cerr << "monge run: rank " << rank << " of " << o.nproc << " " << describe(status) << std::endl;
        }
      }
      continue;
    }
    if (failed_rank >= 0 && running > 0) {
      const auto now = clock::now();
      if (!terminated && now >= stop_at) {
        std::cerr << "monge run: stopping the " << running << " remaining rank(s)" << std::endl;
        for (pid_t p : g_children)
          if (p > 0) kill(p, SIGTERM);
        terminated = true;
      } else if (terminated && now >= kill_at) {
        for (pid_t p : g_children)
          if (p > 0) kill(p, SIGKILL);
        kill_at = now + std::chrono::seconds(3600);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_children.clear();
  return code;
}

}  // namespace

int launch_local(const LaunchOptions& o) {
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  int code = 0;
  for (int attempt = 0;; ++attempt) {
    code = run_once(o, attempt);
    if (code == 0 || g_signalled || attempt >= o.max_restarts) break;
    std::cerr << "monge run: restarting all " << o.nproc << " ranks from the last checkpoint (restart " << attempt + 1
              << " of at most " << o.max_restarts << ")" << std::endl;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return code;
}

}  // namespace monge::cli
