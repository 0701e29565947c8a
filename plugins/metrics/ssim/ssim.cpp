// ssim: structural similarity per image as scikit-image computes it (11x11 Gaussian window,
// sigma 1.5, sample covariance, data range 1, valid region, channels averaged).
#include "monge/image_metrics.hpp"
#include "monge/sdk.hpp"

namespace {

class Ssim final : public monge::Metric {
 public:
  explicit Ssim(const monge::Params&) {}
  at::Tensor per_image(const at::Tensor& restored, const at::Tensor& reference) const override {
    return monge::image_metrics::ssim_per_image(restored, reference);
  }
};

}  // namespace

MONGE_PLUGIN(Ssim, metric, "ssim", "1.0.0", "structural similarity (skimage convention, 11x11 Gaussian window)",
             monge::Schema{})
