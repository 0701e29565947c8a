#pragma once
/// The plain-C info record every plugin exports, and MONGE_PLUGIN(), the one macro a plugin source
/// file uses to register itself.

#include <cstdint>
#include <string>
#include <utility>

#include <boost/dll/alias.hpp>
#include <torch/version.h>

#include "monge/migration.hpp"
#include "monge/params.hpp"
#include "monge/plugin.hpp"
#include "monge/version.hpp"

extern "C" {

/// Magic number at the start of every info record ("MONG").
#define MONGE_PLUGIN_MAGIC 0x474E4F4Du

/// Plain-C description of a plugin, read by the host before any C++ code of the plugin is called.
/// The first four fields keep their layout in every SDK version so that any host can tell what a
/// plugin was built for.
struct monge_plugin_info {
  uint32_t magic;          ///< MONGE_PLUGIN_MAGIC
  uint32_t struct_size;    ///< sizeof(monge_plugin_info) of the SDK the plugin was built with
  uint32_t sdk_major;      ///< MONGE_SDK_MAJOR at build time
  uint32_t sdk_minor;      ///< MONGE_SDK_MINOR at build time
  const char* torch_version;  ///< LibTorch version at build time, e.g. "1.13.0"
  const char* compiler;       ///< compiler and version, e.g. "GCC 12.2.0"
  uint32_t cxx11_abi;         ///< value of _GLIBCXX_USE_CXX11_ABI at build time
  const char* kind;           ///< "operator", "noise", "cost", "network", "solver" or "metric"
  const char* name;           ///< unique plugin name, e.g. "gaussian_blur"
  const char* version;        ///< the plugin's own version, e.g. "1.0.0"
  const char* summary;        ///< one line for listings
};
}

namespace monge::detail {
#if defined(__clang__)
#define MONGE_COMPILER_STRING "Clang " __clang_version__
#elif defined(__GNUC__)
#define MONGE_COMPILER_STRING "GCC " __VERSION__
#else
#define MONGE_COMPILER_STRING "unknown compiler"
#endif
#ifndef _GLIBCXX_USE_CXX11_ABI
#define _GLIBCXX_USE_CXX11_ABI 0
#endif
}  // namespace monge::detail

// The SDK major written into the info record. Only tests override it, to build a plugin that
// claims another SDK and check that the host refuses it.
#ifndef MONGE_PLUGIN_SDK_MAJOR
#define MONGE_PLUGIN_SDK_MAJOR MONGE_SDK_MAJOR
#endif

#define MONGE_DETAIL_STR2(x) #x
#define MONGE_DETAIL_STR(x) MONGE_DETAIL_STR2(x)

/// Registers a plugin. Use exactly once per plugin library, at namespace scope:
///
///     MONGE_PLUGIN(GaussianBlur, operator, "gaussian_blur", "1.0.0", "Gaussian blur (depthwise)",
///                  GaussianBlur::schema())
///
/// `Class` must derive from the interface of its kind and be constructible from `const
/// monge::Params&`; `SCHEMA` is an expression yielding the plugin's monge::Schema.
#define MONGE_PLUGIN(Class, KIND, NAME, VERSION, SUMMARY, SCHEMA)                                  \
  extern "C" BOOST_SYMBOL_EXPORT const monge_plugin_info monge_plugin_info_record;                \
  extern "C" BOOST_SYMBOL_EXPORT const monge_plugin_info monge_plugin_info_record = {             \
      MONGE_PLUGIN_MAGIC,                                                                          \
      sizeof(monge_plugin_info),                                                                   \
      MONGE_PLUGIN_SDK_MAJOR,                                                                      \
      MONGE_SDK_MINOR,                                                                             \
      MONGE_DETAIL_STR(TORCH_VERSION_MAJOR) "." MONGE_DETAIL_STR(                                  \
          TORCH_VERSION_MINOR) "." MONGE_DETAIL_STR(TORCH_VERSION_PATCH),                          \
      MONGE_COMPILER_STRING,                                                                       \
      _GLIBCXX_USE_CXX11_ABI,                                                                      \
      #KIND,                                                                                       \
      NAME,                                                                                        \
      VERSION,                                                                                     \
      SUMMARY};                                                                                    \
  namespace monge_plugin_entry {                                                                   \
  static ::monge::Plugin* create(const ::monge::Params& params) { return new Class(params); }     \
  static const ::monge::Schema& schema() {                                                         \
    static const ::monge::Schema s = (SCHEMA);                                                     \
    return s;                                                                                      \
  }                                                                                                \
  }                                                                                                \
  BOOST_DLL_ALIAS(monge_plugin_entry::create, monge_plugin_create)                                 \
  BOOST_DLL_ALIAS(monge_plugin_entry::schema, monge_plugin_schema)

/// Registers the plugin's migration of parameters saved by an older version of itself (optional;
/// at most once, after MONGE_PLUGIN):
///
///     monge::ParamMap migrate(const std::string& saved_version, monge::ParamMap saved) {
///       // 2.0 renamed 'radius' to 'size'
///       if (monge::version_less(saved_version, "2.0")) monge::rename_param(saved, "radius", "size");
///       return saved;
///     }
///     MONGE_PLUGIN_MIGRATION(migrate)
///
/// The host calls it when a map file records an older version of the plugin than the one loaded
/// (or none: files written before versions were recorded pass ""), before it checks the
/// parameters against the plugin's schema. It must change only what it recognises and leave
/// parameters already in the current form as they are. Throw monge::ParamError for parameters it
/// cannot carry over. A plugin without a migration gets the saved parameters checked as they are.
#define MONGE_PLUGIN_MIGRATION(FUNCTION)                                                           \
  namespace monge_plugin_entry {                                                                   \
  static ::monge::ParamMap migrate_saved(const std::string& saved_version, ::monge::ParamMap saved) { \
    return FUNCTION(saved_version, std::move(saved));                                              \
  }                                                                                                \
  }                                                                                                \
  BOOST_DLL_ALIAS(monge_plugin_entry::migrate_saved, monge_plugin_migrate)
