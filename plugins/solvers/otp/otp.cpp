// otp: OT plan by source smoothing (Choi, Choi & Kwon, ICML 2025): uotip's solver
// (plugins/solvers/uotip/uotip_solver.hpp) with other defaults, balanced (psi = identity) and
// smoothing on (s annealed from 1 to 0.1), so that the exported map samples a transport plan.
#include "../uotip/uotip_solver.hpp"
#include "monge/export.hpp"

namespace {
constexpr monge::uotip::Variant kOtp{"otp", "identity", 1.0, 0.1};
using Otp = monge::uotip::UotipSolver<kOtp>;
}  // namespace

MONGE_PLUGIN(Otp, solver, "otp", "1.0.0",
             "OT plan by source smoothing (OTP): semi-dual OT on y + s n with s annealed; a stochastic map",
             Otp::schema())
