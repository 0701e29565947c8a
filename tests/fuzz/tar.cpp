// Fuzzes list_inputs (host/apply/batch.hpp) on a tar archive: headers, checksums, GNU long names,
// pax records, sizes and offsets. Any bytes must give members that lie inside the archive or
// monge::Error. The input is written as x.tar (a .tar.gz is read through the same zlib stream).

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
      if (it.key.empty() || it.offset < 0 || it.size < 0) std::abort();
    }
  } catch (const monge::Error&) {
  }
  return 0;
}
