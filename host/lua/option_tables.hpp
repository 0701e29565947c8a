#pragma once
// Lua option tables read against a declared option set (host/core/options.hpp), and the
// `monge.options` module: the command lines of the commands written in Lua (monge eval, monge
// calibrate) and the option tables of the Lua functions (monge.evaluate, monge.calibrate) are
// parsed and checked by their declarations (host/lua/script_options.hpp).

#include <initializer_list>
#include <string>
#include <vector>

#include <lua.hpp>

#include "host/core/options.hpp"

namespace monge::lua {

/// The options of `set` in the table at `index` (absent or nil: none given), keys beside them
/// allowed by `other`; checked and defaulted by the declaration, errors naming `who` and the key.
Params table_options(lua_State* L, int index, const host::OptionSet& set, const char* who,
                     std::initializer_list<const char*> other = {});

/// Field `key` of the table at `index`: a string or a list of strings (nil: none).
std::vector<std::string> strings_field(lua_State* L, int index, const char* key, const char* who);

/// Pushes validated options as a table keyed by their names (an option without a value is absent).
void push_params(lua_State* L, const Params& p);

void open_options(lua_State* L);  // monge.options.parse, monge.options.check

}  // namespace monge::lua
