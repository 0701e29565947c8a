#pragma once
// The little JSON monge writes and reads back itself: escaped strings for JSONL records, and a
// reader (nlohmann-json) for flat objects of strings, numbers, booleans and null (manifest lines).

#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace monge::json {

/// `s` as a JSON string literal, quotes included.
inline std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

/// Parses one flat JSON object ({"k": "v", "n": 1.5, "b": true, "z": null}) into its fields as
/// text (strings unescaped; numbers, booleans and null as nlohmann-json writes them). Nested values
/// and malformed text (a bad escape included) give nullopt: a torn or damaged line of a manifest
/// is skipped, never fatal.
inline std::optional<std::map<std::string, std::string>> parse_flat(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (value.is_structured()) return std::nullopt;
    out[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return out;
}

}  // namespace monge::json
