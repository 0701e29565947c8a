// Fuzzes list_inputs (host/apply/batch.hpp) on an archive read by libarchive: tar headers,
// checksums, GNU long names, pax records, sizes (and whatever format libarchive detects in the
// bytes, compressed or not). Any bytes must give well-formed members or monge::Error.

#include <cstdint>
#include <string>
#include <vector>

#include "host/apply/batch.hpp"
#include "monge/plugin.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = monge::fuzz::write_input("x.tar", data, size);
  try {
    // include "*": every regular member, whatever its extension.
    const auto items = monge::host::list_inputs({file.string()}, {"*"}, {});
    for (const auto& it : items) {
      if (it.key.empty() || (!it.archive.empty() && it.member < 0) || it.size < -1) std::abort();
    }
  } catch (const monge::Error&) {
  }
  return 0;
}
