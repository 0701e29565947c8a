// `monge info MAP`: what a map file holds.

#include <iostream>

#include "host/cli/commands.hpp"
#include "host/map/map_file.hpp"

namespace monge::cli {
namespace {

constexpr const char* kInfoHelp = R"(Usage: monge info MAP [--trust-code]

Prints the network, shape, operator, training notes and metrics recorded in a map file. Map files
of format 3 are data and are read without running anything; --trust-code also reads the old
formats 1 and 2 and TorchScript modules, which are programs (see monge apply --help).
)";

// " 1.0.0": the version of the plugin that read a map's record (nothing for a TorchScript map).
std::string version_text(const host::PluginSpec& spec) { return spec.version.empty() ? "" : " " + spec.version; }

int run(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> files;
  bool trust = false;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kInfoHelp;
      return kExitOk;
    }
    if (a == "--trust-code") trust = true;
    else if (!a.empty() && a[0] == '-') return usage_error("info: unknown option '" + a + "' (monge info MAP [--trust-code])");
    else files.push_back(a);
  }
  if (files.size() != 1) return usage_error("info: give one map file (monge info runs/gb/map.pt)");
  auto& reg = registry(opt);
  const auto m = host::load_map(files[0], reg, {trust});
  const auto& i = m.info;
  int64_t params = 0;
  for (const auto& p : m.module->parameters()) params += p.numel();
  std::cout << "map " << files[0] << "\n"
            << "  written by monge " << i.monge_version << " (map format " << i.format
            << (i.format >= 3   ? ": data only"
                : i.format == 0 ? ": none, a TorchScript module (a program), read because of --trust-code"
                                : ": a PyTorch archive (a program), read because of --trust-code") << ")\n"
            << "  network " << i.network.name << version_text(i.network) << " (" << params << " parameters)";
  for (const auto& [k, v] : i.network.params.values()) std::cout << " " << k << "=" << detail::value_text(v);
  if (i.shape.in_channels > 0)
    std::cout << "\n  channels " << i.shape.in_channels << " -> " << i.shape.out_channels << ", trained on "
              << i.shape.height << "x" << i.shape.width
              << (i.latent_channels > 0 ? ", stochastic: " + std::to_string(i.latent_channels) +
                                              " latent channel(s) of N(0, 1) noise drawn at each call"
                                        : std::string())
              << (i.input_noise > 0 ? ", stochastic: measurements smoothed with N(0, " + detail::format_number(i.input_noise) +
                                          "^2) noise at each call"
                                    : std::string())
              << "\n";
  else
    std::cout << "\n";
  if (i.op) {
    std::cout << "  operator " << i.op->name << version_text(*i.op);
    for (const auto& [k, v] : i.op->params.values()) std::cout << " " << k << "=" << detail::value_text(v);
    if (i.lift && i.lift->kind == host::wiener::LiftKind::Fitted)
      std::cout << " with the fitted lift (a least-squares filter on the operator's own lift, fitted on pairs simulated "
                   "from the clean set; filter radius "
                << i.lift->filter.radius << " measurement pixels: inputs are restored by it before the network)\n";
    else if (i.lift)
      std::cout << " with the Wiener lift (noise variance " << detail::format_number(i.lift->noise_variance)
                << ", prior from the clean set, filter radius " << i.lift->filter.radius
                << " measurement pixels: inputs are restored by it before the network)\n";
    else
      std::cout << " (its lift is applied to inputs)\n";
  }
  if (i.noise) std::cout << "  trained with noise " << host::plugin_spec_text(*i.noise) << " (monge eval's default --noise)\n";
  for (const auto& [k, v] : i.notes) std::cout << "  " << k << " " << v << "\n";
  for (const auto& [k, v] : i.metrics) std::cout << "  " << k << " " << v << "\n";
  return kExitOk;
}

std::string help() { return kInfoHelp; }

}  // namespace

Command info_command() {
  return {"info", {{"[OPTIONS] info MAP [--trust-code]", "show what a map file holds (network, operator, metrics)"}}, &help, &run};
}

}  // namespace monge::cli
