// Lua bindings for JSON text: monge.json.encode and monge.json.decode, written and read by
// nlohmann-json like every JSON file of the C++ side (docs/lua.md describes the mapping).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "host/core/json_text.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"

namespace monge::lua {

namespace {

using Json = nlohmann::json;  // objects keep their keys sorted, as report.lua always wrote them

// Deeper values are refused both ways: a cycle in a Lua table would recurse forever, and decoding
// recurses once per level on the C stack. Real files (reports, manifests, logs) nest a few levels.
constexpr int kMaxDepth = 200;

// monge.json.null: a value that encodes as null where nil would leave the key out of an object.
char null_sentinel;

// A number as report.lua wrote it before: a whole number below 2^53 as an integer, any other at 10
// significant digits; NaN and infinities as null.
Json number_json(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::abs(v) < 0x1p53) return static_cast<int64_t>(v);
  char text[40];
  std::snprintf(text, sizeof text, "%.10g", v);
  const double rounded = std::strtod(text, nullptr);
  // 0.99999999999 was written "1": an integer, not nlohmann's 1.0.
  if (rounded == std::floor(rounded) && std::abs(rounded) < 0x1p53) return static_cast<int64_t>(rounded);
  return rounded;
}

std::string key_text(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L, index, &n);
    return std::string(s, n);
  }
  if (lua_type(L, index) == LUA_TNUMBER) {
    // tostring's text (1, 2.5): lua_tolstring would turn the key itself into a string mid-traversal.
    lua_pushvalue(L, index);
    std::string s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
  }
  throw std::runtime_error(std::string("monge.json.encode: a table key must be a string or a number, got a ") +
                           luaL_typename(L, index));
}

// The table at `index` is an array when its keys are exactly 1..n (the empty table included): n
// distinct keys, all positive integers, the largest n.
bool is_array(lua_State* L, int index, size_t& n) {
  size_t count = 0;
  double largest = 0;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);  // the value; the key stays for lua_next
    ++count;
    const double k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    if (!(k >= 1 && k == std::floor(k))) {
      lua_pop(L, 1);
      return false;
    }
    largest = std::max(largest, k);
  }
  n = count;
  return largest == static_cast<double>(count);
}

Json to_json(lua_State* L, int index, int depth) {
  switch (lua_type(L, index)) {
    case LUA_TNIL: return nullptr;
    case LUA_TBOOLEAN: return lua_toboolean(L, index) != 0;
    case LUA_TNUMBER: return number_json(lua_tonumber(L, index));
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      return std::string(s, n);
    }
    case LUA_TTABLE: break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, index) == &null_sentinel) return nullptr;
      [[fallthrough]];
    default:
      throw std::runtime_error(std::string("monge.json.encode: cannot encode a ") + luaL_typename(L, index));
  }
  if (depth >= kMaxDepth)
    throw std::runtime_error("monge.json.encode: tables nested more than " + std::to_string(kMaxDepth) +
                             " deep (a table that contains itself?)");
  if (!lua_checkstack(L, 4)) throw std::runtime_error("monge.json.encode: out of Lua stack");
  size_t n = 0;
  if (is_array(L, index, n)) {
    Json out = Json::array();
    for (size_t i = 1; i <= n; ++i) {
      lua_rawgeti(L, index, static_cast<int>(i));
      out.push_back(to_json(L, lua_gettop(L), depth + 1));
      lua_pop(L, 1);
    }
    return out;
  }
  Json out = Json::object();
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    const int value = lua_gettop(L);
    out[key_text(L, value - 1)] = to_json(L, value, depth + 1);
    lua_pop(L, 1);
  }
  return out;
}

// monge.json.encode(value[, indent]): JSON text; without indent on one line in the layout of
// monge's own files ({"a": 1, "b": [1, 2]}), with it spread over lines indented by that many spaces.
int l_encode(lua_State* L) {
  const int indent = lua_isnoneornil(L, 2) ? -1 : static_cast<int>(luaL_checkinteger(L, 2));
  if (!lua_isnoneornil(L, 2) && (indent < 0 || indent > 16))
    throw std::runtime_error("monge.json.encode: indent must be 0 to 16 spaces, got " + std::to_string(indent));
  lua_settop(L, 1);
  const Json value = to_json(L, 1, 0);
  // Invalid UTF-8 in a string (a file name from a hostile archive) becomes U+FFFD, as in the C++ files.
  const std::string text = indent < 0 ? json_text::dump(nlohmann::ordered_json(value))
                                      : value.dump(indent, ' ', false, Json::error_handler_t::replace);
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

void push_json(lua_State* L, const Json& v, int depth) {
  if (depth >= kMaxDepth)
    throw std::runtime_error("monge.json.decode: values nested more than " + std::to_string(kMaxDepth) + " deep");
  if (!lua_checkstack(L, 3)) throw std::runtime_error("monge.json.decode: out of Lua stack");
  switch (v.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded: lua_pushnil(L); return;
    case Json::value_t::boolean: lua_pushboolean(L, v.get<bool>() ? 1 : 0); return;
    case Json::value_t::number_integer: lua_pushnumber(L, static_cast<lua_Number>(v.get<int64_t>())); return;
    case Json::value_t::number_unsigned: lua_pushnumber(L, static_cast<lua_Number>(v.get<uint64_t>())); return;
    case Json::value_t::number_float: lua_pushnumber(L, v.get<double>()); return;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case Json::value_t::array: {
      lua_createtable(L, static_cast<int>(v.size()), 0);
      int i = 0;
      for (const auto& item : v) {
        ++i;
        push_json(L, item, depth + 1);
        lua_rawseti(L, -2, i);
      }
      return;
    }
    case Json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(v.size()));
      for (const auto& [key, item] : v.items()) {
        lua_pushlstring(L, key.data(), key.size());
        push_json(L, item, depth + 1);
        lua_rawset(L, -3);
      }
      return;
    }
    case Json::value_t::binary: break;
  }
  throw std::runtime_error("monge.json.decode: unexpected value");
}

// monge.json.decode(text): the Lua value of JSON text; malformed text is an error.
int l_decode(lua_State* L) {
  size_t n = 0;
  const char* text = luaL_checklstring(L, 1, &n);
  Json value;
  try {
    // The parser is iterative: deep nesting costs memory bounded by the text's length, not stack.
    value = Json::parse(text, text + n);
  } catch (const Json::exception& e) {
    throw std::runtime_error(std::string("monge.json.decode: ") + e.what());
  }
  push_json(L, value, 0);
  return 1;
}

}  // namespace

void open_json(lua_State* L) {
  get_or_create_table(L, -1, "json");
  set_function<l_encode>(L, "encode");
  set_function<l_decode>(L, "decode");
  lua_pushlightuserdata(L, &null_sentinel);
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
}

}  // namespace monge::lua
