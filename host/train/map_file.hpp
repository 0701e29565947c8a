#pragma once
// Map files: one file holding a trained map's weights and everything needed to rebuild and use it.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "host/core/registry.hpp"
#include "monge/network.hpp"
#include "monge/operator.hpp"

namespace monge::host {

/// Format version of map files written by this monge. Bump on incompatible changes and teach
/// load_map() to migrate or refuse older ones with a clear message.
inline constexpr int64_t kMapFormat = 1;

/// A plugin as it is recorded in a file: its name and resolved parameters.
struct PluginSpec {
  std::string name;
  Params params;
};

struct MapInfo {
  PluginSpec network;                 ///< the map network plugin
  NetworkShape shape;                 ///< what it takes and gives (in_channels: the lifted measurement's)
  int64_t latent_channels = 0;        ///< stochastic map T(y, z): the network takes this many more channels of z
  double input_noise = 0;             ///< smoothed map T(Q(y + s n)) (OTP): the noise level s; 0: none
  std::optional<PluginSpec> op;       ///< the forward operator whose lift turns y into the map's input
  std::string monge_version;
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
};

/// A stochastic map as users apply it. It wraps the map network and draws its noise on the CPU
/// from its own generator, so that a given seed gives the same samples on every device:
///   - latent channels (NOT, KNOT): the network takes `latent` more input channels than q, fed
///     with z ~ N(0, 1) at each forward();
///   - input noise (OTP): the measurement is smoothed, y + s n with n ~ N(0, 1), before the lift;
///     see perturb() and map_input().
/// Each call draws new noise; a tiled apply therefore draws it per tile (see docs/training.md,
/// "Stochastic maps").
class StochasticMap final : public Module {
 public:
  StochasticMap(std::shared_ptr<Module> network, int64_t latent, double input_noise, uint64_t seed = 0);
  at::Tensor forward(const at::Tensor& q) override;
  /// y + s n: the smoothing of the measurement (y itself when the input noise is 0).
  at::Tensor perturb(const at::Tensor& y);
  /// Restarts the noise stream: the same seed gives the same sequence of noise.
  void reseed(uint64_t seed);
  const std::shared_ptr<Module>& network() const { return network_; }
  int64_t latent() const { return latent_; }
  double input_noise() const { return input_noise_; }

 private:
  at::Tensor draw(at::IntArrayRef shape);
  std::shared_ptr<Module> network_;
  int64_t latent_;
  double input_noise_;
  at::Generator gen_;
  std::mutex mutex_;  // batch apply may call forward() from several threads
};

/// `network` wrapped in a StochasticMap when it takes latent channels or input noise; `network`
/// itself otherwise.
std::shared_ptr<Module> stochastic_map(std::shared_ptr<Module> network, int64_t latent, double input_noise,
                                       uint64_t seed = 0);

/// What `map` reads for measurements `y`: Q(y + s n) for a map with input noise s, Q(y) otherwise
/// (y when `op` is null).
at::Tensor map_input(Module& map, const ForwardOperator* op, const at::Tensor& y);

/// Fills the tiling fields of `map` from the network plugin that built its module.
void describe_tiling(LoadedMap& map, const Network& network);

/// Writes a map file atomically (temporary file + rename). Throws monge::Error.
void save_map(const std::filesystem::path& file, Module& module, const MapInfo& info);

/// Reads a map file, rebuilding the network (and operator) from plugins found in `registry`.
/// Throws monge::Error naming the file for a missing, corrupt or incompatible file.
LoadedMap load_map(const std::filesystem::path& file, const Registry& registry);

/// Writes `write` to `file` through a temporary file in the same directory and a rename, so that
/// `file` is either the old or the complete new version, never partial.
void write_atomically(const std::filesystem::path& file, const std::function<void(const std::string& tmp)>& write);

}  // namespace monge::host
