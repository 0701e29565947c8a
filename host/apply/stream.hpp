#pragma once
// Streaming apply: a map run over an image of any size through libvips, in flat memory.
//
// The input is opened for sequential access and read strictly top to bottom, a few rows per
// request, into a rolling buffer of raw rows (storage type, the rows one strip needs). The output
// is a libvips image generated on demand in blocks of one strip of tiles (see tiling.hpp) by four
// tiles, kept by a tile cache until the saver has taken them, and written progressively by
// libvips' saver to a temporary file that is renamed over OUTPUT only when everything succeeded.
// Only storage-type buffers span the width (the raw rows, the strips the saver's current band
// reaches, libvips' own); what is computed in float at a time is one block.

#include <cstdint>
#include <filesystem>
#include <string>

#include <c10/core/Device.h>

#include "host/apply/tiling.hpp"
#include "host/core/spelling.hpp"
#include "host/image/vips_io.hpp"
#include "host/map/map_file.hpp"

namespace monge::host {

struct StreamOptions {
  TileOptions tiles;
  c10::Device device = c10::kCPU;
  int threads = 0;                       ///< LibTorch threads for the network (0: all cores)
  /// Refuse inputs or outputs with more pixels (0: no limit), checked on the header: 2^30 (a
  /// gigapixel: about 11 minutes on 2 cores with the quickstart's map) bounds the work a small
  /// hostile file can ask for.
  int64_t max_pixels = int64_t{1} << 30;
  std::string colour = "per-channel";    ///< a grey map on an RGB image: "per-channel" or "luminance"
  std::string depth = "input";           ///< output sample format: "input", "8", "16" or "float"
  bool progress = false;                 ///< a progress line on stderr (rate, ETA)
  /// NaN and infinite samples of a float input: refused (the default, naming how many, before any
  /// work) or replaced (NaN and -Inf by 0, +Inf by full scale).
  image::NonFinite nonfinite = image::NonFinite::Error;
  /// How errors name options: Lua keys (the default) or the command line's flags.
  OptionSpelling spell;
};

struct StreamReport {
  int64_t in_height = 0, in_width = 0, out_height = 0, out_width = 0, bands = 0;
  bool alpha = false;
  TilePlan plan;
  double seconds = 0;
  int64_t nonfinite = 0;  ///< NaN and infinite input samples (replaced; an error under NonFinite::Error)
  int64_t cache_tiles = 0;  ///< output blocks computed (chunks of strips), each once
  int64_t recomputed = 0;   ///< output blocks asked for again after the cache dropped them (0 unless a saver reads out of order)
  int64_t windows = 0;      ///< network windows computed
};

/// How many strips of `strip` rows a saver's band of `band` rows can reach (bands start at
/// multiples of `band`, strips at multiples of `strip`): the output strips the apply's tile cache
/// holds. 1 when one divides the other (a 128-row band, 1024-row strips); it depends on the rows
/// only, never on the image's width.
int64_t strips_for_band(int64_t band, int64_t strip);

/// Restores `input` with `map` and writes `output`. `output` may carry libvips save options in
/// brackets, e.g. "out.tif[tile,pyramid,compression=deflate,bigtiff]" or "out.jpg[Q=90]"; the
/// format follows the extension. 8-bit, 16-bit and float ([0, 1]) inputs are read at full
/// precision and written at the input's depth unless `depth` says otherwise; an alpha channel is
/// copied through untouched (repeated k x k for a map that enlarges k times). Throws monge::Error
/// naming the file for an unreadable, truncated or too large input, a map/image channel mismatch,
/// an output format that cannot hold the result, or a failed write; no output file is then left.
StreamReport apply_stream(const LoadedMap& map, const std::filesystem::path& input, const std::string& output,
                          const StreamOptions& options);

}  // namespace monge::host
