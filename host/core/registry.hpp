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
  /// The plugin's migration of parameters saved by older versions (MONGE_PLUGIN_MIGRATION); null
  /// when it has none.
  ParamMap (*migrate)(const std::string& saved_version, ParamMap saved) = nullptr;
  std::shared_ptr<boost::dll::shared_library> library;
};

/// The deleter of every object a Registry creates: it deletes the object (whose code lives in the
/// plugin's library), then lets go of the library.
struct PluginDeleter {
  std::shared_ptr<boost::dll::shared_library> library;
  void operator()(Plugin* p) const { delete p; }
};

/// The library that `object` (made by a Registry) keeps loaded; nullptr for an object made
/// otherwise (a Lua operator, a host class).
std::shared_ptr<const void> library_of(const std::shared_ptr<const Plugin>& object);

/// `object`, something a plugin built that outlives the plugin object (a network's module), with
/// `library` held loaded for as long as any copy of the returned pointer lives. The object is
/// released before the library (a holder's members are destroyed in reverse order).
template <typename T>
std::shared_ptr<T> keep_library(std::shared_ptr<T> object, std::shared_ptr<const void> library) {
  if (!object || !library) return object;
  struct Holder {
    std::shared_ptr<const void> library;
    std::shared_ptr<T> object;
  };
  auto holder = std::make_shared<Holder>(Holder{std::move(library), std::move(object)});
  T* raw = holder->object.get();
  return std::shared_ptr<T>(std::move(holder), raw);
}

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
  /// resolve() for parameters saved by version `saved_version` of plugin `name` (a map file's
  /// record; "" when the file recorded no version, which counts as older than every version).
  /// When the saved version is older than the loaded plugin's, the plugin's migration (if it has
  /// one) rewrites them first. A parameter the loaded version does not know, saved by another
  /// version, is a ParamError naming the plugin, both versions and the parameter, and saying what
  /// to do.
  Params resolve_saved(const std::string& name, const std::string& saved_version, ParamMap saved,
                       std::optional<Kind> expected = std::nullopt) const;
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
  const PluginRecord& find(const std::string& name, std::optional<Kind> expected) const;
  void add_record(PluginRecord record);

  std::vector<std::filesystem::path> dirs_;
  std::map<std::string, PluginRecord> plugins_;
  std::map<std::string, std::string> refused_;  // name (or file stem) -> why
  std::set<std::string> conflicted_;            // names provided by two files
  std::vector<std::string> warnings_;
};

}  // namespace monge::host
