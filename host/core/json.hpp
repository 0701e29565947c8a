#pragma once
// The little JSON monge writes and reads back itself: escaped strings for JSONL records, and a
// reader for flat objects of strings, numbers, booleans and null (manifest lines).

#include <cstdio>
#include <map>
#include <optional>
#include <string>

namespace monge::json {

/// `s` as a JSON string literal, quotes included.
inline std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

/// Parses one flat JSON object ({"k": "v", "n": 1.5, "b": true, "z": null}) into its fields as
/// text (strings unescaped; numbers, booleans and null as written). Nested values and malformed
/// text give nullopt: a torn last line of a file written by a killed process is simply skipped.
inline std::optional<std::map<std::string, std::string>> parse_flat(const std::string& line) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto ws = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) ++i;
  };
  auto string = [&]() -> std::optional<std::string> {
    if (i >= line.size() || line[i] != '"') return std::nullopt;
    std::string s;
    for (++i; i < line.size(); ++i) {
      char c = line[i];
      if (c == '"') {
        ++i;
        return s;
      }
      if (c == '\\') {
        if (++i >= line.size()) return std::nullopt;
        switch (line[i]) {
          case 'n': s += '\n'; break;
          case 'r': s += '\r'; break;
          case 't': s += '\t'; break;
          case 'u': {
            if (i + 4 >= line.size()) return std::nullopt;
            const unsigned long code = std::stoul(line.substr(i + 1, 4), nullptr, 16);
            if (code < 0x80) s += char(code);
            else if (code < 0x800) s += char(0xC0 | (code >> 6)), s += char(0x80 | (code & 0x3F));
            else s += char(0xE0 | (code >> 12)), s += char(0x80 | ((code >> 6) & 0x3F)), s += char(0x80 | (code & 0x3F));
            i += 4;
            break;
          }
          default: s += line[i];
        }
      } else {
        s += c;
      }
    }
    return std::nullopt;
  };
  ws();
  if (i >= line.size() || line[i++] != '{') return std::nullopt;
  ws();
  if (i < line.size() && line[i] == '}') return out;
  while (true) {
    ws();
    auto key = string();
    if (!key) return std::nullopt;
    ws();
    if (i >= line.size() || line[i++] != ':') return std::nullopt;
    ws();
    if (i < line.size() && line[i] == '"') {
      auto v = string();
      if (!v) return std::nullopt;
      out[*key] = *v;
    } else {
      const size_t start = i;
      while (i < line.size() && line[i] != ',' && line[i] != '}') {
        if (line[i] == '{' || line[i] == '[' || line[i] == '"') return std::nullopt;
        ++i;
      }
      std::string v = line.substr(start, i - start);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      if (v.empty()) return std::nullopt;
      out[*key] = v;
    }
    ws();
    if (i >= line.size()) return std::nullopt;
    if (line[i] == ',') {
      ++i;
      continue;
    }
    if (line[i] == '}') return out;
    return std::nullopt;
  }
}

}  // namespace monge::json
