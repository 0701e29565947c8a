// `monge plugins`: the plugins found, by kind; --describe NAME: one plugin's parameters.

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <optional>

#include "host/cli/commands.hpp"

namespace monge::cli {
namespace {

constexpr const char* kPluginsHelp = R"(Usage: monge plugins [--kind KIND]
       monge plugins --describe NAME

Lists the plugins found in the built-in plugin directory, MONGE_PLUGIN_PATH and --plugin-path,
grouped by kind (operator, noise, cost, network, solver, metric), with version, summary and file.
Files that could not be loaded are reported as warnings on stderr. --describe prints one plugin's
parameters. Exit code 3 if NAME is unknown or cannot be loaded.
)";

int run(const Options& opt, const std::vector<std::string>& args) {
  std::string describe, kind;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kPluginsHelp;
      return kExitOk;
    } else if (args[i] == "--describe" && i + 1 < args.size()) {
      describe = args[++i];
    } else if (args[i] == "--kind" && i + 1 < args.size()) {
      kind = args[++i];
      if (!host::parse_kind(kind))
        return usage_error("unknown kind '" + kind + "' (operator, noise, cost, network, solver, metric)");
    } else {
      return usage_error("plugins: unexpected argument '" + args[i] + "'");
    }
  }
  auto& reg = registry(opt);
  print_warnings(reg, opt);
  if (!describe.empty()) {
    const auto& r = reg.find(describe);
    std::cout << r.name << " " << r.version << " (" << monge::kind_name(r.kind) << ")\n"
              << "  " << r.summary << "\n"
              << "  file: " << r.file.string() << "\n"
              << "  built for: SDK " << r.sdk_major << "." << r.sdk_minor << ", LibTorch " << r.torch_version << ", "
              << r.compiler << "\n"
              << "parameters:\n";
    const std::string params = r.schema->describe();
    std::cout << (params.empty() ? "  (none)\n" : params);
    return kExitOk;
  }
  const auto list = reg.list();
  std::optional<monge::Kind> current;
  size_t width = 0;
  for (const auto* r : list) width = std::max(width, r->name.size());
  for (const auto* r : list) {
    if (!kind.empty() && kind != monge::kind_name(r->kind)) continue;
    if (!current || *current != r->kind) {
      current = r->kind;
      std::cout << monge::kind_name(r->kind) << "\n";
    }
    std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << r->name << "  " << std::setw(7) << r->version
              << "  " << r->summary << "\n      " << r->file.string() << "\n";
  }
  if (list.empty()) std::cout << "(no plugins found; searched the built-in directory and MONGE_PLUGIN_PATH)\n";
  return kExitOk;
}


std::string help() { return kPluginsHelp; }

}  // namespace

Command plugins_command() {
  return {"plugins",
          {{"[OPTIONS] plugins [--kind KIND]", "list plugins by kind, with versions and files"},
           {"[OPTIONS] plugins --describe NAME", "show a plugin's parameters (type, default, range, doc)"}},
          &help, &run};
}

}  // namespace monge::cli
