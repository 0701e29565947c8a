// `monge version` (and `monge --version`): the versions of monge, the plugin SDK, LibTorch and LuaJIT.

#include <iostream>

#include <luajit.h>
#include <torch/version.h>

#include "host/cli/commands.hpp"
#include "monge/version.hpp"
#include "monge_config.hpp"

namespace monge::cli {
namespace {

int run(const Options&, const std::vector<std::string>&) {
  std::cout << "monge " << monge::kVersion << " (" << MONGE_GIT_REVISION << ")\n"
            << "plugin SDK " << monge::kSdkMajor << "." << monge::kSdkMinor << "\n"
            << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << "\n"
            << LUAJIT_VERSION << "\n";
  return kExitOk;
}

}  // namespace

Command version_command() { return {"version", {{"--version", "print versions (monge, SDK, LibTorch, LuaJIT)"}}, nullptr, &run}; }

}  // namespace monge::cli
