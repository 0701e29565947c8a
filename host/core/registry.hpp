#pragma once
// The plugin registry: finds plugin libraries, checks their info record before calling any of
// their code, and creates objects that keep their library loaded while they live.

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "monge/params.hpp"
#include "monge/plugin.hpp"

namespace boost::dll {
class shared_library;
}

namespace monge::host {

/// A plugin that could not be loaded or used: the message names the file and what was wrong.
class PluginError : public monge::Error {
 public:
  using monge::Error::Error;
};

/// Parses "operator", "noise", ... ; nullopt for anything else.
std::optional<Kind> parse_kind(const std::string& text);

/// Everything known about one loaded plugin.
struct PluginRecord {
  std::string name;
  Kind kind = Kind::Operator;
  std::string version;
  std::string summary;
  std::filesystem::path file;
  int sdk_major = 0, sdk_minor = 0;
  std::string torch_version;
  std::string compiler;
  const Schema* schema = nullptr;
  Plugin* (*create)(const Params&) = nullptr;
  std::shared_ptr<boost::dll::shared_library> library;
};

/// Loads and checks one plugin file. Throws PluginError naming the file and what was wrong.
PluginRecord load_plugin_file(const std::filesystem::path& file);

/// File name suffix of plugin libraries found by scanning directories.
inline constexpr const char* kPluginSuffix = ".monge.so";

class Registry {
 public:
  /// Plugins are searched in `dirs`, in order. Nothing is loaded until scan().
  explicit Registry(std::vector<std::filesystem::path> dirs = {});

  /// The search path of the running program: its built-in plugin directory, then each entry of
  /// MONGE_PLUGIN_PATH (colon-separated) unless `use_env` is false.
  static std::vector<std::filesystem::path> default_dirs(bool use_env = true);
  /// The process-wide registry used by the CLI and Lua. Scans on first use.
  static Registry& global();
  /// Replaces the search path of the global registry (CLI options); call before first use.
  static void configure_global(std::vector<std::filesystem::path> dirs);

  /// Loads every `*.monge.so` in the search directories. Bad files become warnings.
  void scan();
  /// Adds a directory (scanned at once) or a single plugin file (loaded at once; errors throw).
  void add_path(const std::filesystem::path& path);

  /// The plugin called `name`; throws PluginError saying why it is unknown or unusable.
  const PluginRecord& find(const std::string& name) const;
  /// Validates `given` against plugin `name`'s schema and fills defaults. When `expected` is
  /// set, the plugin must be of that kind. Throws PluginError or ParamError.
  Params resolve(const std::string& name, const ParamMap& given, std::optional<Kind> expected = std::nullopt) const;
  /// Creates an object from plugin `name` with parameters already resolved by resolve().
  std::shared_ptr<Plugin> instantiate(const std::string& name, const Params& params) const;
  /// resolve() then instantiate().
  std::shared_ptr<Plugin> create(const std::string& name, const ParamMap& given,
                                 std::optional<Kind> expected = std::nullopt) const {
    return instantiate(name, resolve(name, given, expected));
  }

  /// All usable plugins, sorted by kind then name.
  std::vector<const PluginRecord*> list() const;
  /// Warnings collected while scanning (one per skipped file or duplicate).
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

 private:
  void scan_dir(const std::filesystem::path& dir);
  void add_record(PluginRecord record);

  std::vector<std::filesystem::path> dirs_;
  std::map<std::string, PluginRecord> plugins_;
  std::map<std::string, std::string> refused_;  // name (or file stem) -> why
  std::set<std::string> conflicted_;            // names provided by two files
  std::vector<std::string> warnings_;
};

}  // namespace monge::host
