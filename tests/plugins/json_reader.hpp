#pragma once
// A small JSON reader for test fixtures: objects, arrays, numbers, strings (without \u escapes),
// booleans and null. Malformed text throws std::runtime_error naming the offset.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace monge::test {

struct JsonValue {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  /// The member `key` of an object; throws when there is none.
  const JsonValue& operator[](const std::string& key) const {
    for (const auto& [k, v] : object)
      if (k == key) return v;
    throw std::runtime_error("json: no member '" + key + "'");
  }
  /// An array of numbers as doubles.
  std::vector<double> numbers() const {
    std::vector<double> out;
    for (const auto& v : array) {
      if (v.type != Type::Number) throw std::runtime_error("json: expected an array of numbers");
      out.push_back(v.number);
    }
    return out;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string text) : s_(std::move(text)) {}

  JsonValue parse() {
    JsonValue v = value();
    skip_ws();
    if (i_ != s_.size()) fail("trailing text");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("json: " + what + " at offset " + std::to_string(i_));
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool take(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  bool take_word(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  std::string string_literal() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) fail("unterminated escape");
        const char e = s_[i_++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        if (e == 'u') fail("\\u escapes are not supported");
      }
      out += c;
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  JsonValue value() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end");
    JsonValue v;
    const char c = s_[i_];
    if (c == '{') {
      v.type = JsonValue::Type::Object;
      ++i_;
      if (take('}')) return v;
      do {
        skip_ws();
        std::string key = string_literal();
        expect(':');
        v.object.emplace_back(std::move(key), value());
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      v.type = JsonValue::Type::Array;
      ++i_;
      if (take(']')) return v;
      do v.array.push_back(value());
      while (take(','));
      expect(']');
    } else if (c == '"') {
      v.type = JsonValue::Type::String;
      v.string = string_literal();
    } else if (take_word("true")) {
      v.type = JsonValue::Type::Bool;
      v.boolean = true;
    } else if (take_word("false")) {
      v.type = JsonValue::Type::Bool;
    } else if (take_word("null")) {
      v.type = JsonValue::Type::Null;
    } else {
      const char* begin = s_.c_str() + i_;
      char* end = nullptr;
      v.type = JsonValue::Type::Number;
      v.number = std::strtod(begin, &end);
      if (end == begin) fail("expected a value");
      i_ += static_cast<size_t>(end - begin);
    }
    return v;
  }

  std::string s_;
  size_t i_ = 0;
};

/// Parses the JSON file at `path`.
inline JsonValue read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("json: cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return JsonParser(text.str()).parse();
}

}  // namespace monge::test
