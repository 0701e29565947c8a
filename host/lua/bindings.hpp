#pragma once
// Entry points of the binding files; each adds its functions to the module table on the stack.

#include <memory>
#include <optional>
#include <string>

#include <lua.hpp>

#include "monge/params.hpp"
#include "monge/plugin.hpp"

namespace monge::lua {

void open_plugins(lua_State* L);  // host/lua/plugins.cpp: monge.operator, monge.noise, ...
void open_data(lua_State* L);     // host/lua/data.cpp: monge.data.*
void open_image(lua_State* L);    // host/lua/image.cpp: monge.image.* (stubs raising an error without libvips)
void open_train(lua_State* L);    // host/lua/train.cpp: monge.train, monge.load_map
void open_ot(lua_State* L);       // host/lua/ot.cpp: monge.ot.* (discrete OT references)
void open_classifier(lua_State* L);  // host/lua/classifier.cpp: monge.train_classifier, monge.classifier
void open_wiener(lua_State* L);      // host/lua/wiener.cpp: monge.wiener, monge.wiener_restore, monge.wiener_info
void open_json(lua_State* L);        // host/lua/json.cpp: monge.json.encode, monge.json.decode

/// Pushes a plugin object as userdata ("monge.Plugin").
void push_plugin(lua_State* L, std::shared_ptr<Plugin> object, const std::string& name,
                 std::shared_ptr<const Params> params = nullptr);
/// The plugin object at `index`, or nullptr if the value there is not one.
std::shared_ptr<Plugin> test_plugin(lua_State* L, int index);

/// A plugin object with the name and resolved parameters it was created with (params is null for
/// objects defined in Lua).
struct PluginRef {
  std::shared_ptr<Plugin> object;
  std::string name;
  std::shared_ptr<const Params> params;
};
std::optional<PluginRef> test_plugin_ref(lua_State* L, int index);
/// Converts the Lua value at `index` into a parameter value (for plugin params tables).
Value to_value(lua_State* L, int index, const std::string& key);

}  // namespace monge::lua
