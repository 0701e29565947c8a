#include "host/apply/apply.hpp"

#include <vector>

#include <torch/torch.h>

namespace monge::host {

void check_strength(double strength, const Module& map, const MapInfo& info, const std::string& who) {
  if (!(strength >= 0 && strength <= 1))
    throw Error(who + ": strength must be between 0 (the lift alone) and 1 (the trained map, the default), got " +
                monge::detail::format_number(strength));
  if (strength == 1) return;
  if (dynamic_cast<const StochasticMap*>(&map))
    throw Error(who + ": strength below 1 needs a deterministic map; this one draws noise (use --samples and --reduce mean instead)");
  if (info.shape.in_channels <= 0 || info.shape.in_channels != info.shape.out_channels || info.shape.scale != 1)
    throw Error(who + ": strength below 1 blends the map's output with its input, so it needs a map whose output has "
                      "the size and channels of its input; this map's do not (or are not recorded)");
}

at::Tensor apply_to_image(const LoadedMap& map, const at::Tensor& image, c10::Device device) {
  if (image.dim() != 3) throw Error("apply: expected a C x H x W image");
  const int64_t want = map.info.shape.in_channels, have = image.size(0);
  at::Tensor colour = image, alpha;
  if (want > 0 && have == want + 1 && (have == 2 || have == 4)) {
    colour = image.narrow(0, 0, want);
    alpha = image.narrow(0, want, 1);
  } else if (want > 0 && have != want) {
    throw Error("apply: the map takes " + std::to_string(want) + "-channel images (" + (want == 1 ? "grey" : "RGB") +
                "), this image has " + std::to_string(have) + " channel(s); convert it first (e.g. vips colourspace)");
  }
  at::Tensor out = restore(*map.module, map.op.get(), colour.unsqueeze(0), device, 1)[0];
  if (alpha.defined()) {
    if (out.size(1) % alpha.size(1) != 0 || out.size(2) % alpha.size(2) != 0 ||
        out.size(1) / alpha.size(1) != out.size(2) / alpha.size(2))
      throw Error("apply: the map's output is not a whole multiple of the image's size, so alpha cannot follow it");
    const int64_t k = out.size(1) / alpha.size(1);
    if (k > 1) alpha = alpha.repeat_interleave(k, 1).repeat_interleave(k, 2);
    out = at::cat({out, alpha.to(out.scalar_type())}, 0);
  }
  return out;
}

}  // namespace monge::host
