#pragma once
// The JSON fixtures of tests/fixtures/ (written by their Python scripts), read with nlohmann-json.
#include <fstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace monge::test {

/// Parses the JSON file at `path`; throws std::runtime_error naming it when it cannot be read or
/// parsed.
inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("json: cannot open " + path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("json: " + path + ": " + e.what());
  }
}

}  // namespace monge::test
