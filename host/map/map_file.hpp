#pragma once
// Map files: one file holding a trained map's weights and everything needed to rebuild and use it.
// The format (docs/map-format.md) sits below training, which writes it, and apply, which reads it.

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "host/core/registry.hpp"
#include "host/map/map_module.hpp"
#include "host/restore/wiener.hpp"
#include "monge/network.hpp"
#include "monge/operator.hpp"

namespace monge::host {

/// Format version of map files written by this monge. Bump on incompatible changes and teach
/// load_map() to migrate or refuse older ones with a clear message. Format 3 is data only (a
/// tensor file: host/map/tensor_file.hpp, docs/map-format.md); formats 1 (no lift) and 2 (the
/// Wiener lift) were PyTorch archives, which LibTorch reads by running the program inside them:
/// load_map() reads those only when LoadOptions::trust_code is set, and `monge map upgrade`
/// converts them.
inline constexpr int64_t kMapFormat = 3;

/// A plugin as it is recorded in a file: its name, resolved parameters and the version of the
/// plugin whose parameters they are ("": not known; the file then records none).
struct PluginSpec {
  std::string name;
  Params params;
  std::string version = {};
};

struct MapInfo {
  PluginSpec network;                 ///< the map network plugin
  NetworkShape shape;                 ///< what it takes and gives (in_channels: the lifted measurement's)
  int64_t latent_channels = 0;        ///< stochastic map T(y, z): the network takes this many more channels of z
  double input_noise = 0;             ///< smoothed map T(Q(y + s n)) (OTP): the noise level s; 0: none
  std::optional<PluginSpec> op;       ///< the forward operator whose lift turns y into the map's input
  /// Set when the map's lift is the Wiener filter of `op` (format 2): LoadedMap::op is then a
  /// wiener::WienerLift around the recorded operator.
  std::shared_ptr<const wiener::Lift> lift;
  std::optional<PluginSpec> noise;    ///< the noise model it was trained with ("none": none); unset: not recorded
  std::string monge_version;
  int64_t format = kMapFormat;                ///< the format of the file it was read from
  std::map<std::string, std::string> notes;   ///< training summary (solver, iterations, ...)
  std::map<std::string, double> metrics;      ///< final evaluation
};

struct LoadedMap {
  std::shared_ptr<Module> module;
  std::shared_ptr<ForwardOperator> op;  ///< nullptr when the map takes the measurement as it is
  MapInfo info;
  /// What tiled application needs, as the network plugin declares it (see monge::Network); a
  /// TorchScript map declares nothing: radius -1 (unknown), alignment 1.
  int64_t receptive_radius = -1;
  int64_t tile_alignment = 1;
  /// The network plugin's monge::PaddedInput, or nullptr (kept valid by `network`): lets apply
  /// round window sizes up to a few shapes whose compiled kernels it reuses.
  const PaddedInput* padded_input = nullptr;
  std::shared_ptr<const Network> network;  ///< the plugin that built the module (none for TorchScript)
};

/// A plugin as text: "name" or "name:key=value,key=value" (numbers in full precision, strings as
/// they are), the form `monge eval --noise` and `--metrics` read.
std::string plugin_spec_text(const PluginSpec& spec);

/// Fills the tiling fields of `map` from the network plugin that built its module, and keeps it.
void describe_tiling(LoadedMap& map, std::shared_ptr<const Network> network);

/// The bytes of a map file of format 3 for `module` (a StochasticMap is saved as its network).
std::string encode_map(Module& module, const MapInfo& info);

/// Writes a map file of format 3 atomically (temporary file + rename). Throws monge::Error.
void save_map(const std::filesystem::path& file, Module& module, const MapInfo& info);

/// Writes a map file of the old format (1, or 2 with a lift): a PyTorch archive that monge 0.1
/// reads. For tests of the upgrade path and for users who must hand a map to an old monge.
void save_map_legacy(const std::filesystem::path& file, Module& module, const MapInfo& info);

struct LoadOptions {
  /// Also read PyTorch archives (map formats 1 and 2, TorchScript modules) and maps whose plugins
  /// run a program named in the file (the torchscript operator): reading those runs code from the
  /// file. Only for files whose origin the user trusts.
  bool trust_code = false;
};

/// Reads a map file, rebuilding the network (and operator) from plugins found in `registry`.
/// Format 3 is read without executing anything, each record type-checked and bounded, each weight
/// checked against the declared network's dtype and shape. Throws monge::Error naming the file for
/// a missing, corrupt, incompatible or (without trust_code) code-carrying file.
LoadedMap load_map(const std::filesystem::path& file, const Registry& registry, const LoadOptions& options = {});

}  // namespace monge::host
