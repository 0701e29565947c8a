#pragma once
// The device a run uses, as the user names it.

#include <string>

#include <c10/core/Device.h>

namespace monge::host {

/// "auto" (CUDA when available), "cpu" or "cuda"; throws monge::Error naming `who` otherwise, or
/// when CUDA is asked for and missing.
c10::Device resolve_device(const std::string& name, const std::string& who);

}  // namespace monge::host
