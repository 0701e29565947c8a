// The identity operator: A(x) = x, Q(y) = y. Denoising tasks use it.
#include "monge/sdk.hpp"

namespace {

class Identity final : public monge::ForwardOperator {
 public:
  explicit Identity(const monge::Params&) {}
  at::Tensor forward(const at::Tensor& x) const override { return x; }
  std::optional<double> lipschitz() const override { return 1.0; }
  bool monotone() const override { return true; }
};

}  // namespace

MONGE_PLUGIN(Identity, operator, "identity", "1.0.0", "identity operator A(x) = x (denoising)", monge::Schema{})
