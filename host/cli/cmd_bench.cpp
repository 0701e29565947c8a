// `monge bench NAME`: a benchmark pipeline of share/monge/bench; without NAME, the list.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>

#include <boost/dll/runtime_symbol_info.hpp>

#include "host/cli/commands.hpp"
#include "monge_config.hpp"

namespace monge::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBenchHelp = R"(Usage: monge bench NAME [ARGS...]
       monge bench

Runs the benchmark pipeline NAME with ARGS visible to it as arg[1..] (like monge run). NAME is a
script of share/monge/bench beside the monge executable (scripts/bench/ in the source tree),
with '-' read as '_': `monge bench train-step` runs train_step.lua. Without NAME, lists the
benchmarks with the first line of their leading comment. See docs/performance.md.
)";

// The benchmark scripts of this executable: share/monge/bench, in the build tree as installed.
fs::path bench_dir() {
  const fs::path exe = boost::dll::program_location().string();
  return exe.parent_path().parent_path() / MONGE_BENCH_SUBDIR;
}

// Benchmark names ('_' shown as '-') and the first line of each script's leading comment.
std::map<std::string, std::string> list_benchmarks() {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(bench_dir(), ec)) {
    if (entry.path().extension() != ".lua") continue;
    std::string name = entry.path().stem().string(), line;
    std::replace(name.begin(), name.end(), '_', '-');
    std::ifstream f(entry.path());
    std::getline(f, line);
    const size_t text = line.find_first_not_of("- ");
    out[name] = line.rfind("--", 0) == 0 && text != std::string::npos ? line.substr(text) : "";
  }
  return out;
}

int run(const Options& opt, const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kBenchHelp;
    return kExitOk;
  }
  const auto benchmarks = list_benchmarks();
  if (args.empty()) {
    size_t width = 0;
    for (const auto& [name, summary] : benchmarks) width = std::max(width, name.size());
    for (const auto& [name, summary] : benchmarks)
      std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << name << "  " << summary << "\n";
    if (benchmarks.empty()) std::cout << "(no benchmarks in " << bench_dir().string() << ")\n";
    return kExitOk;
  }
  std::string name = args[0];
  std::replace(name.begin(), name.end(), '_', '-');
  if (!benchmarks.count(name)) {
    std::vector<std::string> names;
    for (const auto& [n, summary] : benchmarks) names.push_back(n);
    const std::string hint = monge::did_you_mean(name, names);
    return usage_error("bench: unknown benchmark '" + args[0] + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                       "; 'monge bench' lists them");
  }
  std::replace(name.begin(), name.end(), '-', '_');
  print_warnings(registry(opt), opt);
  lua::Runtime rt;
  return rt.run_file(bench_dir() / (name + ".lua"), std::vector<std::string>(args.begin() + 1, args.end()));
}

std::string help() { return kBenchHelp; }

}  // namespace

Command bench_command() {
  return {"bench",
          {{"[OPTIONS] bench [NAME [ARGS...]]", "run a benchmark pipeline (train-step, apply, ...);\nwithout NAME, list them"}},
          &help, &run};
}

}  // namespace monge::cli
