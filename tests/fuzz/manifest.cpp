// Fuzzes the batch manifest reader: parse_manifest_line (host/apply/batch.cpp) on every line, as
// read_manifests() does for a manifest a killed run may have torn. A line must give its record or
// nullopt, never an exception; a record written back by json_text (as the batch writes its lines)
// must read back the same, its names included.

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "host/apply/batch.hpp"
#include "host/core/json_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  while (std::getline(in, line)) {
    const auto rec = monge::host::parse_manifest_line(line);
    // The writer's side on the same bytes: any text as a name (invalid UTF-8 becomes U+FFFD) gives
    // a line the reader takes.
    const auto written = monge::host::parse_manifest_line(
        monge::json_text::dump({{"key", line}, {"output", line}, {"status", "ok"}, {"seconds", 0.5}}));
    if (!written || written->status != "ok" || written->key != written->output) std::abort();
    if (written->key != line && written->key.find("\xEF\xBF\xBD") == std::string::npos) std::abort();  // only U+FFFD differs
    if (!rec) continue;
    const auto back = monge::host::parse_manifest_line(
        monge::json_text::dump({{"key", rec->key}, {"status", rec->status}, {"output", rec->output}}));
    if (!back || back->key != rec->key || back->status != rec->status || back->output != rec->output) std::abort();
  }
  return 0;
}
