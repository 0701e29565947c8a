#pragma once
// JSON text as monge's files have always laid it out, written by nlohmann-json: one line, ", "
// between members and ": " after keys (Python's json.dumps layout), so that `grep '"status": "ok"'`
// over a manifest and the Lua patterns over log.jsonl keep working. nlohmann-json writes every key
// and value; only the separators are ours.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

namespace monge::json_text {

// A value's own text. Invalid UTF-8 (a file name from a hostile archive) becomes U+FFFD instead
// of an exception; other text is written as is, with the escapes JSON requires.
inline std::string scalar(const nlohmann::ordered_json& v) {
  return v.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
}

inline void append(std::string& out, const nlohmann::ordered_json& v) {
  if (v.is_object()) {
    out += '{';
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it != v.begin()) out += ", ";
      out += scalar(it.key());
      out += ": ";
      append(out, it.value());
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it != v.begin()) out += ", ";
      append(out, *it);
    }
    out += ']';
  } else {
    out += scalar(v);
  }
}

// `v` on one line: {"key": "value", "n": 1.5, "list": [1, 2]}, members in insertion order.
inline std::string dump(const nlohmann::ordered_json& v) {
  std::string out;
  append(out, v);
  return out;
}

// `v` rounded to `digits` significant digits, as the files printed it before nlohmann-json wrote
// them: a whole number as an integer (20, not 20.0), others in the shortest text that reads back
// as the rounded value; null when not finite.
inline nlohmann::ordered_json number(double v, int digits) {
  if (!std::isfinite(v)) return nullptr;
  char text[40];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  const double rounded = std::strtod(text, nullptr);
  if (rounded == std::trunc(rounded) && std::abs(rounded) < 0x1p53) return static_cast<int64_t>(rounded);
  return rounded;
}

}  // namespace monge::json_text
