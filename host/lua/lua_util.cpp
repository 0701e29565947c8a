// Option-table helpers shared by all bindings (declared in lua_util.hpp).

#include "host/lua/lua_util.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "monge/params.hpp"

namespace monge::lua {

namespace {

int absolute(lua_State* L, int index) {
  return (index < 0 && index > LUA_REGISTRYINDEX) ? lua_gettop(L) + index + 1 : index;
}

// How a key of an options table reads in a message: 'name' for strings, [1] for anything else.
std::string key_text(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TSTRING) return "'" + std::string(lua_tostring(L, index)) + "'";
  if (lua_type(L, index) == LUA_TNUMBER) {
    lua_pushvalue(L, index);  // lua_tostring converts in place; never on a key lua_next still needs
    std::string s = "[" + std::string(lua_tostring(L, -1)) + "]";
    lua_pop(L, 1);
    return s;
  }
  return std::string("(a ") + luaL_typename(L, index) + " key)";
}

}  // namespace

namespace {

// Pushes field `key` of the table at `index` and returns true if it is present with Lua type
// `type`; returns false (nothing pushed) when the table or the field is absent; throws when the
// field has another type.
bool push_field(lua_State* L, int index, const char* key, int type, const char* type_name) {
  index = absolute(L, index);
  if (!lua_istable(L, index)) return false;
  lua_getfield(L, index, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  if (lua_type(L, -1) != type) {
    const std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw std::runtime_error(std::string("option '") + key + "' must be a " + type_name + ", got " + got);
  }
  return true;
}

}  // namespace

std::string opt_string_field(lua_State* L, int index, const char* key, const std::string& def) {
  if (!push_field(L, index, key, LUA_TSTRING, "string")) return def;
  std::string value = lua_tostring(L, -1);
  lua_pop(L, 1);
  return value;
}

double opt_number_field(lua_State* L, int index, const char* key, double def) {
  if (!push_field(L, index, key, LUA_TNUMBER, "number")) return def;
  const double value = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return value;
}

void check_keys(lua_State* L, int index, const char* function, std::initializer_list<const char*> allowed) {
  check_keys(L, index, function, std::vector<std::string>(allowed.begin(), allowed.end()));
}

void check_keys(lua_State* L, int index, const char* function, const std::vector<std::string>& names) {
  index = absolute(L, index);
  if (lua_isnoneornil(L, index)) return;
  if (!lua_istable(L, index))
    throw std::runtime_error(std::string(function) + ": options must be a table, got " + luaL_typename(L, index));
  std::vector<std::string> unknown;  // already formatted, one per offending key
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);  // the value; the key stays for lua_next
    const bool known = lua_type(L, -1) == LUA_TSTRING &&
                       std::find(names.begin(), names.end(), lua_tostring(L, -1)) != names.end();
    if (!known) {
      std::string msg = "unknown option " + key_text(L, -1);
      if (lua_type(L, -1) == LUA_TSTRING) {
        const std::string hint = did_you_mean(lua_tostring(L, -1), names);
        if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
      }
      unknown.push_back(std::move(msg));
    }
  }
  if (unknown.empty()) return;
  std::sort(unknown.begin(), unknown.end());  // lua_next's order is arbitrary; messages should not be
  std::string msg = std::string(function) + ": ";
  for (size_t i = 0; i < unknown.size(); ++i) msg += (i ? "; " : "") + unknown[i];
  if (unknown.size() > 1 || unknown[0].find("did you mean") == std::string::npos) {
    msg += " (options: ";
    for (size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
    msg += names.empty() ? "none)" : ")";
  }
  throw std::runtime_error(msg);
}

}  // namespace monge::lua
