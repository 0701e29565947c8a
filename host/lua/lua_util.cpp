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

std::string opt_string_field(lua_State* L, int index, const char* key, const std::string& def) {
  index = absolute(L, index);
  if (!lua_istable(L, index)) return def;
  lua_getfield(L, index, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    const std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw std::runtime_error(std::string("option '") + key + "' must be a string, got " + got);
  }
  std::string value = lua_tostring(L, -1);
  lua_pop(L, 1);
  return value;
}

double opt_number_field(lua_State* L, int index, const char* key, double def) {
  index = absolute(L, index);
  if (!lua_istable(L, index)) return def;
  lua_getfield(L, index, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) {
    const std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw std::runtime_error(std::string("option '") + key + "' must be a number, got " + got);
  }
  const double value = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return value;
}

void check_keys(lua_State* L, int index, const char* function, std::initializer_list<const char*> allowed) {
  index = absolute(L, index);
  if (lua_isnoneornil(L, index)) return;
  if (!lua_istable(L, index))
    throw std::runtime_error(std::string(function) + ": options must be a table, got " + luaL_typename(L, index));
  const std::vector<std::string> names(allowed.begin(), allowed.end());
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
