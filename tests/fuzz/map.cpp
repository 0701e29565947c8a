// Fuzzes load_map (host/map/map_file.hpp) on format-3 map files: the header's records (network,
// operator, lift, noise, notes, metrics, shape) and the weights are checked against the plugins
// they name, which come from a normal build (tests/fuzz/CMakeLists.txt). Any bytes must give a map
// or monge::Error. As in the tensor_file harness, the checksum is made to match first, so that
// mutations reach the records.

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "host/core/registry.hpp"
#include "host/map/tensor_file.hpp"
#include "host/map/map_file.hpp"
#include "monge/plugin.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/fuzz/map_checksum.hpp"

namespace {

const monge::host::Registry& registry() {
  static const monge::host::Registry* reg = [] {
    auto* r = new monge::host::Registry(monge::host::Registry::default_dirs(false));
    r->scan();
    return r;
  }();
  return *reg;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  try {
    (void)registry().find("unet");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_map: %s (build monge's plugins first)\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = monge::fuzz::with_matching_checksum(std::string(reinterpret_cast<const char*>(data), size));
  const auto file = monge::fuzz::write_input("map.pt", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  try {
    auto map = monge::host::load_map(file, registry());
    // A map that loads is run on a few pixels; LibTorch's shape errors there are errors the CLI
    // reports (std::exception), not crashes.
    const int64_t side = std::max<int64_t>(map.tile_alignment, 8);
    if (side <= 64 && map.info.shape.in_channels <= 16) {
      try {
        torch::NoGradGuard no_grad;
        at::Tensor y = torch::zeros({1, map.info.shape.in_channels, side, side});
        (void)map.module->forward(monge::host::map_input(*map.module, map.op.get(), y));
      } catch (const std::exception&) {
      }
    }
  } catch (const monge::Error&) {
  }
  return 0;
}
