// psnr: peak signal-to-noise ratio in dB per image, on the [0, 1] scale (data range 1).
#include "monge/image_metrics.hpp"
#include "monge/sdk.hpp"

namespace {

class Psnr final : public monge::Metric {
 public:
  explicit Psnr(const monge::Params&) {}
  at::Tensor per_image(const at::Tensor& restored, const at::Tensor& reference) const override {
    return monge::image_metrics::psnr_per_image(restored, reference);
  }
};

}  // namespace

MONGE_PLUGIN(Psnr, metric, "psnr", "1.0.0", "peak signal-to-noise ratio in dB on [0, 1] (data range 1)",
             monge::Schema{})
