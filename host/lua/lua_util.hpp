#pragma once
// A small helper layer over the Lua C API, shared by all bindings.

#include <cstddef>
#include <exception>
#include <initializer_list>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <lua.hpp>

#include "host/core/text.hpp"
#include "monge/params.hpp"

namespace monge::lua {

/// Pushes "file:line: " of the nearest Lua function on the call stack (skipping C functions and
/// frames lost to tail calls, where luaL_where would give nothing), or "" if there is none.
inline void push_where(lua_State* L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

/// Wraps a binding so that a C++ exception becomes a Lua error carrying the real message and the
/// calling script's file:line. LuaJIT would otherwise report a bare "C++ exception". Lua errors
/// raised inside F (luaL_check*, lua_error) are not std::exceptions and pass through untouched.
template <lua_CFunction F>
int guard(lua_State* L) {
  {
    std::string msg;
    try {
      return F(L);
    } catch (const std::exception& e) {
      // c10::Error messages carry a C++ backtrace after the first line; users need the first line.
      msg = host::without_trace(e);
    }
    push_where(L);
    lua_pushlstring(L, msg.data(), msg.size());
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/// A userdata box's __gc: destroys the box and leaves an empty one (which holds nothing) in its
/// place, so that a second call, or a method called afterwards, meets an empty object and never
/// freed memory. Userdata of another type (`getmetatable(a).__gc(b)`) are left alone.
template <class Box>
int gc_box(lua_State* L, const char* meta) {
  if (auto* box = static_cast<Box*>(luaL_testudata(L, 1, meta))) {
    box->~Box();
    new (box) Box();
  }
  return 0;
}

/// The box at `index` if it is a userdata of metatable `meta`, else nullptr. A box whose __gc has
/// run (`alive(box)` false) is an error naming `what`.
template <class Box, class Alive>
Box* test_box_alive(lua_State* L, int index, const char* meta, const char* what, Alive alive) {
  auto* box = static_cast<Box*>(luaL_testudata(L, index, meta));
  if (box && !alive(*box))
    throw std::runtime_error(std::string("this ") + what + " was freed (its __gc was called) and cannot be used");
  return box;
}

/// Registers `F` (guarded) as field `name` of the table at the top of the stack.
template <lua_CFunction F>
void set_function(lua_State* L, const char* name) {
  lua_pushcfunction(L, &guard<F>);
  lua_setfield(L, -2, name);
}

/// A field of a userdata type as its __index serves it: the name and how to push its value.
template <class Box>
struct Field {
  const char* name;
  void (*push)(lua_State* L, Box& box);
};

/// __index through a table of fields: pushes field `key` of `box` and returns 1; an unknown key is
/// an error naming `what` and listing every field (in the table's order).
template <class Box, size_t N>
int push_field(lua_State* L, Box& box, const char* what, const std::string& key, const Field<Box> (&fields)[N]) {
  for (const Field<Box>& f : fields)
    if (key == f.name) {
      f.push(L, box);
      return 1;
    }
  std::vector<std::string> names;
  std::string list;
  for (const Field<Box>& f : fields) {
    names.emplace_back(f.name);
    list += (list.empty() ? "" : ", ") + names.back();
  }
  const std::string hint = did_you_mean(key, names);
  throw std::runtime_error(std::string(what) + " has no field '" + key + "' (" +
                           (hint.empty() ? "" : "did you mean '" + hint + "'? ") + "it has " + list + ")");
}

/// Creates the metatable `meta` of a userdata type with __index, __tostring and __gc (left on the
/// stack); returns false, doing nothing else, when it exists already.
template <lua_CFunction Index, lua_CFunction ToString, lua_CFunction Gc>
bool new_object_metatable(lua_State* L, const char* meta) {
  if (!luaL_newmetatable(L, meta)) return false;
  set_function<Index>(L, "__index");
  set_function<ToString>(L, "__tostring");
  lua_pushcfunction(L, Gc);
  lua_setfield(L, -2, "__gc");
  return true;
}

/// Returns the table `name` inside the table at `index`, creating it if needed (pushed on stack).
inline void get_or_create_table(lua_State* L, int index, const char* name) {
  index = index < 0 ? lua_gettop(L) + index + 1 : index;
  lua_getfield(L, index, name);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, index, name);
  }
}

/// Pushes a new table holding `entries` (numbers, or strings).
template <class Value>
void push_table(lua_State* L, const std::map<std::string, Value>& entries) {
  lua_createtable(L, 0, static_cast<int>(entries.size()));
  for (const auto& [key, value] : entries) {
    if constexpr (std::is_arithmetic_v<Value>) lua_pushnumber(L, static_cast<lua_Number>(value));
    else lua_pushstring(L, value.c_str());
    lua_setfield(L, -2, key.c_str());
  }
}

/// String field of the table at `index`, or `def` if absent. Errors if present but not a string.
std::string opt_string_field(lua_State* L, int index, const char* key, const std::string& def);
/// Number field of the table at `index`, or `def` if absent.
double opt_number_field(lua_State* L, int index, const char* key, double def);
/// Throws std::runtime_error listing unknown keys of the options table at `index`.
void check_keys(lua_State* L, int index, const char* function, std::initializer_list<const char*> allowed);
void check_keys(lua_State* L, int index, const char* function, const std::vector<std::string>& allowed);

}  // namespace monge::lua
