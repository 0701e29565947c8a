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
  /// A set-level metric (FID) has none: it throws monge::Error and says so in set_level().
  virtual at::Tensor per_image(const at::Tensor& restored, const at::Tensor& reference) const = 0;
  /// Aggregate of per-image scores (the mean unless the metric needs the whole set).
  virtual double aggregate(const at::Tensor& per_image) const { return per_image.mean().item<double>(); }
  /// True for a metric of whole sets (FID: distributions of features), which has no per-image scores.
  virtual bool set_level() const { return false; }
  /// The score of a restored set against a reference set; by default aggregate(per_image(...)).
  /// For a set-level metric the two sets need not be pairs (nor of equal size).
  virtual double score_set(const at::Tensor& restored, const at::Tensor& reference) const {
    return aggregate(per_image(restored, reference));
  }
  /// True when larger is better (PSNR), false otherwise (FID).
  virtual bool higher_is_better() const { return true; }
};

}  // namespace monge
