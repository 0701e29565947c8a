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

/// Longest plugin version a record may hold.
inline constexpr size_t kMaxVersionLength = 64;

/// A plugin record as a file holds it: {"name": ..., "version": ..., "params": {...}}, the version
/// optional ("" when absent: files written before versions were recorded).
struct SavedSpec {
  std::string name;
  std::string version;
  ParamMap params;
};

/// The record `j`, type-checked (the version: 1 to kMaxVersionLength characters of letters,
/// digits and . + - _); throws monge::Error naming `what`.
SavedSpec read_spec(const nlohmann::json& j, const std::string& what);

/// The record of plugin `name` of version `version` (left out when "") with `params`.
nlohmann::json spec_json(const std::string& name, const std::string& version, const Params& params);

}  // namespace monge::host
