#include "host/map/param_records.hpp"

#include <algorithm>
#include <vector>

namespace monge::host {

using nlohmann::json;

json params_json(const Params& params, const std::string& owner) {
  json out = json::object();
  for (const auto& [key, value] : params.values()) {
    if (auto b = std::get_if<bool>(&value)) out[key] = *b;
    else if (auto i = std::get_if<int64_t>(&value)) out[key] = *i;
    else if (auto d = std::get_if<double>(&value)) out[key] = *d;
    else if (auto s = std::get_if<std::string>(&value)) out[key] = *s;
    else if (auto l = std::get_if<std::vector<double>>(&value)) out[key] = *l;
    else if (std::holds_alternative<std::monostate>(value)) continue;
    else throw Error(owner + ": parameter '" + key + "' holds an object, which a map file cannot record");
  }
  return out;
}

ParamMap param_map(const json& j, const std::string& what) {
  if (!j.is_object()) throw Error(what + " must be an object");
  ParamMap out;
  for (const auto& [key, val] : j.items()) {
    if (val.is_boolean()) out[key] = val.get<bool>();
    else if (val.is_number_integer()) out[key] = val.get<int64_t>();
    else if (val.is_number_float()) out[key] = val.get<double>();
    else if (val.is_string()) out[key] = val.get<std::string>();
    else if (val.is_array()) {
      std::vector<double> list;
      for (const auto& x : val) {
        if (!x.is_number()) throw Error(what + ": '" + key + "' must be a list of numbers");
        list.push_back(x.get<double>());
      }
      out[key] = std::move(list);
    } else {
      throw Error(what + ": '" + key + "' has a value of a type a parameter cannot have");
    }
  }
  return out;
}

SavedSpec read_spec(const json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("params"))
    throw Error("the " + what + " record must be {\"name\": ..., \"version\": ..., \"params\": {...}}");
  SavedSpec out{j["name"].get<std::string>(), "", param_map(j["params"], "the " + what + "'s params")};
  if (const auto v = j.find("version"); v != j.end()) {
    const auto plain = [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' ||
             c == '-' || c == '_';
    };
    if (!v->is_string()) throw Error("the " + what + "'s version must be a string");
    out.version = v->get<std::string>();
    if (out.version.empty() || out.version.size() > kMaxVersionLength ||
        !std::all_of(out.version.begin(), out.version.end(), plain))
      throw Error("the " + what + "'s version must be 1 to " + std::to_string(kMaxVersionLength) +
                  " letters, digits, '.', '+', '-' or '_'");
  }
  return out;
}

json spec_json(const std::string& name, const std::string& version, const Params& params) {
  json out = {{"name", name}};
  if (!version.empty()) out["version"] = version;
  out["params"] = params_json(params, name);
  return out;
}

}  // namespace monge::host
