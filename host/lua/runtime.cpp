#include "host/lua/runtime.hpp"

#include <cstdio>
#include <iostream>
#include <mutex>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>

#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/option_tables.hpp"
#include "host/lua/tensor.hpp"
#include "monge/version.hpp"
#include "monge_config.hpp"
#include "monge_config.hpp"

namespace fs = std::filesystem;

namespace monge::lua {

namespace {

std::mutex g_alive_mutex;
std::set<lua_State*>& alive_states() {
  static std::set<lua_State*> s;
  return s;
}

// Message handler for lua_pcall: appends the traceback to the error message.
int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_pushstring(L, msg);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

int core_version(lua_State* L) {
  lua_pushstring(L, kVersion);
  return 1;
}

}  // namespace

bool state_alive(lua_State* L) {
  std::lock_guard<std::mutex> lock(g_alive_mutex);
  return alive_states().count(L) != 0;
}

int open_core(lua_State* L) {
  lua_newtable(L);
  set_function<core_version>(L, "version_string");
  lua_pushstring(L, kVersion);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, MONGE_GIT_REVISION);  // of the source tree this monge was built from
  lua_setfield(L, -2, "git_revision");
  lua_pushinteger(L, kSdkMajor);
  lua_setfield(L, -2, "sdk_major");
  lua_pushinteger(L, kSdkMinor);
  lua_setfield(L, -2, "sdk_minor");
  open_tensor(L);
  open_plugins(L);
  open_data(L);
  open_image(L);
  open_train(L);
  open_ot(L);
  open_classifier(L);
  open_wiener(L);
  open_json(L);
  open_options(L);
  return 1;
}

fs::path Runtime::lua_dir() {
  const fs::path exe = boost::dll::program_location().string();
  return exe.parent_path().parent_path() / MONGE_LUA_SUBDIR;
}

Runtime::Runtime() : L_(luaL_newstate()) {
  if (!L_) throw std::runtime_error("cannot create a Lua state (out of memory)");
  {
    std::lock_guard<std::mutex> lock(g_alive_mutex);
    alive_states().insert(L_);
  }
  luaL_openlibs(L_);
  // require "monge.core" -> the C module; require "monge" -> scripts/lua/monge/init.lua.
  lua_getglobal(L_, "package");
  lua_getfield(L_, -1, "preload");
  lua_pushcfunction(L_, &open_core);
  lua_setfield(L_, -2, "monge.core");
  lua_pop(L_, 1);
  const std::string dir = lua_dir().string();
  lua_getfield(L_, -1, "path");
  std::string path = dir + "/?.lua;" + dir + "/?/init.lua;" + (lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "");
  lua_pop(L_, 1);
  lua_pushstring(L_, path.c_str());
  lua_setfield(L_, -2, "path");
  lua_pop(L_, 1);
}

Runtime::~Runtime() {
  {
    std::lock_guard<std::mutex> lock(g_alive_mutex);
    alive_states().erase(L_);
  }
  lua_close(L_);
}

int Runtime::call_chunk(int nargs) {
  const int base = lua_gettop(L_) - nargs;  // index of the chunk
  lua_pushcfunction(L_, &traceback_handler);
  lua_insert(L_, base);
  const int rc = lua_pcall(L_, nargs, 0, base);
  lua_remove(L_, base);
  if (rc == 0) return kExitOk;
  const char* msg = lua_tostring(L_, -1);
  std::fflush(stdout);
  std::cerr << "monge: error: " << (msg ? msg : "(no message)") << std::endl;
  lua_pop(L_, 1);
  return kExitError;
}

int Runtime::run_file(const fs::path& script, const std::vector<std::string>& args) {
  std::error_code ec;
  if (!fs::is_regular_file(script, ec)) {
    std::cerr << "monge: error: cannot open script '" << script.string()
              << "': no such file (give the path to a .lua pipeline)" << std::endl;
    return kExitUsage;
  }
  // Global `arg` as in the standalone interpreter.
  lua_createtable(L_, static_cast<int>(args.size()), 1);
  lua_pushstring(L_, script.string().c_str());
  lua_rawseti(L_, -2, 0);
  for (size_t i = 0; i < args.size(); ++i) {
    lua_pushstring(L_, args[i].c_str());
    lua_rawseti(L_, -2, static_cast<int>(i + 1));
  }
  lua_setglobal(L_, "arg");
  if (luaL_loadfile(L_, script.string().c_str()) != 0) {
    std::cerr << "monge: error: " << lua_tostring(L_, -1) << std::endl;
    lua_pop(L_, 1);
    return kExitError;
  }
  for (const auto& a : args) lua_pushstring(L_, a.c_str());
  return call_chunk(static_cast<int>(args.size()));
}

int Runtime::run_string(const std::string& code, const std::string& chunk_name) {
  if (luaL_loadbuffer(L_, code.data(), code.size(), chunk_name.c_str()) != 0) {
    std::cerr << "monge: error: " << lua_tostring(L_, -1) << std::endl;
    lua_pop(L_, 1);
    return kExitError;
  }
  return call_chunk(0);
}

}  // namespace monge::lua
