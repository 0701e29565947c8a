// classifier_agreement: per image, 1 when monge's classifier predicts the same class for the
// restored image as for its reference, else 0; the mean is the agreement rate. The Metric
// interface carries no labels: on clean references that a >= 90% classifier mostly gets right,
// this is a close proxy of the classifier's accuracy on the restored images (monge.classifier's
// predict gives the accuracy against true labels).
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "monge/classifier.hpp"
#include "monge/sdk.hpp"

namespace {

using monge::shape_text;

class ClassifierAgreement final : public monge::Metric {
 public:
  explicit ClassifierAgreement(const monge::Params& p) : file_(p.string("classifier")), batch_(p.integer("batch")) {
    if (file_.empty())
      throw monge::ParamError("classifier_agreement: 'classifier' (a monge classifier file, from monge.train_classifier) is required");
    net_ = monge::load_classifier(file_, "classifier_agreement").net;
  }

  at::Tensor per_image(const at::Tensor& restored, const at::Tensor& reference) const override {
    if (restored.dim() != 4 || restored.sizes() != reference.sizes())
      throw monge::Error("classifier_agreement: expected two N x C x H x W batches of the same shape, got " +
                         shape_text(restored) + " and " + shape_text(reference));
    if (restored.size(0) == 0) return at::empty({0}, at::kDouble);
    const at::Tensor a = predict(restored), b = predict(reference);
    return a.eq(b).to(at::kDouble);
  }

  static monge::Schema schema() {
    return monge::Schema{}
        .string("classifier", "", "monge classifier file (monge.train_classifier)")
        .integer("batch", 256, 1, 65536, "images per forward pass of the classifier");
  }

 private:
  at::Tensor predict(const at::Tensor& x) const {
    std::lock_guard<std::mutex> lock(mutex_);
    monge::check_classifier_input(net_->config(), x, "classifier_agreement");
    return monge::classifier_batched(x.detach().cpu(), batch_, [&](const at::Tensor& b) { return net_->forward(b).argmax(1); });
  }

  std::string file_;
  int64_t batch_;
  mutable monge::ClassifierNet net_{nullptr};
  mutable std::mutex mutex_;
};

}  // namespace

MONGE_PLUGIN(ClassifierAgreement, metric, "classifier_agreement", "1.0.0",
             "1 where the classifier predicts the same class for the restored image as for its reference; mean = agreement rate",
             ClassifierAgreement::schema())
