#pragma once
/// The image classifier of monge: a small CNN whose penultimate layer is the feature space of the
/// `fid` metric, and whose predictions the `classifier_agreement` metric compares. Trained by the
/// host (`monge.train_classifier`, host/train/classifier.hpp); loaded by the host and by plugins
/// from one file. Header-only; not part of monge/sdk.hpp (it includes the LibTorch C++ API).
///
/// Architecture (widths w1, w2, w3, default 32, 64, 128; feature dimension F, default 128), input
/// N x C x H x W in [-1, 1]:
///   conv 3x3 C->w1, BN, ReLU, max-pool 2
///   conv 3x3 w1->w2, BN, ReLU, max-pool 2
///   conv 3x3 w2->w3, BN, ReLU, adaptive max-pool to 3 x 3, flatten
///   linear 9 w3 -> F, ReLU                            -> features [N, F]
///   linear F -> classes                               -> logits   [N, classes]
/// The 3 x 3 grid keeps where things are (a global pool of the last maps lost it and stayed below
/// 90% on Fashion-MNIST after 4 epochs).

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "monge/plugin.hpp"
#include "monge/shape.hpp"

namespace monge {

/// Format version of classifier files. Bump on incompatible changes; load_classifier refuses newer ones.
inline constexpr int64_t kClassifierFormat = 1;

/// What a classifier was built for, recorded in its file.
struct ClassifierConfig {
  int64_t in_channels = 1;
  int64_t classes = 10;
  std::vector<int64_t> widths{32, 64, 128};
  int64_t feature_dim = 128;
  int64_t height = 28;  ///< image size it was trained on; other sizes are refused
  int64_t width = 28;
};

class ClassifierNetImpl : public torch::nn::Module {
 public:
  explicit ClassifierNetImpl(const ClassifierConfig& c) : config_(c) {
    if (c.widths.size() != 3) throw Error("classifier: 'widths' must hold three channel counts");
    for (int64_t w : c.widths)
      if (w < 1 || w > 4096) throw Error("classifier: every width must be in [1, 4096], got " + std::to_string(w));
    if (c.in_channels < 1 || c.classes < 2) throw Error("classifier: needs at least 1 input channel and 2 classes");
    if (c.feature_dim < 1 || c.feature_dim > 65536)
      throw Error("classifier: the feature dimension must be in [1, 65536], got " + std::to_string(c.feature_dim));
    int64_t in = c.in_channels;
    for (size_t i = 0; i < 3; ++i) {
      convs_.push_back(register_module("conv" + std::to_string(i + 1),
                                       torch::nn::Conv2d(torch::nn::Conv2dOptions(in, c.widths[i], 3).padding(1).bias(false))));
      norms_.push_back(register_module("bn" + std::to_string(i + 1), torch::nn::BatchNorm2d(c.widths[i])));
      in = c.widths[i];
    }
    fc_ = register_module("fc", torch::nn::Linear(in * kGrid * kGrid, c.feature_dim));
    head_ = register_module("head", torch::nn::Linear(c.feature_dim, c.classes));
  }

  /// Side of the grid the last feature maps are pooled to.
  static constexpr int64_t kGrid = 3;

  /// Penultimate-layer features [N, feature_dim].
  torch::Tensor features(torch::Tensor x) {
    for (size_t i = 0; i < 3; ++i) {
      x = torch::relu(norms_[i]->forward(convs_[i]->forward(x)));
      if (i < 2) x = torch::max_pool2d(x, 2);
    }
    x = std::get<0>(torch::adaptive_max_pool2d(x, {kGrid, kGrid})).flatten(1);
    return torch::relu(fc_->forward(x));
  }
  /// Class scores [N, classes].
  torch::Tensor forward(const torch::Tensor& x) { return head_->forward(features(x)); }

  const ClassifierConfig& config() const { return config_; }
  int64_t feature_dim() const { return config_.feature_dim; }

 private:
  ClassifierConfig config_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  torch::nn::Linear fc_{nullptr}, head_{nullptr};
};
TORCH_MODULE(ClassifierNet);

/// A classifier as read from its file.
struct LoadedClassifier {
  ClassifierNet net{nullptr};
  std::map<std::string, double> metrics;     ///< e.g. "test_accuracy"
  std::map<std::string, std::string> notes;  ///< training summary
};

namespace classifier_detail {

inline std::string first_line(std::string s) {
  if (auto cut = s.find('\n'); cut != std::string::npos) s.resize(cut);
  return s;
}

}  // namespace classifier_detail

/// Writes the classifier (config, metrics, notes, weights) to `file` directly; the host writes
/// through a temporary file and a rename (host::write_atomically) so that no partial file remains.
inline void save_classifier(const std::string& file, ClassifierNet& net, const std::map<std::string, double>& metrics,
                            const std::map<std::string, std::string>& notes) {
  torch::serialize::OutputArchive archive;
  const ClassifierConfig& c = net->config();
  archive.write("monge_classifier_format", c10::IValue(kClassifierFormat));
  archive.write("config", c10::IValue(std::vector<int64_t>{c.in_channels, c.classes, c.widths[0], c.widths[1],
                                                           c.widths[2], c.feature_dim, c.height, c.width}));
  c10::Dict<std::string, double> m;
  for (const auto& [k, v] : metrics) m.insert(k, v);
  archive.write("metrics", c10::IValue(m));
  c10::Dict<std::string, std::string> n;
  for (const auto& [k, v] : notes) n.insert(k, v);
  archive.write("notes", c10::IValue(n));
  torch::serialize::OutputArchive weights;
  net->save(weights);
  archive.write("weights", weights);
  archive.save_to(file);
}

/// Reads a classifier file written by save_classifier, in eval mode on the CPU. Throws
/// monge::Error, starting with `who` and naming the file, for a missing, corrupt or foreign file.
inline LoadedClassifier load_classifier(const std::string& file, const std::string& who = "classifier") {
  const std::string where = who + ": " + file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw Error(where + ": no such classifier file");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file);
  } catch (const std::exception&) {
    throw Error(where + ": not a monge classifier file, or it is truncated or corrupt (train one with "
                        "monge.train_classifier or `monge bench fmnist-classifier`)");
  }
  c10::IValue v;
  if (!archive.try_read("monge_classifier_format", v) || !v.isInt()) {
    const bool is_map = archive.try_read("monge_map_format", v);
    throw Error(where + (is_map ? ": is a monge map file, not a classifier" : ": is not a monge classifier file") +
                " (train one with monge.train_classifier; a TorchScript feature extractor goes to fid's 'torchscript' "
                "parameter instead)");
  }
  if (v.toInt() > kClassifierFormat)
    throw Error(where + ": classifier format " + std::to_string(v.toInt()) + " is newer than this monge understands (" +
                std::to_string(kClassifierFormat) + "); update monge");
  LoadedClassifier out;
  try {
    archive.read("config", v);
    const auto c = v.toIntVector();
    if (c.size() != 8) throw Error("bad config record");
    ClassifierConfig config;
    config.in_channels = c[0];
    config.classes = c[1];
    config.widths = {c[2], c[3], c[4]};
    config.feature_dim = c[5];
    config.height = c[6];
    config.width = c[7];
    out.net = ClassifierNet(config);
    archive.read("metrics", v);
    for (const auto& e : v.toGenericDict()) out.metrics[e.key().toStringRef()] = e.value().toDouble();
    archive.read("notes", v);
    for (const auto& e : v.toGenericDict()) out.notes[e.key().toStringRef()] = e.value().toStringRef();
    torch::serialize::InputArchive weights;
    archive.read("weights", weights);
    out.net->load(weights);
  } catch (const std::exception& e) {
    throw Error(where + ": cannot read classifier (" + classifier_detail::first_line(e.what()) + ")");
  }
  out.net->eval();
  return out;
}

/// Throws monge::Error, starting with `who`, unless `x` is N x C x H x W with the channels and size
/// the classifier was trained on.
inline void check_classifier_input(const ClassifierConfig& c, const at::Tensor& x, const std::string& who) {
  if (x.dim() != 4)
    throw Error(who + ": expected an N x C x H x W batch, got shape " + monge::shape_text(x));
  if (x.size(1) != c.in_channels)
    throw Error(who + ": the classifier takes " + std::to_string(c.in_channels) + "-channel images, got " +
                std::to_string(x.size(1)) + " channels (shape " + monge::shape_text(x) + ")");
  if (x.size(2) != c.height || x.size(3) != c.width)
    throw Error(who + ": the classifier was trained on " + std::to_string(c.height) + " x " + std::to_string(c.width) +
                " images, got " + std::to_string(x.size(2)) + " x " + std::to_string(x.size(3)));
}

/// Runs `fn` on batches of `batch` images of x (no gradients, eval mode) and concatenates the results.
template <class Fn>
at::Tensor classifier_batched(const at::Tensor& x, int64_t batch, Fn&& fn) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  const int64_t n = x.size(0), step = std::max<int64_t>(1, batch);
  for (int64_t i = 0; i < n; i += step) parts.push_back(fn(x.narrow(0, i, std::min(step, n - i)).to(at::kFloat)));
  return parts.empty() ? at::Tensor() : at::cat(parts, 0);
}

}  // namespace monge
