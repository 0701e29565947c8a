// torchscript: a user's differentiable forward operator from a TorchScript file (a PyTorch module
// saved with torch.jit.save). forward(x) is A; a `lift` method, when the module has one, is Q.
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "monge/operator.hpp"
#include "monge/sdk.hpp"
#include "monge/shape.hpp"

namespace {

using monge::shape_text;

std::string first_line(const std::string& s) {
  const auto cut = s.find('\n');
  return cut == std::string::npos ? s : s.substr(0, cut);
}

class TorchScriptOperator final : public monge::ForwardOperator {
 public:
  explicit TorchScriptOperator(const monge::Params& p)
      : file_(p.string("file")), lipschitz_(p.real("lipschitz")), monotone_(p.boolean("monotone")),
        lift_radius_(p.integer("lift_radius")) {
    if (file_.empty())
      throw monge::Error("torchscript: 'file' (a TorchScript file saved with torch.jit.save) is required");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file_, ec)) throw monge::Error("torchscript: no such file " + file_);
    try {
      module_ = torch::jit::load(file_, c10::Device(c10::kCPU));
    } catch (const std::exception& e) {
      throw monge::Error("torchscript: " + file_ + " is not a TorchScript module, or it is truncated (" +
                         first_line(e.what()) + "); save the operator with torch.jit.save(torch.jit.script(op), path)");
    }
    if (!module_.find_method("forward")) throw monge::Error("torchscript: " + file_ + " has no forward() method");
    has_lift_ = module_.find_method("lift").has_value();
    module_.eval();
  }

  at::Tensor forward(const at::Tensor& x) const override { return call("forward", x); }

  at::Tensor lift(const at::Tensor& y) const override { return has_lift_ ? call("lift", y) : y; }

  // The module decides: run it once on one zero sample of that shape.
  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    if (signal.size() != 4) throw monge::Error("torchscript: signals are N x C x H x W, got " + std::to_string(signal.size()) + " dimensions");
    torch::NoGradGuard no_grad;
    std::vector<int64_t> one = signal;
    one[0] = 1;
    std::vector<int64_t> out = forward(at::zeros(one, at::kFloat)).sizes().vec();
    out[0] = signal[0];
    return out;
  }

  std::optional<double> lipschitz() const override {
    return lipschitz_ > 0 ? std::optional<double>(lipschitz_) : std::nullopt;
  }
  bool monotone() const override { return monotone_; }

  // Without a lift method Q is the identity; a scripted lift's reach is whatever the user declares.
  int64_t lift_radius() const override { return has_lift_ ? lift_radius_ : 0; }

  static monge::Schema schema() {
    return monge::Schema{}
        .string("file", "", "TorchScript file: forward(x) is A; a lift(y) method, if present, is Q")
        .real("lipschitz", 0, 0, 1e9, "a known Lipschitz bound of A (0: unknown)")
        .boolean("monotone", false, "declare A monotone (<A(x1) - A(x2), x1 - x2> >= 0), e.g. a pointwise nondecreasing map")
        .integer("lift_radius", -1, -1, 4096,
                 "how many measurement pixels the module's lift reads around each position, for exact tiled "
                 "apply (-1: unknown, tiles are blended)");
  }

 private:
  at::Tensor call(const char* method, const at::Tensor& x) const {
    c10::IValue out;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      out = module_.get_method(method)({x});
    } catch (const std::exception& e) {
      throw monge::Error("torchscript: " + file_ + ": " + method + "() failed on a " + shape_text(x.sizes()) + " " +
                         c10::toString(x.scalar_type()) + " tensor: " + first_line(e.what()));
    }
    if (!out.isTensor())
      throw monge::Error("torchscript: " + file_ + ": " + method + "() must return one tensor, it returned " +
                         out.tagKind());
    return out.toTensor();
  }

  std::string file_;
  double lipschitz_;
  bool monotone_;
  int64_t lift_radius_;
  bool has_lift_ = false;
  mutable torch::jit::Module module_;
  mutable std::mutex mutex_;  // Method calls on one module are not documented as thread-safe
};

}  // namespace

MONGE_PLUGIN(TorchScriptOperator, operator, "torchscript", "1.0.0",
             "a differentiable operator from a TorchScript file (forward = A, optional lift = Q)",
             TorchScriptOperator::schema())
