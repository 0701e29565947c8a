#pragma once
// The embedded LuaJIT runtime: one Lua state with the `monge` module available.

#include <filesystem>
#include <string>
#include <vector>

#include <lua.hpp>

namespace monge::lua {

/// Exit codes of `monge` (documented in docs/cli.md and `monge --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,   ///< the pipeline failed (Lua error, bad input, C++ error)
  kExitUsage = 2,   ///< bad command line
  kExitPlugin = 3,  ///< a plugin could not be found or loaded
};

/// Opens the `monge.core` C module (tensors, plugins, data, images) onto the stack.
int open_core(lua_State* L);

class Runtime {
 public:
  Runtime();
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  lua_State* state() { return L_; }

  /// Runs a script file with `args` visible as the global `arg` (arg[0] = script) and as `...`.
  /// Prints an error with its traceback to stderr and returns kExitError when the script fails;
  /// os.exit(n) inside the script exits the process with n.
  int run_file(const std::filesystem::path& script, const std::vector<std::string>& args);

  /// Runs a chunk of Lua code (for tests and `monge run -e`). Same error handling as run_file.
  int run_string(const std::string& code, const std::string& chunk_name = "=(command line)");

  /// Directory holding the Lua modules of the running program (share/monge/lua).
  static std::filesystem::path lua_dir();

 private:
  int call_chunk(int nargs);
  lua_State* L_;
};

/// True while the given state is open; Lua-defined plugins check it before touching the state.
bool state_alive(lua_State* L);

}  // namespace monge::lua
