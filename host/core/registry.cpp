#include "host/core/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include <elf.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <torch/version.h>

#include "monge/export.hpp"
#include "monge/migration.hpp"
#include "monge_config.hpp"

namespace fs = std::filesystem;

namespace monge::host {

namespace {

constexpr const char* kInfoSymbol = "monge_plugin_info_record";
constexpr const char* kCreateSymbol = "monge_plugin_create";
constexpr const char* kSchemaSymbol = "monge_plugin_schema";
constexpr const char* kMigrateSymbol = "monge_plugin_migrate";

std::string host_torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

std::string major_minor(const std::string& v) {
  auto first = v.find('.');
  if (first == std::string::npos) return v;
  auto second = v.find('.', first + 1);
  return v.substr(0, second);
}

std::string safe_string(const char* s, size_t max = 256) {
  if (!s) return "";
  return std::string(s, strnlen(s, max));
}

// glibc's dlopen trusts the file's layout: a truncated library makes it touch pages past the end
// of the mapping and the process dies with SIGBUS. So the ELF header and every segment the loader
// will map are checked against the file size before dlopen sees the file.
void check_elf(const fs::path& file) {
  const std::string where = file.string();
  std::error_code ec;
  if (!fs::exists(file, ec)) throw PluginError(where + ": no such plugin file");
  if (!fs::is_regular_file(file, ec)) throw PluginError(where + ": not a regular file");
  const auto size = static_cast<uint64_t>(fs::file_size(file, ec));
  std::ifstream in(file, std::ios::binary);
  Elf64_Ehdr eh{};
  in.read(reinterpret_cast<char*>(&eh), sizeof eh);
  if (in.gcount() < 4 || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    throw PluginError(where + ": not a shared library (no ELF header); remove it from the plugin directory");
  auto bad = [&](const std::string& what) {
    return PluginError(where + ": cannot be loaded (" + what +
                       "); the file is truncated, corrupt or built for another system; rebuild or remove it");
  };
  if (static_cast<size_t>(in.gcount()) < sizeof eh) throw bad("file too short for an ELF header");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) throw bad("not a 64-bit ELF file");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw bad("not a little-endian ELF file");
#if defined(__x86_64__)
  if (eh.e_machine != EM_X86_64) throw bad("built for another CPU architecture (ELF machine " + std::to_string(eh.e_machine) + ")");
#elif defined(__aarch64__)
  if (eh.e_machine != EM_AARCH64) throw bad("built for another CPU architecture (ELF machine " + std::to_string(eh.e_machine) + ")");
#endif
  if (eh.e_type != ET_DYN) throw bad("an ELF file, but not a shared library");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      eh.e_phoff + uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr) > size)
    throw bad("program headers lie outside the file");
  if (eh.e_shoff != 0 && eh.e_shoff + uint64_t(eh.e_shnum) * eh.e_shentsize > size)
    throw bad("section headers lie outside the file (" + std::to_string(size) + " bytes)");
  in.seekg(static_cast<std::streamoff>(eh.e_phoff));
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.read(reinterpret_cast<char*>(&ph), sizeof ph);
    if (static_cast<size_t>(in.gcount()) != sizeof ph) throw bad("program headers lie outside the file");
    if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) && (ph.p_offset > size || ph.p_filesz > size - ph.p_offset))
      throw bad("a segment extends past the end of the file (" + std::to_string(size) + " bytes)");
  }
}

}  // namespace

std::optional<Kind> parse_kind(const std::string& text) {
  for (Kind k : {Kind::Operator, Kind::Noise, Kind::Cost, Kind::Network, Kind::Solver, Kind::Metric})
    if (text == kind_name(k)) return k;
  return std::nullopt;
}

PluginRecord load_plugin_file(const fs::path& file) {
  check_elf(file);
  const std::string where = file.string();
  auto lib = std::make_shared<boost::dll::shared_library>();
  try {
    // RTLD_NOW: a plugin linked against other libraries than ours fails here, not mid-run.
    lib->load(file.string(), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(where + ": cannot be loaded (" + std::string(e.what()) +
                      "); the file is truncated, corrupt or built for another system; rebuild or remove it");
  }
  if (!lib->has(kInfoSymbol))
    throw PluginError(where + ": not a monge plugin (it exports no '" + kInfoSymbol +
                      "'); plugins are built with MONGE_PLUGIN() from the monge SDK");
  const auto& info = lib->get<const monge_plugin_info>(kInfoSymbol);
  if (info.magic != MONGE_PLUGIN_MAGIC)
    throw PluginError(where + ": corrupt plugin info record (bad magic number); rebuild the plugin");
  if (info.sdk_major != static_cast<uint32_t>(kSdkMajor))
    throw PluginError(where + ": built for monge SDK " + std::to_string(info.sdk_major) + "." +
                      std::to_string(info.sdk_minor) + ", but this monge provides SDK " + std::to_string(kSdkMajor) +
                      "." + std::to_string(kSdkMinor) + "; rebuild the plugin against this SDK");
  if (info.struct_size < sizeof(monge_plugin_info))
    throw PluginError(where + ": plugin info record too small (" + std::to_string(info.struct_size) +
                      " bytes, expected " + std::to_string(sizeof(monge_plugin_info)) + "); rebuild the plugin");
  PluginRecord r;
  r.file = file;
  r.sdk_major = static_cast<int>(info.sdk_major);
  r.sdk_minor = static_cast<int>(info.sdk_minor);
  r.torch_version = safe_string(info.torch_version);
  r.compiler = safe_string(info.compiler);
  r.name = safe_string(info.name);
  r.version = safe_string(info.version);
  r.summary = safe_string(info.summary);
  if (r.name.empty()) throw PluginError(where + ": plugin info record has no name; rebuild the plugin");
  if (major_minor(r.torch_version) != major_minor(host_torch_version()))
    throw PluginError(where + ": plugin '" + r.name + "' was built against LibTorch " + r.torch_version +
                      ", but monge uses LibTorch " + host_torch_version() + "; rebuild the plugin");
  if (info.cxx11_abi != static_cast<uint32_t>(_GLIBCXX_USE_CXX11_ABI))
    throw PluginError(where + ": plugin '" + r.name + "' was built with _GLIBCXX_USE_CXX11_ABI=" +
                      std::to_string(info.cxx11_abi) + ", monge with " + std::to_string(_GLIBCXX_USE_CXX11_ABI) +
                      "; rebuild the plugin with LibTorch's compile flags");
  const std::string kind = safe_string(info.kind);
  auto k = parse_kind(kind);
  if (!k)
    throw PluginError(where + ": plugin '" + r.name + "' declares unknown kind '" + kind +
                      "' (expected operator, noise, cost, network, solver or metric)");
  r.kind = *k;
  for (const char* sym : {kCreateSymbol, kSchemaSymbol})
    if (!lib->has(sym))
      throw PluginError(where + ": plugin '" + r.name + "' lacks the symbol '" + sym +
                        "'; register plugins with MONGE_PLUGIN() from the monge SDK");
  r.create = lib->get_alias<Plugin*(const Params&)>(kCreateSymbol);
  // Optional symbols are additions of later SDK minors: a plugin without them still loads.
  if (lib->has(kMigrateSymbol)) r.migrate = lib->get_alias<ParamMap(const std::string&, ParamMap)>(kMigrateSymbol);
  auto schema_fn = lib->get_alias<const Schema&()>(kSchemaSymbol);
  try {
    r.schema = &schema_fn();
  } catch (const std::exception& e) {
    throw PluginError(where + ": plugin '" + r.name + "' failed to declare its parameters: " + e.what());
  }
  r.library = std::move(lib);
  return r;
}

Registry::Registry(std::vector<fs::path> dirs) : dirs_(std::move(dirs)) {}

std::vector<fs::path> Registry::default_dirs(bool use_env) {
  std::vector<fs::path> dirs;
  // Built-in: <prefix>/lib/monge/plugins next to <prefix>/bin/monge, in the build and install tree.
  const fs::path exe = boost::dll::program_location().string();
  dirs.push_back(exe.parent_path().parent_path() / MONGE_PLUGIN_SUBDIR);
  if (use_env) {
    if (const char* env = std::getenv("MONGE_PLUGIN_PATH")) {
      std::stringstream ss(env);
      std::string item;
      while (std::getline(ss, item, ':'))
        if (!item.empty()) dirs.emplace_back(item);
    }
  }
  return dirs;
}

namespace {
std::vector<fs::path>* g_global_dirs = nullptr;
}

void Registry::configure_global(std::vector<fs::path> dirs) {
  static std::vector<fs::path> stored;
  stored = std::move(dirs);
  g_global_dirs = &stored;
}

Registry& Registry::global() {
  // Never destroyed: plugin libraries stay loaded for the life of the process.
  static Registry* r = [] {
    auto* reg = new Registry(g_global_dirs ? *g_global_dirs : default_dirs());
    reg->scan();
    return reg;
  }();
  return *r;
}

void Registry::scan() {
  for (const auto& dir : dirs_) scan_dir(dir);
}

void Registry::scan_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    warnings_.push_back("plugin directory " + dir.string() + " does not exist; skipped");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string fname = entry.path().filename().string();
    if (fname.size() > std::strlen(kPluginSuffix) &&
        fname.compare(fname.size() - std::strlen(kPluginSuffix), std::string::npos, kPluginSuffix) == 0)
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    try {
      add_record(load_plugin_file(f));
    } catch (const PluginError& e) {
      const std::string fname = f.filename().string();
      const std::string stem = fname.substr(0, fname.size() - std::strlen(kPluginSuffix));
      warnings_.push_back(std::string("skipped ") + e.what());
      refused_[stem] = e.what();
    }
  }
}

void Registry::add_record(PluginRecord record) {
  auto it = plugins_.find(record.name);
  if (it != plugins_.end()) {
    if (fs::equivalent(it->second.file, record.file)) return;
    const std::string why = "plugin '" + record.name + "' is provided by two files: " + it->second.file.string() +
                            " and " + record.file.string() + "; remove one of them or fix MONGE_PLUGIN_PATH";
    warnings_.push_back(why);
    refused_[record.name] = why;
    conflicted_.insert(record.name);
    plugins_.erase(it);
    return;
  }
  if (conflicted_.count(record.name)) return;
  refused_.erase(record.name);
  plugins_.emplace(record.name, std::move(record));
}

void Registry::add_path(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    dirs_.push_back(path);
    scan_dir(path);
    return;
  }
  PluginRecord record = load_plugin_file(path);
  const std::string name = record.name;
  add_record(std::move(record));
  if (!plugins_.count(name)) throw PluginError(refused_.at(name));
}

const PluginRecord& Registry::find(const std::string& name) const {
  auto it = plugins_.find(name);
  if (it != plugins_.end()) return it->second;
  auto refused = refused_.find(name);
  if (refused != refused_.end()) throw PluginError("plugin '" + name + "' cannot be used: " + refused->second);
  std::vector<std::string> names;
  for (const auto& [n, r] : plugins_) names.push_back(n);
  std::string msg = "unknown plugin '" + name + "'";
  const std::string hint = did_you_mean(name, names);
  if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
  msg += "; `monge plugins` lists the available ones";
  std::string searched;
  for (const auto& d : dirs_) searched += (searched.empty() ? "" : ", ") + d.string();
  msg += " (searched: " + searched + ")";
  throw PluginError(msg);
}

const PluginRecord& Registry::find(const std::string& name, std::optional<Kind> expected) const {
  const PluginRecord& r = find(name);
  if (expected && r.kind != *expected)
    throw PluginError("plugin '" + name + "' is a " + kind_name(r.kind) + ", not a " + kind_name(*expected) +
                      " (" + r.file.string() + ")");
  return r;
}

Params Registry::resolve(const std::string& name, const ParamMap& given, std::optional<Kind> expected) const {
  return find(name, expected).schema->resolve(given, name);
}

namespace {

std::string saved_by(const std::string& version) {
  return version.empty() ? "an unversioned file (written before plugin versions were recorded)" : "version " + version;
}

}  // namespace

Params Registry::resolve_saved(const std::string& name, const std::string& saved_version, ParamMap saved,
                               std::optional<Kind> expected) const {
  const PluginRecord& r = find(name, expected);
  const int order = compare_versions(saved_version, r.version);
  const bool migrates = order < 0 && r.migrate;
  if (migrates) {
    try {
      saved = r.migrate(saved_version, std::move(saved));
    } catch (const std::exception& e) {
      throw ParamError(name + " " + r.version + ": its migration of the parameters saved by " +
                       saved_by(saved_version) + " failed: " + e.what());
    }
  }
  // A file without a version whose plugin has no migration reads as it always did (the schema's
  // own error); otherwise a parameter unknown here is explained by the versions.
  if (order != 0 && (migrates || !saved_version.empty())) {
    for (const auto& [key, value] : saved) {
      if (r.schema->find(key)) continue;
      std::string msg = "plugin '" + name + "' " + r.version + " (loaded from " + r.file.string() +
                        ") does not know the parameter '" + key + "' saved by " + saved_by(saved_version) + " of it; ";
      if (order > 0)
        msg += "the file was written with a newer " + name + ": install " + name + " " + saved_version +
               " or later (`monge plugins` shows the loaded version)";
      else
        msg += std::string(r.migrate ? "its migration does not carry it over" : "it has no migration for it") +
               ": use " + name + " " + (saved_version.empty() ? "of the version that wrote the file" : saved_version) +
               ", or ask its author to migrate '" + key + "' (MONGE_PLUGIN_MIGRATION, docs/plugins.md)";
      throw ParamError(msg);
    }
  }
  return r.schema->resolve(saved, name);
}

std::shared_ptr<Plugin> Registry::instantiate(const std::string& name, const Params& params) const {
  const PluginRecord& r = find(name);
  Plugin* raw = nullptr;
  try {
    raw = r.create(params);
  } catch (const ParamError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.rfind(name + ":", 0) == 0) throw monge::Error(what);
    throw monge::Error(name + ": " + what);
  }
  if (!raw) throw PluginError(r.file.string() + ": plugin '" + name + "' returned no object");
  if (raw->kind() != r.kind) {
    delete raw;
    throw PluginError(r.file.string() + ": plugin '" + name + "' created an object of another kind than it declares");
  }
  // The deleter holds the library: it stays loaded while the object lives.
  return std::shared_ptr<Plugin>(raw, PluginDeleter{r.library});
}

std::shared_ptr<const void> library_of(const std::shared_ptr<const Plugin>& object) {
  if (const auto* deleter = std::get_deleter<PluginDeleter>(object)) return deleter->library;
  return nullptr;
}

std::vector<const PluginRecord*> Registry::list() const {
  std::vector<const PluginRecord*> out;
  for (const auto& [n, r] : plugins_) out.push_back(&r);
  std::stable_sort(out.begin(), out.end(),
                   [](const PluginRecord* a, const PluginRecord* b) { return a->kind < b->kind; });
  return out;
}

}  // namespace monge::host
