#pragma once
// Plugin parameters as map file headers record them: JSON objects of booleans, integers, numbers,
// strings and lists of numbers. Internal to the host (map_file.cpp and the fuzz harnesses); the
// reader takes untrusted text and checks types only: the plugin's Schema checks names and ranges.

#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "monge/params.hpp"

namespace monge::host {

/// `params` as a JSON object; throws monge::Error for an object parameter (`owner` names the plugin).
nlohmann::json params_json(const Params& params, const std::string& owner);

/// A JSON object of parameters as given, type-checked; throws monge::Error naming `what`.
ParamMap param_map(const nlohmann::json& j, const std::string& what);

/// {name, params} of a plugin record {"name": ..., "params": {...}}; throws monge::Error naming `what`.
std::pair<std::string, ParamMap> read_spec(const nlohmann::json& j, const std::string& what);

}  // namespace monge::host
