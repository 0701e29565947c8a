// Fuzzes plugin parameters read from text: a plugin record {"name": ..., "params": {...}} as map
// headers hold them (host/map/param_records.hpp), then validated by a Schema (monge/params.hpp)
// that declares every parameter type, as the registry does for the named plugin. Any text must
// give resolved parameters inside the declared ranges or monge::Error (ParamError for the Schema),
// with its "did you mean" hint.

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "host/map/param_records.hpp"
#include "monge/params.hpp"

namespace {

const monge::Schema& schema() {
  static const monge::Schema s = monge::Schema()
                                     .boolean("flag", false, "a boolean")
                                     .integer("channels", 32, 1, 4096, "an integer in a range")
                                     .integer("depth", 3, 0, 8, "another")
                                     .real("sigma", 1.5, 0.0, 100.0, "a number in a range")
                                     .real("tau", 1e-3, -1e9, 1e9, "a wide one")
                                     .string("path", "", "a string")
                                     .choice("psi", "kl", {"kl", "chi2", "softplus", "identity"}, "a choice")
                                     .reals("weights", {1.0, 2.0}, 0.0, 10.0, "a list of numbers");
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const auto [name, version, given] = monge::host::read_spec(j, "network");
    // A recorded version is short and plain (it reaches error messages and terminals).
    if (version.size() > monge::host::kMaxVersionLength) std::abort();
    for (char c : version)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '+' && c != '-' && c != '_') std::abort();
    const monge::Params p = schema().resolve(given, name);
    if (p.integer("channels") < 1 || p.integer("channels") > 4096) std::abort();
    if (!(p.real("sigma") >= 0 && p.real("sigma") <= 100)) std::abort();
    for (double w : p.reals("weights"))
      if (!(w >= 0 && w <= 10)) std::abort();
    (void)p.boolean("flag");
    (void)p.string("path");
    (void)p.string("psi");
    // What a map file records of them reads back to the same values.
    const auto again = monge::host::param_map(monge::host::params_json(p, name), "again");
    if (schema().resolve(again, name).values().size() != p.values().size()) std::abort();
  } catch (const monge::Error&) {
  }
  return 0;
}
