// The `monge` command line: the options before the command, then the command's row of the table
// (host/cli/commands.hpp).

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

#include "host/cli/commands.hpp"
#include "host/core/cpu_cache.hpp"
#include "host/core/registry.hpp"
#include "host/core/threads.hpp"

namespace {

using namespace monge::cli;

int parse_threads(const std::string& text) {
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n < 1 || n > 4096) return -1;
  return static_cast<int>(n);
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& c : commands()) names.push_back(c.name);
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const char* env = std::getenv("MONGE_THREADS")) {
    opt.threads = parse_threads(env);
    if (opt.threads < 0) return usage_error(std::string("MONGE_THREADS must be a positive integer, got '") + env + "'");
  }
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << main_help();
      return kExitOk;
    } else if (a == "--version" || a == "-V") {
      return find_command("version")->run(opt, {});
    } else if (a == "--plugin-path") {
      if (i + 1 >= argc) return usage_error("--plugin-path needs a directory or file");
      opt.plugin_paths.emplace_back(argv[++i]);
    } else if (a == "--no-env-plugins") {
      opt.use_env = false;
    } else if (a == "--threads") {
      if (i + 1 >= argc || (opt.threads = parse_threads(argv[i + 1])) < 0)
        return usage_error("--threads needs a positive integer");
      ++i;
    } else if (a == "-q" || a == "--quiet") {
      opt.quiet = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option '" + a + "'");
    } else {
      break;
    }
  }
  if (i >= argc) {
    std::cerr << main_help();
    return kExitUsage;
  }
  const std::string cmd = argv[i];
  opt.argv.assign(argv, argv + i + 1);
  const std::vector<std::string> args(argv + i + 1, argv + argc);
  // LibTorch defaults to one thread; use every core unless told otherwise.
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  monge::host::set_threads(opt.threads > 0 ? opt.threads : hw);
  try {
    monge::host::install_cpu_cache(monge::host::cpu_cache_limit_from_env(monge::host::kDefaultCpuCacheLimit));
    if (const Command* command = find_command(cmd)) return command->run(opt, args);
    const std::string hint = monge::did_you_mean(cmd, command_names());
    return usage_error("unknown command '" + cmd + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const monge::host::PluginError& e) {
    std::cerr << "monge: error: " << e.what() << std::endl;
    return kExitPlugin;
  } catch (const std::exception& e) {
    std::cerr << "monge: error: " << e.what() << std::endl;
    return kExitError;
  }
}
