#include "host/train/classifier.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "host/core/temp_files.hpp"
#include "host/core/threads.hpp"
#include "monge/version.hpp"
#include "monge/shape.hpp"

namespace monge::host {

namespace {

void check_set(const at::Tensor& x, const at::Tensor& y, const char* images, const char* labels) {
  if (!x.defined() || x.dim() != 4 || x.size(0) == 0)
    throw Error(std::string("train_classifier: '") + images + "' must be a non-empty N x C x H x W tensor" +
                (x.defined() ? ", got shape " + shape_text(x) : std::string()));
  if (!x.is_floating_point()) throw Error(std::string("train_classifier: '") + images + "' must hold floating-point values in [-1, 1]");
  if (!y.defined() || y.dim() != 1 || y.size(0) != x.size(0))
    throw Error(std::string("train_classifier: '") + labels + "' must be a tensor of " + std::to_string(x.size(0)) +
                " labels (one per image)" + (y.defined() ? ", got shape " + shape_text(y) : std::string()));
  if (y.is_floating_point() && !y.eq(y.round()).all().item<bool>())
    throw Error(std::string("train_classifier: '") + labels + "' must hold integer class labels");
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream o;
  o << std::setfill('0');
  if (s >= 3600) o << s / 3600 << ":" << std::setw(2) << (s / 60) % 60 << ":" << std::setw(2) << s % 60;
  else o << std::setw(2) << s / 60 << ":" << std::setw(2) << s % 60;
  return o.str();
}

// Restores LibTorch's thread count when training ends (normally or by an exception).
class ThreadsGuard {
 public:
  explicit ThreadsGuard(int threads) : previous_(at::get_num_threads()) {
    if (threads > 0) set_threads(threads);
  }
  ~ThreadsGuard() { set_threads(previous_); }

 private:
  int previous_;
};

}  // namespace

double classifier_accuracy(ClassifierNet& net, const at::Tensor& images, const at::Tensor& labels, int64_t batch) {
  const bool was_training = net->is_training();
  net->eval();
  const at::Tensor pred = classifier_batched(images, batch, [&](const at::Tensor& b) { return net->forward(b).argmax(1); });
  net->train(was_training);
  return pred.eq(labels.to(at::kLong)).to(at::kDouble).mean().item<double>();
}

ClassifierTrainResult train_classifier(const ClassifierTrainConfig& c) {
  check_set(c.images, c.labels, "images", "labels");
  const bool has_test = c.test_images.defined();
  if (has_test) check_set(c.test_images, c.test_labels, "test_images", "test_labels");
  if (c.epochs < 1 || c.batch < 1) throw Error("train_classifier: 'epochs' and 'batch' must be at least 1");
  if (!(c.lr > 0)) throw Error("train_classifier: 'lr' must be positive");
  const at::Tensor x = c.images.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor y = c.labels.detach().to(at::kCPU, at::kLong).contiguous();
  const int64_t n = x.size(0);
  const int64_t min_label = y.min().item<int64_t>(), max_label = y.max().item<int64_t>();
  const int64_t classes = c.classes > 0 ? c.classes : max_label + 1;
  if (min_label < 0 || max_label >= classes)
    throw Error("train_classifier: labels must be in 0.." + std::to_string(classes - 1) + ", got " +
                std::to_string(min_label) + ".." + std::to_string(max_label));
  if (classes < 2) throw Error("train_classifier: the labels name a single class; a classifier needs at least 2");
  if (has_test) {
    if (c.test_images.sizes().slice(1) != x.sizes().slice(1))
      throw Error("train_classifier: test images are " + shape_text(c.test_images) + " but training images " + shape_text(x) +
                  " (channels and size must match)");
    const int64_t t_max = c.test_labels.max().item<int64_t>(), t_min = c.test_labels.min().item<int64_t>();
    if (t_min < 0 || t_max >= classes)
      throw Error("train_classifier: test labels must be in 0.." + std::to_string(classes - 1) + ", got " +
                  std::to_string(t_min) + ".." + std::to_string(t_max));
  }
  if (!c.out.empty()) {
    // Fail before training, not after minutes of it.
    const auto dir = c.out.has_parent_path() ? c.out.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
      throw Error("train_classifier: " + c.out.string() + ": directory " + dir.string() + " does not exist");
  }

  ThreadsGuard threads(c.threads);
  ClassifierConfig config;
  config.in_channels = x.size(1);
  config.classes = classes;
  config.widths = c.widths;
  config.feature_dim = c.features;
  config.height = x.size(2);
  config.width = x.size(3);
  torch::manual_seed(c.seed);
  ClassifierTrainResult result;
  result.net = ClassifierNet(config);
  ClassifierNet& net = result.net;
  for (const auto& p : net->parameters()) result.parameters += p.numel();
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);

  const int64_t per_epoch = (n + c.batch - 1) / c.batch, total = per_epoch * c.epochs;
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (c.progress)
    std::cerr << "train_classifier: " << n << " images " << config.in_channels << " x " << config.height << " x "
              << config.width << ", " << classes << " classes, widths " << c.widths[0] << "/" << c.widths[1] << "/"
              << c.widths[2] << ", " << c.features << " features, " << result.parameters << " parameters, " << c.epochs << " epochs x " << per_epoch
              << " batches of " << c.batch << ", " << at::get_num_threads() << " threads\n";
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int64_t done = 0;
  for (int64_t epoch = 1; epoch <= c.epochs; ++epoch) {
    net->train();
    const at::Tensor order = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < per_epoch; ++b) {
      const int64_t start = b * c.batch, size = std::min(c.batch, n - start);
      const at::Tensor idx = order.narrow(0, start, size);
      at::Tensor xb = x.index_select(0, idx);
      const at::Tensor yb = y.index_select(0, idx);
      if (c.flip) {
        const at::Tensor flip = at::rand({size, 1, 1, 1}, gen).lt(0.5);
        xb = at::where(flip, xb.flip({3}), xb);
      }
      // Cosine decay of the learning rate to 0 over the whole run.
      const double lr = c.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(done) / static_cast<double>(total)));
      for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      opt.zero_grad();
      const at::Tensor logits = net->forward(xb);
      const at::Tensor loss = torch::nn::functional::cross_entropy(logits, yb);
      loss.backward();
      opt.step();
      ++done;
      const double l = loss.item<double>();
      if (!std::isfinite(l))
        throw Error("train_classifier: the loss became " + std::to_string(l) + " at epoch " + std::to_string(epoch) +
                    "; lower 'lr' (now " + std::to_string(c.lr) + ")");
      loss_sum += l * static_cast<double>(size);
      correct += logits.argmax(1).eq(yb).sum().item<int64_t>();
      const int64_t every = std::max<int64_t>(1, total / 20);
      if (c.progress && (tty || done % every == 0) && done != total) {
        const double rate = done / std::max(elapsed(), 1e-9);
        std::ostringstream line;
        line << std::fixed << std::setprecision(1) << std::setw(5) << 100.0 * done / total << "% epoch " << epoch << "/"
             << c.epochs << "  " << done << "/" << total << "  " << std::setprecision(2) << rate << " it/s ("
             << std::setprecision(0) << rate * c.batch << " images/s)  ETA " << format_duration((total - done) / rate)
             << std::setprecision(4) << "  loss " << loss_sum / static_cast<double>(start + size);
        if (tty) std::cerr << "\r\033[K" << line.str() << std::flush;
        else std::cerr << line.str() << "\n";
      }
    }
    ClassifierEpoch e;
    e.epoch = epoch;
    e.train_loss = loss_sum / static_cast<double>(n);
    e.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
    if (has_test) e.test_accuracy = classifier_accuracy(net, c.test_images, c.test_labels);
    e.seconds = elapsed();
    result.epochs.push_back(e);
    if (c.progress) {
      std::ostringstream line;
      line << std::fixed << std::setprecision(4) << "epoch " << epoch << "/" << c.epochs << ": train loss " << e.train_loss
           << ", train accuracy " << e.train_accuracy;
      if (has_test) line << ", test accuracy " << e.test_accuracy;
      line << std::setprecision(1) << "  (" << e.seconds << " s)";
      std::cerr << (tty ? "\r\033[K" : "") << line.str() << "\n";
    }
  }
  net->eval();
  result.seconds = elapsed();
  result.iterations = done;
  result.accuracy = has_test ? result.epochs.back().test_accuracy : -1;

  if (!c.out.empty()) {
    std::map<std::string, double> metrics{{"train_loss", result.epochs.back().train_loss},
                                          {"train_accuracy", result.epochs.back().train_accuracy},
                                          {"seconds", result.seconds}};
    if (has_test) {
      metrics["test_accuracy"] = result.accuracy;
      metrics["test_images"] = static_cast<double>(c.test_images.size(0));
    }
    std::ostringstream lr;
    lr << c.lr;
    const std::map<std::string, std::string> notes{{"monge_version", kVersion},
                                                   {"train_images", std::to_string(n)},
                                                   {"epochs", std::to_string(c.epochs)},
                                                   {"batch", std::to_string(c.batch)},
                                                   {"lr", lr.str()},
                                                   {"seed", std::to_string(c.seed)},
                                                   {"flip", c.flip ? "true" : "false"}};
    write_atomically(c.out, [&](const std::string& tmp) { save_classifier(tmp, net, metrics, notes); });
  }
  return result;
}

}  // namespace monge::host
