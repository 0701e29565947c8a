// uotip: Algorithm 1 of UOTIP, unbalanced with psi = kl by default; psi = identity gives the
// balanced OTIP, smoothing > 0 the OTP source smoothing. The solver is uotip_solver.hpp, shared
// with otp (plugins/solvers/otp).
#include "monge/export.hpp"
#include "uotip_solver.hpp"

namespace {
constexpr monge::uotip::Variant kUotip{"uotip", "kl", 0, 0.1};
using Uotip = monge::uotip::UotipSolver<kUotip>;
}  // namespace

MONGE_PLUGIN(Uotip, solver, "uotip", "1.1.0",
             "unbalanced OT map for inverse problems (Algorithm 1; otip when balanced; optional OTP smoothing)",
             Uotip::schema())
