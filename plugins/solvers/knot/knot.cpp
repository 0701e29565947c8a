// knot: kernel Neural Optimal Transport (Korotin et al. 2023): not's solver
// (plugins/solvers/not/not_solver.hpp) with the gamma-weak distance-induced kernel ||a - b||^alpha,
// alpha = 1 by default, which rules out fake solutions.
#include "../not/not_solver.hpp"
#include "monge/export.hpp"

namespace {
// gamma_ramp 0: the kernel cost from the first step. A ramp would start with the strong cost, the
// regime where fake solutions form (on the one-to-many toy a 25% ramp collapsed 3 seeds of 4 onto
// one mode; without it all 4 split the mass).
constexpr monge::neural_ot::Variant kKnot{"knot", "distance", 0.5, 0.0};
using Knot = monge::neural_ot::NeuralOt<kKnot>;
}  // namespace

MONGE_PLUGIN(Knot, solver, "knot", "1.0.0",
             "kernel neural OT: stochastic map with the gamma-weak distance-kernel cost (no fake solutions)",
             Knot::schema())
