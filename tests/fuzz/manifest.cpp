// Fuzzes the batch manifest reader: json::parse_flat (host/core/json.hpp) on every line, as
// read_manifests() in host/apply/batch.cpp does for a manifest a killed run may have torn. A
// line must give its fields or nullopt, never an exception; quote() of each field must parse back.

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "host/core/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  while (std::getline(in, line)) {
    const auto rec = monge::json::parse_flat(line);
    if (!rec) continue;
    for (const auto& [key, value] : *rec) {
      // Fields are written back with quote(): what was read must round-trip (valid UTF-8 only:
      // quote() passes bytes through and nlohmann-json refuses invalid UTF-8).
      const auto back = monge::json::parse_flat("{" + monge::json::quote(key) + ": " + monge::json::quote(value) + "}");
      if (!back || (back->size() != 1 || back->begin()->first != key || back->begin()->second != value)) std::abort();
    }
  }
  return 0;
}
