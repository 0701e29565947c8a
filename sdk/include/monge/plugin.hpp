#pragma once
/// The base class of everything a plugin creates, plugin kinds, and the error type plugins throw.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "monge/version.hpp"

/// Marks SDK classes visible across shared libraries, so that dynamic_cast and exception matching
/// work between the host and plugins built with hidden visibility.
#define MONGE_SDK_API __attribute__((visibility("default")))

namespace monge {

/// The families of plugins the host knows about.
enum class Kind { Operator, Noise, Cost, Network, Solver, Metric };

/// Lower-case name of a kind, as used in info records, Lua and the CLI ("operator", "noise", ...).
inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Operator: return "operator";
    case Kind::Noise: return "noise";
    case Kind::Cost: return "cost";
    case Kind::Network: return "network";
    case Kind::Solver: return "solver";
    case Kind::Metric: return "metric";
  }
  return "unknown";
}

/// Base of every object a plugin creates. Objects are always owned through std::shared_ptr handed
/// out by the host, which keeps the plugin's library loaded while any of them lives.
class MONGE_SDK_API Plugin {
 public:
  virtual ~Plugin() = default;
  /// The family this object belongs to.
  virtual Kind kind() const = 0;

  /// Versioned capabilities: how the SDK grows without changing an interface's layout (SDK 7).
  /// A capability is a plain struct with `static constexpr const char* kName` (e.g.
  /// "monge.example") and `static constexpr int kVersion`; version n + 1 of a struct only appends
  /// members to version n. A plugin that offers it returns a pointer to one that lives as long as
  /// the object for every version from 1 to the one it was built with (monge::offer() does this),
  /// nullptr for anything else. Hosts ask through monge::capability<Cap>(object).
  virtual const void* capability(std::string_view name, int version) const {
    (void)name;
    (void)version;
    return nullptr;
  }
};

/// The capability `Cap` of `object` at the version this SDK knows, or nullptr when the plugin does
/// not offer it (or only an older version of it).
template <typename Cap>
const Cap* capability(const Plugin& object) {
  return static_cast<const Cap*>(object.capability(Cap::kName, Cap::kVersion));
}

/// For a plugin's capability(): `cap` when `name` is Cap's and `version` is one `cap` answers
/// (1 to Cap::kVersion), else nullptr. Chain several with ||-like fallbacks:
///     if (auto p = monge::offer<Tiling>(name, version, &tiling_)) return p;
template <typename Cap>
const void* offer(std::string_view name, int version, const Cap* cap) {
  return name == Cap::kName && version >= 1 && version <= Cap::kVersion ? cap : nullptr;
}

/// Thrown by plugins for invalid input at run time (wrong shapes, out-of-domain values). The host
/// reports the message as it is, so say what was wrong and what to do.
class MONGE_SDK_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace monge
