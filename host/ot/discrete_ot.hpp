#pragma once
// Discrete optimal transport between weighted point clouds: exact OT (network simplex),
// entropic OT (log-domain Sinkhorn), unbalanced entropic OT (KL marginal penalties), and two
// marginal-fit measures (energy distance, Sinkhorn divergence). They are references against which
// the neural OT solvers are checked on small toys, so they favour exactness over speed: every
// computation is in float64 on the CPU, whatever the dtype and device of the inputs.
//
// Conventions shared by every function:
// - A cost matrix C is [n, m]; histograms a [n] and b [m] are nonnegative. An undefined tensor
//   for a or b means uniform weights 1/n or 1/m.
// - Point clouds are [n, d]; [n] is read as n points on a line and [n, C, H, W] (any rank above 2)
//   is flattened to [n, C*H*W].
// - KL(p | q) is the generalised Kullback-Leibler divergence sum p log(p/q) - p + q (0 log 0 = 0),
//   which is the usual KL for probability vectors and stays meaningful for unequal masses.
// - Entropic problems regularise with eps KL(P | a (x) b) (the product of the marginals as the
//   reference measure, as in Peyre & Cuturi's book and Feydy et al.); for balanced problems this
//   gives the same plan as POT's -sum P log P (the two differ by a constant on the feasible set).
// - Results are float64 CPU tensors. Bad input throws std::invalid_argument with a message that
//   says what is wrong and what to do.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>

namespace monge::host::ot {

/// Cost matrix C_ij = |x_i - y_j|^power (Euclidean norm) for x [n, d], y [m, d] (see the point
/// cloud conventions above). power must be positive; 2 (squared distances) and 1 are the usual.
at::Tensor cost_matrix(const at::Tensor& x, const at::Tensor& y, double power = 2.0);

struct ExactOptions {
  /// Relative tolerance on |sum a - sum b| / max(sum a, sum b); within it b is rescaled to the
  /// mass of a (as POT's emd does), beyond it the problem is refused.
  double mass_tolerance = 1e-7;
  /// The most simplex pivots before giving up with an error.
  int64_t max_pivots = 100'000'000;
};

struct ExactResult {
  at::Tensor plan;      ///< [n, m] optimal plan P >= 0, P 1 = a, P^T 1 = b
  double cost = 0;      ///< <P, C>
  at::Tensor u, v;      ///< [n], [m] optimal duals: u_i + v_j <= C_ij, equality where P_ij > 0
  int64_t pivots = 0;   ///< simplex pivots used
};

/// Exact optimal transport min <P, C> over plans with marginals a and b, by the network simplex on
/// the bipartite transport graph (Bonneel et al. 2011, after LEMON): artificial-root start, block
/// search pricing, strongly feasible trees (no cycling on degenerate problems). Zero weights are
/// allowed (their rows and columns of the plan are zero). The duals are shifted so that
/// a.u == b.v (each half the cost); duals of zero-weight points are the tightest feasible ones
/// (c-transforms), so u_i + v_j <= C_ij holds everywhere.
ExactResult exact(const at::Tensor& C, const at::Tensor& a = {}, const at::Tensor& b = {},
                  const ExactOptions& options = {});

struct SinkhornOptions {
  double eps = 0.05;       ///< entropic regularisation, in units of the cost; must be positive
  int64_t max_iter = 1000;  ///< iterations (one row and one column update each)
  double tol = 1e-9;        ///< stop when the L1 marginal error is below this
  int64_t check_every = 10; ///< iterations between two measurements of the marginal error
  double mass_tolerance = 1e-7;  ///< as in ExactOptions
};

struct SinkhornResult {
  at::Tensor plan;        ///< [n, m]
  double cost = 0;        ///< <P, C>
  double objective = 0;   ///< <P, C> + eps KL(P | a (x) b)
  at::Tensor f, g;        ///< [n], [m] dual potentials: P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)
  int64_t iterations = 0;
  double error = 0;       ///< |P 1 - a|_1 + |P^T 1 - b|_1 at the end
  bool converged = false; ///< error <= tol
};

/// Entropic OT min <P, C> + eps KL(P | a (x) b) over plans with marginals a and b, by Sinkhorn's
/// iterations on the log-domain potentials f, g (log-sum-exp updates): no kernel exp(-C/eps) is
/// ever formed, so small eps (1e-3 max C and below) neither overflows nor underflows to NaN. a and
/// b must have equal masses (as for exact()).
SinkhornResult sinkhorn(const at::Tensor& C, const at::Tensor& a = {}, const at::Tensor& b = {},
                        const SinkhornOptions& options = {});

struct UnbalancedOptions {
  double eps = 0.05;  ///< entropic regularisation, in units of the cost; must be positive
  /// Marginal penalties; +infinity makes that marginal a hard constraint.
  double rho_a = 1.0;
  double rho_b = 1.0;
  int64_t max_iter = 1000;
  /// Stop when the largest change of the potentials over one iteration, divided by eps (the
  /// relative change of the scalings exp(f / eps), exp(g / eps)), is below this.
  double tol = 1e-9;
  double mass_tolerance = 1e-7;  ///< used only when both marginals are hard
};

struct UnbalancedResult {
  at::Tensor plan;       ///< [n, m]
  double cost = 0;       ///< <P, C>
  /// <P, C> + eps KL(P | a (x) b) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b); a hard marginal's
  /// term is left out (it is zero at convergence).
  double objective = 0;
  at::Tensor marginal_a;  ///< [n] P 1
  at::Tensor marginal_b;  ///< [m] P^T 1
  double mass = 0;        ///< sum P
  at::Tensor f, g;        ///< P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)
  int64_t iterations = 0;
  double error = 0;       ///< the last iteration's change, as for tol
  bool converged = false;
};

/// Unbalanced entropic OT (Chizat, Peyre, Schmitzer & Vialard 2018) with the objective of
/// UnbalancedResult::objective, by log-domain scaling iterations: f_i = -(rho_a / (rho_a + eps))
/// eps log sum_j b_j exp((g_j - C_ij) / eps), and likewise for g, each followed by the best
/// translation (f + k, g - k) in closed form (Sejourne et al. 2022), without which large rho
/// converges at the rate 1 - 2 eps / rho. rho = infinity gives the balanced update for that side;
/// both infinite is sinkhorn() (masses must then be equal).
UnbalancedResult unbalanced_sinkhorn(const at::Tensor& C, const at::Tensor& a = {},
                                     const at::Tensor& b = {}, const UnbalancedOptions& options = {});

/// Squared energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between the weighted clouds x and y
/// (weights normalised to probabilities; undefined weights are uniform). Nonnegative, zero only
/// when the distributions are equal. Distances are summed in row blocks, so memory stays O(n + m).
double energy_distance(const at::Tensor& x, const at::Tensor& y, const at::Tensor& wx = {},
                       const at::Tensor& wy = {});

struct DivergenceOptions {
  double eps = 0.1;         ///< entropic regularisation, in units of the cost
  double power = 2.0;       ///< cost |x - y|^power
  int64_t max_iter = 2000;
  double tol = 1e-9;
};

/// Debiased Sinkhorn divergence OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2 (Feydy et al.
/// 2019), with OT_eps the entropic objective of sinkhorn() and weights normalised to
/// probabilities; the self terms use the symmetric update f <- (f + T(f)) / 2, which converges in
/// tens of iterations. Nonnegative, zero when the clouds are equal (to the iterations'
/// convergence), and -> exact OT as eps -> 0.
double sinkhorn_divergence(const at::Tensor& x, const at::Tensor& y, const at::Tensor& wx = {},
                           const at::Tensor& wy = {}, const DivergenceOptions& options = {});

}  // namespace monge::host::ot
