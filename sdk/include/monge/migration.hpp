#pragma once
/// Helpers for a plugin's migration of parameters saved by an older version of itself
/// (MONGE_PLUGIN_MIGRATION in monge/export.hpp): comparing version strings and renaming a
/// parameter. The host compares versions with the same function.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "monge/params.hpp"

namespace monge {

/// Orders plugin versions such as "1.0", "1.0.0", "2.10.1": dot-separated parts compared one by
/// one, numerically when both are digits (leading zeros ignored), as text otherwise; a missing
/// part counts as "0" (so "2.0" equals "2.0.0"). The empty version (a file written before versions
/// were recorded) is older than every other. Returns -1, 0 or 1.
inline int compare_versions(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return a.empty() == b.empty() ? 0 : (a.empty() ? -1 : 1);
  auto digits = [](std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
      if (c < '0' || c > '9') return false;
    return true;
  };
  auto next = [](std::string_view& s) {
    const size_t dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    return part.empty() ? std::string_view("0") : part;
  };
  while (!a.empty() || !b.empty()) {
    std::string_view x = next(a), y = next(b);
    if (digits(x) && digits(y)) {
      while (x.size() > 1 && x[0] == '0') x.remove_prefix(1);
      while (y.size() > 1 && y[0] == '0') y.remove_prefix(1);
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
    }
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

/// True when version `a` is older than `b` (see compare_versions).
inline bool version_less(std::string_view a, std::string_view b) { return compare_versions(a, b) < 0; }

/// Moves parameter `from` to the name `to` when `from` is present and `to` is not; returns whether
/// it did. For a migration whose version renamed a parameter.
inline bool rename_param(ParamMap& params, const std::string& from, const std::string& to) {
  auto it = params.find(from);
  if (it == params.end() || params.count(to)) return false;
  Value value = std::move(it->second);
  params.erase(it);
  params.emplace(to, std::move(value));
  return true;
}

}  // namespace monge
