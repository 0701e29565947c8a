#include "host/cli/cli_common.hpp"

#include <iostream>

#include "host/map/map_file.hpp"
#include "host/map/map_module.hpp"

namespace monge::cli {

int usage_error(const std::string& msg) {
  std::cerr << "monge: " << msg << "\nRun 'monge --help' for usage." << std::endl;
  return kExitUsage;
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

host::Registry& registry(const Options& opt) {
  auto dirs = host::Registry::default_dirs(opt.use_env);
  host::Registry::configure_global(dirs);
  auto& reg = host::Registry::global();
  for (const auto& p : opt.plugin_paths) reg.add_path(p);
  return reg;
}

void print_warnings(const host::Registry& reg, const Options& opt) {
  if (opt.quiet) return;
  for (const auto& w : reg.warnings()) std::cerr << "monge: warning: " << w << std::endl;
}

CliOptions parse_options(const host::OptionSet& set, const Options& opt, const std::vector<std::string>& args) {
  try {
    auto parsed = set.parse(args);
    if (parsed.help) return {{}, {}, true};
    if (opt.quiet && !parsed.given.count("progress")) parsed.given["progress"] = false;
    return {set.resolve_cli(parsed.given), std::move(parsed.positional), false};
  } catch (const ParamError& e) {
    throw UsageError(e.what());
  }
}

void seed_map(host::LoadedMap& map, const Params& p) {
  if (auto* stochastic = dynamic_cast<host::StochasticMap*>(map.module.get()))
    stochastic->reseed(static_cast<uint64_t>(p.integer("seed")));
}

int run_lua_command(const Options& opt, const std::vector<std::string>& args, const std::string& help, const char* script) {
  if (wants_help(args)) {
    std::cout << help;
    return kExitOk;
  }
  print_warnings(registry(opt), opt);
  lua::Runtime rt;
  return rt.run_file(lua::Runtime::lua_dir() / "monge" / script, args);
}

}  // namespace monge::cli
