#pragma once
// A weighted sum of costs, built by `a + b` and `w * a` in Lua. The trainer looks inside it to
// check the twist condition (the weights of the likelihood and quadratic terms).

#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "monge/cost.hpp"

namespace monge::host {

class SumCost final : public Cost {
 public:
  std::vector<std::pair<double, std::shared_ptr<Cost>>> terms;

  at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const override {
    at::Tensor total;
    for (const auto& [w, c] : terms) {
      at::Tensor v = c->evaluate(y, x) * w;
      total = total.defined() ? total + v : v;
    }
    return total;
  }
};

}  // namespace monge::host
