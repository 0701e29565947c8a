// `monge map upgrade|downgrade`: converts map files between format 3 (data only) and the old
// formats 1 and 2 (PyTorch archives, programs).

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "host/cli/commands.hpp"
#include "host/map/map_file.hpp"
#include "host/map/map_module.hpp"

namespace monge::cli {
namespace {

constexpr const char* kMapHelp = R"(Usage: monge map upgrade OLD NEW --trust-code
       monge map downgrade NEW OLD

Converts a map file of format 1 or 2 (monge 0.1: a PyTorch archive, which is read by running the
program stored in it) into format 3 (data only: a JSON header and raw tensors, read without
running anything; see docs/map-format.md). Reading OLD runs its code, so --trust-code is required:
give it only for a file whose origin you trust. NEW is written atomically; OLD is left as it is.
The new file is read back without trust and checked to give the same output as OLD on a probe
input. A TorchScript module cannot be converted (its forward() is a program): keep using it with
--trust-code.

`monge map downgrade NEW OLD` writes a map of format 3 in the old format (1, or 2 with a Wiener
lift) for a monge 0.1 that cannot read format 3. Reading NEW runs nothing.
)";

int run(const Options& opt, const std::vector<std::string>& args) {
  std::vector<std::string> files;
  bool trust = false;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      std::cout << kMapHelp;
      return kExitOk;
    }
    if (a == "--trust-code") trust = true;
    else if (!a.empty() && a[0] == '-') return usage_error("map: unknown option '" + a + "' (see monge map --help)");
    else files.push_back(a);
  }
  if (files.empty() || (files[0] != "upgrade" && files[0] != "downgrade"))
    return usage_error("map: give a subcommand: monge map upgrade OLD NEW --trust-code, or monge map downgrade NEW OLD");
  if (files[0] == "downgrade") {
    if (files.size() != 3) return usage_error("map downgrade: give NEW and OLD (monge map downgrade map.pt old.pt)");
    auto m = host::load_map(files[1], registry(opt));
    host::save_map_legacy(files[2], *m.module, m.info);
    std::cout << "map downgrade: " << files[1] << " -> " << files[2] << " (format " << (m.info.lift ? 2 : 1)
              << ", a PyTorch archive for monge 0.1)\n";
    return kExitOk;
  }
  if (files.size() != 3) return usage_error("map upgrade: give OLD and NEW (monge map upgrade old.pt new.pt --trust-code)");
  if (!trust)
    return usage_error("map upgrade: reading " + files[1] + " runs the program stored in it; add --trust-code if you trust "
                       "where the file came from");
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(files[1], files[2], ec)) return usage_error("map upgrade: NEW must not be OLD (OLD is kept as it is)");
  auto& reg = registry(opt);
  auto old_map = host::load_map(files[1], reg, {true});
  if (old_map.info.format == 0)
    throw monge::Error(files[1] + ": a TorchScript module is a program and cannot be converted to a data-only map; "
                       "use it with --trust-code");
  if (old_map.info.format >= 3) throw monge::Error(files[1] + ": already a map of format " + std::to_string(old_map.info.format));
  host::save_map(files[2], *old_map.module, old_map.info);
  auto new_map = host::load_map(files[2], reg);
  // The same output on a probe input: the weights went across whole.
  const auto& shape = old_map.info.shape;
  const int64_t align = std::max<int64_t>(1, old_map.tile_alignment);
  const int64_t h = shape.height > 0 ? shape.height : 4 * align, w = shape.width > 0 ? shape.width : 4 * align;
  at::Tensor q = at::rand({1, shape.in_channels, h, w}, at::TensorOptions().dtype(at::kFloat)) * 2 - 1;
  auto run = [&](host::LoadedMap& m) {
    if (auto* st = dynamic_cast<host::StochasticMap*>(m.module.get())) st->reseed(0);
    at::NoGradGuard no_grad;
    return m.module->forward(q);
  };
  const double diff = (run(old_map) - run(new_map)).abs().max().item<double>();
  if (!(diff == 0)) {
    fs::remove(files[2], ec);
    throw monge::Error(files[1] + ": the converted map differs from the old one by " + std::to_string(diff) +
                       " on a probe input; nothing was written");
  }
  std::cout << "map upgrade: " << files[1] << " (format " << old_map.info.format << ") -> " << files[2]
            << " (format " << new_map.info.format << ", data only); the same output on a probe input\n";
  return kExitOk;
}

std::string help() { return kMapHelp; }

}  // namespace

Command map_command() {
  return {"map",
          {{"[OPTIONS] map upgrade OLD NEW --trust-code",
            "convert a map of format 1 or 2 (a program) into the\ndata-only format 3 (map downgrade: the reverse)"}},
          &help, &run};
}

}  // namespace monge::cli
