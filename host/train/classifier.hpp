#pragma once
// Supervised training of monge's image classifier (monge/classifier.hpp): the network whose
// features the `fid` metric uses and whose predictions `classifier_agreement` compares.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "monge/classifier.hpp"

namespace monge::host {

struct ClassifierTrainConfig {
  at::Tensor images, labels;            ///< N x C x H x W in [-1, 1], N int64 labels 0..classes-1
  at::Tensor test_images, test_labels;  ///< optional: accuracy after every epoch
  std::vector<int64_t> widths{32, 64, 128};
  int64_t features = 128;     ///< dimension of the feature layer (fid's space)
  int64_t classes = 0;       ///< 0: 1 + the largest training label
  int64_t epochs = 3;
  int64_t batch = 128;
  double lr = 2e-3;          ///< Adam, cosine decay to 0 over the run
  double weight_decay = 0;
  bool flip = false;         ///< random horizontal flips of training images (measured: slower to reach 90% in 4 epochs)
  uint64_t seed = 0;
  int threads = 0;           ///< LibTorch threads during training; 0: leave as it is
  std::filesystem::path out; ///< classifier file to write (atomically); empty: none
  bool progress = true;
};

struct ClassifierEpoch {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0;
  double test_accuracy = -1;  ///< -1 without a test set
  double seconds = 0;         ///< since the start of training
};

struct ClassifierTrainResult {
  ClassifierNet net{nullptr};  ///< eval mode, CPU
  std::vector<ClassifierEpoch> epochs;
  double accuracy = -1;        ///< test accuracy after the last epoch (-1 without a test set)
  double seconds = 0;
  int64_t iterations = 0;
  int64_t parameters = 0;
};

/// Trains a classifier with Adam and cross-entropy; writes `out` when set. Throws monge::Error
/// for bad inputs (shapes, labels out of range).
ClassifierTrainResult train_classifier(const ClassifierTrainConfig& config);

/// Test accuracy of `net` on images and labels (eval mode, no gradients).
double classifier_accuracy(ClassifierNet& net, const at::Tensor& images, const at::Tensor& labels, int64_t batch = 512);

}  // namespace monge::host
