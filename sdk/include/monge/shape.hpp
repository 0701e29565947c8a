#pragma once
/// Tensor shapes in error messages, written one way everywhere: "[N, C, H, W]".

#include <cstddef>
#include <string>

#include <ATen/core/Tensor.h>

namespace monge {

inline std::string shape_text(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

inline std::string shape_text(const at::Tensor& t) { return shape_text(t.sizes()); }

}  // namespace monge
