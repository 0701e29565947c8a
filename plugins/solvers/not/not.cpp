// not: Neural Optimal Transport (Korotin, Selikhanovych, Burnaev 2023) with the strong or
// gamma-weak quadratic cost. The solver is not_solver.hpp, shared with knot (plugins/solvers/knot).
#include "monge/export.hpp"
#include "not_solver.hpp"

namespace {
// gamma_ramp: the NOT report's linear ramp over the first quarter of the run.
constexpr monge::neural_ot::Variant kNot{"not", "quadratic", 0.0, 0.25};
using Not = monge::neural_ot::NeuralOt<kNot>;
}  // namespace

MONGE_PLUGIN(Not, solver, "not", "1.0.0",
             "neural optimal transport: strong or gamma-weak quadratic cost, stochastic map T(y, z), K_T map steps",
             Not::schema())
