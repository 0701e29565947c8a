#pragma once
// Integer division rounded down and up, for any sign of the dividend (b > 0).

#include <cstdint>

namespace monge::host {

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

}  // namespace monge::host
