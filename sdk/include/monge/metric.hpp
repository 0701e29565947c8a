#pragma once
/// Metric: image quality scores.

#include <ATen/core/Tensor.h>

#include "monge/plugin.hpp"

namespace monge {

/// A full-reference image metric.
class MONGE_SDK_API Metric : public Plugin {
 public:
  Kind kind() const override { return Kind::Metric; }

  /// Per-image scores, shape [N], for restored and reference batches (NCHW, values in [-1, 1]).
  virtual at::Tensor per_image(const at::Tensor& restored, const at::Tensor& reference) const = 0;
  /// Aggregate of per-image scores (the mean unless the metric needs the whole set).
  virtual double aggregate(const at::Tensor& per_image) const { return per_image.mean().item<double>(); }
  /// True when larger is better (PSNR), false otherwise (FID).
  virtual bool higher_is_better() const { return true; }
};

}  // namespace monge
