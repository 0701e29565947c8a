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

namespace {

// The checks on the training set and the options, before anything is converted.
void check_config(const ClassifierTrainConfig& c) {
  check_set(c.images, c.labels, "images", "labels");
  if (c.test_images.defined()) check_set(c.test_images, c.test_labels, "test_images", "test_labels");
  if (c.epochs < 1 || c.batch < 1) throw Error("train_classifier: 'epochs' and 'batch' must be at least 1");
  if (!(c.lr > 0)) throw Error("train_classifier: 'lr' must be positive");
}

// The number of classes (given, or the largest label + 1), checked against both sets' labels; the
// test set's image shape; the output's directory (failing before training, not after minutes of it).
int64_t check_labels(const ClassifierTrainConfig& c, const at::Tensor& x, const at::Tensor& y) {
  const int64_t min_label = y.min().item<int64_t>(), max_label = y.max().item<int64_t>();
  const int64_t classes = c.classes > 0 ? c.classes : max_label + 1;
  if (min_label < 0 || max_label >= classes)
    throw Error("train_classifier: labels must be in 0.." + std::to_string(classes - 1) + ", got " +
                std::to_string(min_label) + ".." + std::to_string(max_label));
  if (classes < 2) throw Error("train_classifier: the labels name a single class; a classifier needs at least 2");
  if (c.test_images.defined()) {
    if (c.test_images.sizes().slice(1) != x.sizes().slice(1))
      throw Error("train_classifier: test images are " + shape_text(c.test_images) + " but training images " + shape_text(x) +
                  " (channels and size must match)");
    const int64_t t_max = c.test_labels.max().item<int64_t>(), t_min = c.test_labels.min().item<int64_t>();
    if (t_min < 0 || t_max >= classes)
      throw Error("train_classifier: test labels must be in 0.." + std::to_string(classes - 1) + ", got " +
                  std::to_string(t_min) + ".." + std::to_string(t_max));
  }
  if (!c.out.empty()) {
    const auto dir = c.out.has_parent_path() ? c.out.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
      throw Error("train_classifier: " + c.out.string() + ": directory " + dir.string() + " does not exist");
  }
  return classes;
}

ClassifierConfig net_config(const ClassifierTrainConfig& c, const at::Tensor& x, int64_t classes) {
  ClassifierConfig config;
  config.in_channels = x.size(1);
  config.classes = classes;
  config.widths = c.widths;
  config.feature_dim = c.features;
  config.height = x.size(2);
  config.width = x.size(3);
  return config;
}

// The epochs of one train_classifier call over the training set x, y (CPU, float and long).
class ClassifierRun {
 public:
  ClassifierRun(const ClassifierTrainConfig& c, const at::Tensor& x, const at::Tensor& y, ClassifierTrainResult& result)
      : c_(c), x_(x), y_(y), net_(result.net),
        opt_(net_->parameters(), torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay)),
        gen_(at::make_generator<at::CPUGeneratorImpl>(c.seed)), n_(x.size(0)), per_epoch_((n_ + c.batch - 1) / c.batch),
        total_(per_epoch_ * c.epochs), tty_(isatty(STDERR_FILENO) != 0) {}

  void announce(const ClassifierConfig& config, int64_t parameters) const {
    if (!c_.progress) return;
    std::cerr << "train_classifier: " << n_ << " images " << config.in_channels << " x " << config.height << " x "
              << config.width << ", " << config.classes << " classes, widths " << c_.widths[0] << "/" << c_.widths[1] << "/"
              << c_.widths[2] << ", " << c_.features << " features, " << parameters << " parameters, " << c_.epochs << " epochs x " << per_epoch_
              << " batches of " << c_.batch << ", " << at::get_num_threads() << " threads\n";
  }
  void start_clock() { t0_ = std::chrono::steady_clock::now(); }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  int64_t steps() const { return done_; }

  ClassifierEpoch epoch(int64_t epoch);

 private:
  double step(int64_t epoch, const at::Tensor& order, int64_t start, int64_t size, int64_t& correct);
  void progress_line(int64_t epoch, int64_t seen, double loss_sum) const;
  void epoch_line(const ClassifierEpoch& e) const;

  const ClassifierTrainConfig& c_;
  const at::Tensor& x_;
  const at::Tensor& y_;
  ClassifierNet& net_;
  torch::optim::Adam opt_;
  at::Generator gen_;
  const int64_t n_, per_epoch_, total_;
  const bool tty_;
  std::chrono::steady_clock::time_point t0_;
  int64_t done_ = 0;  // batches trained
};

// One epoch over a fresh random order of the training set.
ClassifierEpoch ClassifierRun::epoch(int64_t epoch) {
  net_->train();
  const at::Tensor order = at::randperm(n_, gen_, at::TensorOptions().dtype(at::kLong));
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t b = 0; b < per_epoch_; ++b) {
    const int64_t start = b * c_.batch, size = std::min(c_.batch, n_ - start);
    loss_sum += step(epoch, order, start, size, correct) * static_cast<double>(size);
    const int64_t every = std::max<int64_t>(1, total_ / 20);
    if (c_.progress && (tty_ || done_ % every == 0) && done_ != total_) progress_line(epoch, start + size, loss_sum);
  }
  ClassifierEpoch e;
  e.epoch = epoch;
  e.train_loss = loss_sum / static_cast<double>(n_);
  e.train_accuracy = static_cast<double>(correct) / static_cast<double>(n_);
  if (c_.test_images.defined()) e.test_accuracy = classifier_accuracy(net_, c_.test_images, c_.test_labels);
  e.seconds = elapsed();
  epoch_line(e);
  return e;
}

// One optimiser step on the batch order[start, start + size); returns its loss and counts its
// correct predictions into `correct`.
double ClassifierRun::step(int64_t epoch, const at::Tensor& order, int64_t start, int64_t size, int64_t& correct) {
  const at::Tensor idx = order.narrow(0, start, size);
  at::Tensor xb = x_.index_select(0, idx);
  const at::Tensor yb = y_.index_select(0, idx);
  if (c_.flip) {
    const at::Tensor flip = at::rand({size, 1, 1, 1}, gen_).lt(0.5);
    xb = at::where(flip, xb.flip({3}), xb);
  }
  // Cosine decay of the learning rate to 0 over the whole run.
  const double lr = c_.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(done_) / static_cast<double>(total_)));
  for (auto& group : opt_.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  opt_.zero_grad();
  const at::Tensor logits = net_->forward(xb);
  const at::Tensor loss = torch::nn::functional::cross_entropy(logits, yb);
  loss.backward();
  opt_.step();
  ++done_;
  const double l = loss.item<double>();
  if (!std::isfinite(l))
    throw Error("train_classifier: the loss became " + std::to_string(l) + " at epoch " + std::to_string(epoch) +
                "; lower 'lr' (now " + std::to_string(c_.lr) + ")");
  correct += logits.argmax(1).eq(yb).sum().item<int64_t>();
  return l;
}

// `seen`: the images of this epoch trained so far.
void ClassifierRun::progress_line(int64_t epoch, int64_t seen, double loss_sum) const {
  const double rate = done_ / std::max(elapsed(), 1e-9);
  std::ostringstream line;
  line << std::fixed << std::setprecision(1) << std::setw(5) << 100.0 * done_ / total_ << "% epoch " << epoch << "/"
       << c_.epochs << "  " << done_ << "/" << total_ << "  " << std::setprecision(2) << rate << " it/s ("
       << std::setprecision(0) << rate * c_.batch << " images/s)  ETA " << format_duration((total_ - done_) / rate)
       << std::setprecision(4) << "  loss " << loss_sum / static_cast<double>(seen);
  if (tty_) std::cerr << "\r\033[K" << line.str() << std::flush;
  else std::cerr << line.str() << "\n";
}

void ClassifierRun::epoch_line(const ClassifierEpoch& e) const {
  if (!c_.progress) return;
  std::ostringstream line;
  line << std::fixed << std::setprecision(4) << "epoch " << e.epoch << "/" << c_.epochs << ": train loss " << e.train_loss
       << ", train accuracy " << e.train_accuracy;
  if (c_.test_images.defined()) line << ", test accuracy " << e.test_accuracy;
  line << std::setprecision(1) << "  (" << e.seconds << " s)";
  std::cerr << (tty_ ? "\r\033[K" : "") << line.str() << "\n";
}

// The classifier file, with the run's metrics and settings as notes.
void save_result(const ClassifierTrainConfig& c, ClassifierTrainResult& result, int64_t n) {
  std::map<std::string, double> metrics{{"train_loss", result.epochs.back().train_loss},
                                        {"train_accuracy", result.epochs.back().train_accuracy},
                                        {"seconds", result.seconds}};
  if (c.test_images.defined()) {
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
  write_atomically(c.out, [&](const std::string& tmp) { save_classifier(tmp, result.net, metrics, notes); });
}

}  // namespace

ClassifierTrainResult train_classifier(const ClassifierTrainConfig& c) {
  check_config(c);
  const at::Tensor x = c.images.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor y = c.labels.detach().to(at::kCPU, at::kLong).contiguous();
  const int64_t classes = check_labels(c, x, y);

  ThreadsGuard threads(c.threads);
  const ClassifierConfig config = net_config(c, x, classes);
  torch::manual_seed(c.seed);
  ClassifierTrainResult result;
  result.net = ClassifierNet(config);
  for (const auto& p : result.net->parameters()) result.parameters += p.numel();
  ClassifierRun run(c, x, y, result);
  run.announce(config, result.parameters);
  run.start_clock();
  for (int64_t epoch = 1; epoch <= c.epochs; ++epoch) result.epochs.push_back(run.epoch(epoch));
  result.net->eval();
  result.seconds = run.elapsed();
  result.iterations = run.steps();
  result.accuracy = c.test_images.defined() ? result.epochs.back().test_accuracy : -1;
  if (!c.out.empty()) save_result(c, result, x.size(0));
  return result;
}

}  // namespace monge::host
