// monge.options: command lines and option tables checked by the option sets' declarations.

#include "host/lua/option_tables.hpp"

#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/script_options.hpp"

namespace monge::lua {

std::vector<std::string> strings_field(lua_State* L, int index, const char* key, const char* who) {
  std::vector<std::string> out;
  lua_getfield(L, index, key);
  if (lua_type(L, -1) == LUA_TSTRING) {
    out.emplace_back(lua_tostring(L, -1));
  } else if (lua_istable(L, -1)) {
    for (int i = 1;; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      if (lua_type(L, -1) != LUA_TSTRING) throw std::runtime_error(std::string(who) + ": '" + key + "' must hold strings");
      out.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    throw std::runtime_error(std::string(who) + ": '" + key + "' must be a string or a list of strings");
  }
  lua_pop(L, 1);
  return out;
}

Params table_options(lua_State* L, int index, const host::OptionSet& set, const char* who,
                     std::initializer_list<const char*> other) {
  if (index < 0) index = lua_gettop(L) + index + 1;
  std::vector<std::string> allowed(other.begin(), other.end());
  for (const auto& key : set.lua_keys()) allowed.push_back(key);
  check_keys(L, index, who, allowed);  // also: a table or nothing
  ParamMap given;
  if (lua_istable(L, index))
    for (const auto& spec : set.schema().specs()) {
      if (spec.type == ParamType::StringList) {
        auto list = strings_field(L, index, spec.name.c_str(), who);
        if (!list.empty()) given[spec.name] = std::move(list);
        continue;
      }
      lua_getfield(L, index, spec.name.c_str());
      if (!lua_isnil(L, -1)) given[spec.name] = to_value(L, -1, std::string(who) + ": '" + spec.name + "'");
      lua_pop(L, 1);
    }
  return set.resolve(given, who);
}

void push_params(lua_State* L, const Params& p) {
  lua_createtable(L, 0, static_cast<int>(p.values().size()));
  for (const auto& [name, value] : p.values()) {
    if (auto b = std::get_if<bool>(&value)) lua_pushboolean(L, *b ? 1 : 0);
    else if (auto i = std::get_if<int64_t>(&value)) lua_pushnumber(L, static_cast<lua_Number>(*i));
    else if (auto d = std::get_if<double>(&value)) lua_pushnumber(L, *d);
    else if (auto s = std::get_if<std::string>(&value)) lua_pushlstring(L, s->data(), s->size());
    else if (auto l = std::get_if<std::vector<double>>(&value)) {
      lua_createtable(L, static_cast<int>(l->size()), 0);
      for (size_t k = 0; k < l->size(); ++k) {
        lua_pushnumber(L, (*l)[k]);
        lua_rawseti(L, -2, static_cast<int>(k + 1));
      }
    } else if (auto l = std::get_if<std::vector<std::string>>(&value)) {
      lua_createtable(L, static_cast<int>(l->size()), 0);
      for (size_t k = 0; k < l->size(); ++k) {
        lua_pushlstring(L, (*l)[k].data(), (*l)[k].size());
        lua_rawseti(L, -2, static_cast<int>(k + 1));
      }
    } else if (auto o = std::get_if<std::shared_ptr<Plugin>>(&value)) {
      if (!*o) continue;
      push_plugin(L, *o, name);
    } else {
      continue;  // no value (a required option is never without one)
    }
    lua_setfield(L, -2, name.c_str());
  }
}

namespace {

const host::OptionSet& named_set(lua_State* L, int index) {
  const char* name = luaL_checkstring(L, index);
  const host::OptionSet* set = host::find_option_set(name);
  if (!set) {
    const auto names = host::option_set_names();
    const std::string hint = did_you_mean(name, names);
    throw std::runtime_error(std::string("monge.options: no option set '") + name + "'" +
                             (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  }
  return *set;
}

// monge.options.parse(name, args) -> options, positional, given | nil, message
// The command line `args` (a list of strings) parsed by set `name`'s flags: the options by Lua key
// (typed, the command line's defaults filled in), the positional arguments, and the set of options
// given. A bad command line (unknown flag, missing or bad value, a required option missing) returns
// nil and the message, which names the flag ("eval: --grid expects an integer ...").
int l_parse(lua_State* L) {
  const host::OptionSet& set = named_set(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  std::vector<std::string> args;
  const int n = static_cast<int>(lua_objlen(L, 2));
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      throw std::runtime_error("monge.options.parse: argument " + std::to_string(i) + " is not a string");
    args.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  Params p;
  host::OptionSet::Parsed parsed;
  try {
    parsed = set.parse(args);
    p = set.resolve_cli(parsed.given);
  } catch (const ParamError& e) {
    lua_pushnil(L);
    lua_pushstring(L, e.what());
    return 2;
  }
  push_params(L, p);
  lua_createtable(L, static_cast<int>(parsed.positional.size()), 0);
  for (size_t i = 0; i < parsed.positional.size(); ++i) {
    lua_pushlstring(L, parsed.positional[i].data(), parsed.positional[i].size());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_createtable(L, 0, static_cast<int>(parsed.given.size()));
  for (const auto& [name, value] : parsed.given) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name.c_str());
  }
  return 3;
}

// monge.options.check(name, options [, who]) -> options
// The option table `options` checked by set `name` (unknown keys with a suggestion, types, ranges;
// errors start with `who`, default the set's name) and returned with the defaults filled in. Keys a
// set leaves to its function (tensors, lists of metrics) are accepted and not returned.
int l_check(lua_State* L) {
  const host::OptionSet& set = named_set(L, 1);
  const std::string who = luaL_optstring(L, 3, set.owner().c_str());
  push_params(L, table_options(L, 2, set, who.c_str()));
  return 1;
}

}  // namespace

void open_options(lua_State* L) {
  get_or_create_table(L, -1, "options");
  set_function<l_parse>(L, "parse");
  set_function<l_check>(L, "check");
  lua_pop(L, 1);
}

}  // namespace monge::lua
