// fid: Fréchet distance between the feature distributions of a restored set and a reference set,
// in the penultimate layer of monge's classifier or of a user's TorchScript feature extractor.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include <torch/script.h>
#include <torch/torch.h>

#include "monge/classifier.hpp"
#include "monge/frechet.hpp"
#include "monge/sdk.hpp"

namespace {

using monge::classifier_detail::first_line;
using monge::shape_text;

// The line of a TorchScript error that says what went wrong: the interpreter's messages start
// with a generic line and a TorchScript traceback, and end with the exception raised.
std::string script_error(const std::string& what) {
  if (what.rfind("The following operation failed in the TorchScript interpreter", 0) != 0) return first_line(what);
  std::string last;
  size_t start = 0;
  while (start < what.size()) {
    size_t end = what.find('\n', start);
    if (end == std::string::npos) end = what.size();
    const std::string line = what.substr(start, end - start);
    if (line.find_first_not_of(" \t") != std::string::npos) last = line;
    start = end + 1;
  }
  return last;
}

class Fid final : public monge::Metric {
 public:
  explicit Fid(const monge::Params& p)
      : classifier_file_(p.string("classifier")), script_file_(p.string("torchscript")), resize_(p.integer("resize")),
        channels_(p.integer("channels")), batch_(p.integer("batch")) {
    if (classifier_file_.empty() == script_file_.empty())
      throw monge::ParamError(
          "fid: give exactly one feature extractor: 'classifier' (a monge classifier file, from monge.train_classifier) "
          "or 'torchscript' (a TorchScript module mapping N x C x H x W images in [-1, 1] to N x D features)");
    if (channels_ != 0 && channels_ != 1 && channels_ != 3)
      throw monge::ParamError("fid: parameter 'channels' must be 0 (as they are), 1 or 3, got " + std::to_string(channels_));
    if (!classifier_file_.empty()) {
      if (resize_ != 0 || channels_ != 0)
        throw monge::ParamError("fid: 'resize' and 'channels' apply to a TorchScript extractor; a monge classifier "
                                "takes images as it was trained on them");
      classifier_ = monge::load_classifier(classifier_file_, "fid").net;
    } else {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(script_file_, ec))
        throw monge::Error("fid: " + script_file_ + ": no such TorchScript file");
      try {
        script_ = torch::jit::load(script_file_, c10::Device(c10::kCPU));
      } catch (const std::exception& e) {
        throw monge::Error("fid: " + script_file_ + " is not a TorchScript module, or it is truncated (" +
                           first_line(e.what()) + "); save the extractor with torch.jit.save(torch.jit.script(m), path)");
      }
      if (!script_->find_method("forward")) throw monge::Error("fid: " + script_file_ + " has no forward() method");
      script_->eval();
    }
  }

  at::Tensor per_image(const at::Tensor&, const at::Tensor&) const override {
    throw monge::Error("fid: FID compares the feature distributions of two sets and has no per-image scores; "
                       "score a set with fid(restored, reference) (Metric::score_set)");
  }
  double aggregate(const at::Tensor&) const override {
    throw monge::Error("fid: FID has no per-image scores to aggregate; score a set with fid(restored, reference)");
  }
  bool set_level() const override { return true; }
  bool higher_is_better() const override { return false; }

  double score_set(const at::Tensor& restored, const at::Tensor& reference) const override {
    check_set(restored, "restored");
    check_set(reference, "reference");
    if (restored.size(1) != reference.size(1))
      throw monge::Error("fid: the restored images have " + std::to_string(restored.size(1)) +
                         " channels and the reference images " + std::to_string(reference.size(1)));
    return monge::frechet::fid(features(restored), features(reference), "fid");
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .string("classifier", "", "monge classifier file (monge.train_classifier): features of its penultimate layer")
        .string("torchscript", "",
                "TorchScript feature extractor: forward(N x C x H x W in [-1, 1]) -> N x D (or N x D x 1 x 1)")
        .integer("resize", 0, 0, 4096, "TorchScript only: resize images to resize x resize (bilinear) first; 0: as they are")
        .integer("channels", 0, 0, 3, "TorchScript only: 3 repeats grey images to RGB, 1 insists on grey; 0: as they are")
        .integer("batch", 256, 1, 65536, "images per forward pass of the feature extractor");
  }

 private:
  static void check_set(const at::Tensor& x, const char* which) {
    if (x.dim() != 4)
      throw monge::Error(std::string("fid: the ") + which + " set must be an N x C x H x W batch, got shape " + shape_text(x));
    if (x.size(0) < 2)
      throw monge::Error(std::string("fid: the ") + which + " set has " + std::to_string(x.size(0)) +
                         " image(s); FID needs at least 2 (a covariance), and far more than the feature dimension to mean much");
  }

  // Features [N, D] of images in [-1, 1].
  at::Tensor features(const at::Tensor& x) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (classifier_) {
      monge::check_classifier_input(classifier_->config(), x, "fid");
      return monge::classifier_batched(x.detach().cpu(), batch_, [&](const at::Tensor& b) { return classifier_->features(b); });
    }
    at::Tensor in = x.detach().cpu();
    if (channels_ != 0 && in.size(1) != channels_) {
      if (in.size(1) == 1) in = in.expand({-1, channels_, -1, -1});
      else
        throw monge::Error("fid: parameter 'channels' = " + std::to_string(channels_) + " but the images have " +
                           std::to_string(in.size(1)) + " channels; only grey images are converted (repeated)");
    }
    return monge::classifier_batched(in, batch_, [&](at::Tensor b) {
      if (resize_ > 0)
        b = torch::nn::functional::interpolate(
            b, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{resize_, resize_})
                   .mode(torch::kBilinear).align_corners(false));
      return script_features(b.contiguous());
    });
  }

  at::Tensor script_features(const at::Tensor& b) const {
    c10::IValue out;
    try {
      out = script_->forward({b});
    } catch (const std::exception& e) {
      throw monge::Error("fid: " + script_file_ + ": forward() failed on a " + shape_text(b) + " batch: " + script_error(e.what()));
    }
    if (!out.isTensor())
      throw monge::Error("fid: " + script_file_ + ": forward() must return one tensor of features, it returned " + out.tagKind());
    at::Tensor f = out.toTensor();
    const bool ok = f.dim() == 2 || (f.dim() == 4 && f.size(2) == 1 && f.size(3) == 1);
    if (!ok || f.size(0) != b.size(0))
      throw monge::Error("fid: " + script_file_ + ": forward() must return N x D or N x D x 1 x 1 features, got " +
                         shape_text(f) + " for a batch of " + std::to_string(b.size(0)));
    return f.reshape({f.size(0), f.size(1)});
  }

  std::string classifier_file_, script_file_;
  int64_t resize_, channels_, batch_;
  mutable monge::ClassifierNet classifier_{nullptr};
  mutable std::optional<torch::jit::Module> script_;
  mutable std::mutex mutex_;
};

}  // namespace

MONGE_PLUGIN(Fid, metric, "fid", "1.0.0",
             "Frechet distance of feature distributions (monge classifier or TorchScript extractor); set-level, lower is better",
             Fid::schema())
