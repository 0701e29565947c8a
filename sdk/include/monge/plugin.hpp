#pragma once
/// The base class of everything a plugin creates, plugin kinds, and the error type plugins throw.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

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
};

/// Thrown by plugins for invalid input at run time (wrong shapes, out-of-domain values). The host
/// reports the message as it is, so say what was wrong and what to do.
class MONGE_SDK_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace monge
