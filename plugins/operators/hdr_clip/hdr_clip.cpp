// hdr_clip: A(x) = clamp(scale * x, -1, 1), a sensor that saturates: an exposure gain of `scale`
// followed by clipping to the displayable range, losing the highlights an HDR task recovers.
#include <ATen/ATen.h>

#include "monge/sdk.hpp"

namespace {

class HdrClip final : public monge::ForwardOperator {
 public:
  explicit HdrClip(const monge::Params& p) : scale_(p.real("scale")) {}

  at::Tensor forward(const at::Tensor& x) const override { return at::clamp(x * scale_, -1, 1); }

  // Clamping is 1-Lipschitz, so the gain is the whole bound; it is attained where nothing clips.
  std::optional<double> lipschitz() const override { return scale_; }
  bool monotone() const override { return true; }  // clip(s x) is nondecreasing (s >= 1)

  static monge::Schema schema() {
    return monge::Schema{}.real("scale", 2.0, 1, 100, "exposure gain applied before clipping to [-1, 1]");
  }

 private:
  double scale_;
};

}  // namespace

MONGE_PLUGIN(HdrClip, operator, "hdr_clip", "1.0.0", "exposure gain and clipping A(x) = clamp(scale x, -1, 1)",
             HdrClip::schema())
