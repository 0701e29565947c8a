#pragma once
// Map files: one file holding a trained map's weights and everything needed to rebuild and use it.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "host/core/registry.hpp"
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
};

/// A stochastic map as users apply it. It wraps the map network and draws its noise on the CPU
/// from its own generator, so that a given seed gives the same samples on every device:
///   - latent channels (NOT, KNOT): the network takes `latent` more input channels than q, fed
///     with z ~ N(0, 1) at each forward();
///   - input noise (OTP): the measurement is smoothed, y + s n with n ~ N(0, 1), before the lift;
///     see perturb() and map_input().
/// Each call of forward()/perturb() draws new noise from the generator. Tiled apply uses the
/// positional draws instead (field(), perturb_at(), forward_at()): there the noise at a pixel is a
/// function of the seed, the draw and the pixel's place in the image only, so overlapping tiles
/// see the same values and a tiled stochastic restoration equals the whole-image one.
class StochasticMap final : public Module {
 public:
  StochasticMap(std::shared_ptr<Module> network, int64_t latent, double input_noise, uint64_t seed = 0);
  at::Tensor forward(const at::Tensor& q) override;
  /// y + s n: the smoothing of the measurement (y itself when the input noise is 0).
  at::Tensor perturb(const at::Tensor& y);
  /// Restarts the noise stream: the same seed gives the same sequence of noise (and of draws).
  void reseed(uint64_t seed);

  /// Positional noise for draw `draw`: N(0, 1) values [n, c, h, w] for grid rows [row0, row0 + h)
  /// and columns [col0, col0 + w), assembled from 256 x 256 blocks, each drawn from a generator
  /// seeded by (seed, draw, stream, block row, block column). Stream 0 is the measurement's noise,
  /// stream 1 the latent z.
  at::Tensor field(uint64_t draw, uint64_t stream, int64_t n, int64_t c, int64_t h, int64_t w, int64_t row0,
                   int64_t col0) const;
  /// y + s field(...) for the measurement window y whose top-left pixel is (row0, col0).
  at::Tensor perturb_at(const at::Tensor& y, uint64_t draw, int64_t row0, int64_t col0) const;
  /// The network's input for the lifted window q at (row0, col0): q and, for latent channels,
  /// positional z after it.
  at::Tensor input_at(const at::Tensor& q, uint64_t draw, int64_t row0, int64_t col0) const;
  /// Reserves `count` fresh draw numbers for one apply (K samples) and returns the first; they
  /// start at 0 after reseed().
  uint64_t reserve_draws(uint64_t count);
  const std::shared_ptr<Module>& network() const { return network_; }
  int64_t latent() const { return latent_; }
  double input_noise() const { return input_noise_; }

 private:
  at::Tensor draw(at::IntArrayRef shape);
  std::shared_ptr<Module> network_;
  int64_t latent_;
  double input_noise_;
  uint64_t seed_;
  uint64_t next_draw_ = 0;
  at::Generator gen_;
  mutable std::mutex mutex_;  // batch apply may call forward() from several threads
};

/// `network` wrapped in a StochasticMap when it takes latent channels or input noise; `network`
/// itself otherwise.
std::shared_ptr<Module> stochastic_map(std::shared_ptr<Module> network, int64_t latent, double input_noise,
                                       uint64_t seed = 0);

/// What `map` reads for measurements `y`: Q(y + s n) for a map with input noise s, Q(y) otherwise
/// (y when `op` is null).
at::Tensor map_input(Module& map, const ForwardOperator* op, const at::Tensor& y);

/// A plugin as text: "name" or "name:key=value,key=value" (numbers in full precision, strings as
/// they are), the form `monge eval --noise` and `--metrics` read.
std::string plugin_spec_text(const PluginSpec& spec);

/// Fills the tiling fields of `map` from the network plugin that built its module.
void describe_tiling(LoadedMap& map, const Network& network);

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

/// Writes `write` to `file` through a temporary file in the same directory (host::Temporary: an
/// unpredictable name, O_EXCL | O_NOFOLLOW, removed on SIGINT/SIGTERM) and a rename, so that
/// `file` is either the old or the complete new version, never partial.
void write_atomically(const std::filesystem::path& file, const std::function<void(const std::string& tmp)>& write);

}  // namespace monge::host
