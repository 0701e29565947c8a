// Discrete OT references: network simplex, log-domain Sinkhorn (balanced and unbalanced), energy
// distance and Sinkhorn divergence. See discrete_ot.hpp for the conventions.

#include "host/ot/discrete_ot.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>
#include "monge/shape.hpp"

namespace monge::host::ot {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::invalid_argument("monge.ot." + where + ": " + what);
}

at::Tensor to_cpu_double(const at::Tensor& t) {
  return t.detach().to(at::kCPU, at::kDouble).contiguous();
}

// A point cloud as [n, d] float64.
at::Tensor points(const at::Tensor& x, const std::string& where, const char* name) {
  if (!x.defined()) fail(where, std::string(name) + " is missing: give the points as an [n, d] tensor");
  if (x.dim() == 0) fail(where, std::string(name) + " must hold points ([n, d], [n] or [n, C, H, W]), got a number");
  at::Tensor p = to_cpu_double(x);
  if (p.dim() == 1) return p.unsqueeze(1);
  if (p.dim() > 2) return p.reshape({p.size(0), -1});
  return p;
}

at::Tensor check_cost(const at::Tensor& C, const std::string& where) {
  if (!C.defined() || C.dim() != 2)
    fail(where, "the cost matrix must be 2-D [n, m], got " + (C.defined() ? shape_text(C) : std::string("nothing")) +
                    " (build one from points with monge.ot.cost_matrix(x, y))");
  if (C.size(0) < 1 || C.size(1) < 1) fail(where, "the cost matrix " + shape_text(C) + " is empty");
  at::Tensor c = to_cpu_double(C);
  if (!at::isfinite(c).all().item<bool>())
    fail(where, "the cost matrix holds NaN or infinite entries; costs must be finite");
  return c;
}

// A histogram of length n: uniform 1/n when undefined; checked nonnegative and finite.
at::Tensor weights(const at::Tensor& w, int64_t n, const std::string& where, const char* name) {
  if (!w.defined()) return at::full({n}, 1.0 / static_cast<double>(n), at::kDouble);
  at::Tensor h = to_cpu_double(w).reshape({-1});
  if (h.numel() != n) {
    const bool cloud = where == "energy_distance" || where == "sinkhorn_divergence";
    const bool first = std::string(name) == "a";
    fail(where, std::string(name) + " has " + std::to_string(h.numel()) + " entries for " + std::to_string(n) +
                    (cloud ? (first ? " points of x" : " points of y")
                           : (first ? " rows of the cost matrix" : " columns of the cost matrix")));
  }
  if (!at::isfinite(h).all().item<bool>()) fail(where, std::string(name) + " holds NaN or infinite weights");
  if ((h < 0).any().item<bool>())
    fail(where, std::string(name) + " has negative weights (min " + std::to_string(h.min().item<double>()) +
                    "); weights must be nonnegative");
  if (h.sum().item<double>() <= 0) fail(where, std::string(name) + " has no mass: at least one weight must be positive");
  return h;
}

// b rescaled to the mass of a after checking that the masses agree within `tolerance`.
at::Tensor balance(const at::Tensor& a, const at::Tensor& b, double tolerance, const std::string& where) {
  const double sa = a.sum().item<double>(), sb = b.sum().item<double>();
  if (std::abs(sa - sb) > tolerance * std::max(sa, sb)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "a and b must have equal masses, got sum a = %.10g and sum b = %.10g", sa, sb);
    fail(where, std::string(buf) + "; normalise them, or use monge.ot.unbalanced for unequal masses");
  }
  return b * (sa / sb);
}

// ---------------------------------------------------------------------------------------------
// Network simplex on the complete bipartite graph rows -> columns, plus an artificial root joined
// to every node. Nodes: rows 0..n-1, columns n..n+m-1, root n+m. Arcs: e = i*m + j (row i to
// column j, cost C_ij) and n*m + v (node v and the root, cost kArt, pointing from the root to
// demand nodes and to the root from the others). All capacities are infinite, so an arc is either
// in the spanning tree or at its lower bound 0. Reduced cost: c_e + pi[source] - pi[target].
class NetworkSimplex {
 public:
  NetworkSimplex(const double* C, int64_t n, int64_t m, const std::vector<double>& supply)
      : C_(C), n_(n), m_(m), N_(n + m), root_(n + m), nm_(n * m), arcs_(n * m + n + m) {
    double cmax = 0;
    for (int64_t e = 0; e < nm_; ++e) cmax = std::max(cmax, C_[e]);
    // Any path through the root costs more than any real path (costs are shifted to >= 0).
    art_ = (static_cast<double>(N_) + 1) * (cmax + 1);
    tol_ = 64 * std::numeric_limits<double>::epsilon() * art_;
    flow_.assign(arcs_, 0.0);
    in_tree_.assign(arcs_, 0);
    art_up_.assign(N_, 0);
    parent_.assign(N_ + 1, -1);
    pred_.assign(N_ + 1, -1);
    depth_.assign(N_ + 1, 0);
    up_.assign(N_ + 1, 0);
    pi_.assign(N_ + 1, 0.0);
    children_.assign(N_ + 1, {});
    child_pos_.assign(N_ + 1, 0);
    children_[root_].reserve(N_);
    for (int64_t v = 0; v < N_; ++v) {
      const int64_t e = nm_ + v;
      art_up_[v] = supply[v] >= 0;  // zero-flow arcs point to the root: the start is strongly feasible
      flow_[e] = std::abs(supply[v]);
      in_tree_[e] = 1;
      parent_[v] = root_;
      pred_[v] = e;
      up_[v] = art_up_[v];
      depth_[v] = 1;
      pi_[v] = art_up_[v] ? -art_ : art_;
      attach(v);
    }
    block_ = std::max<int64_t>(10, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(arcs_)))));
  }

  // Pivots until no arc has a negative reduced cost; returns the number of pivots.
  int64_t run(int64_t max_pivots) {
    int64_t pivots = 0;
    int64_t in_arc;
    while (find_entering(in_arc)) {
      if (pivots >= max_pivots)
        throw std::runtime_error("monge.ot.exact: no optimum after " + std::to_string(max_pivots) +
                                 " pivots; raise max_pivots");
      pivot(in_arc);
      ++pivots;
      // Potentials drift by rounding as subtrees are shifted; rebuild them from the tree now and then.
      if (pivots % N_ == 0) recompute_potentials();
    }
    recompute_potentials();
    return pivots;
  }

  double flow(int64_t e) const { return flow_[e]; }
  double potential(int64_t v) const { return pi_[v]; }
  double artificial_flow() const {
    double s = 0;
    for (int64_t v = 0; v < N_; ++v) s += flow_[nm_ + v];
    return s;
  }

 private:
  int64_t source(int64_t e) const {
    if (e < nm_) return e / m_;
    const int64_t v = e - nm_;
    return art_up_[v] ? v : root_;
  }
  int64_t target(int64_t e) const {
    if (e < nm_) return n_ + e % m_;
    const int64_t v = e - nm_;
    return art_up_[v] ? root_ : v;
  }
  double cost(int64_t e) const { return e < nm_ ? C_[e] : art_; }

  void attach(int64_t v) {
    auto& ch = children_[parent_[v]];
    child_pos_[v] = static_cast<int64_t>(ch.size());
    ch.push_back(v);
  }
  void detach(int64_t v) {
    auto& ch = children_[parent_[v]];
    const int64_t last = ch.back();
    ch[child_pos_[v]] = last;
    child_pos_[last] = child_pos_[v];
    ch.pop_back();
  }

  // Block search pricing (LEMON's default): scan blocks of about sqrt(arcs) arcs from where the
  // last search stopped and take the most negative reduced cost of the first block that has one.
  bool find_entering(int64_t& in_arc) {
    double best = 0;
    int64_t best_arc = -1;
    int64_t e = next_arc_;
    int64_t i = e < nm_ ? e / m_ : n_, j = e < nm_ ? e % m_ : 0;
    int64_t count = block_;
    for (int64_t k = 0; k < arcs_; ++k) {
      if (!in_tree_[e]) {
        double rc;
        if (e < nm_) {
          rc = C_[e] + pi_[i] - pi_[n_ + j];
        } else {
          const int64_t v = e - nm_;
          rc = art_up_[v] ? art_ + pi_[v] - pi_[root_] : art_ + pi_[root_] - pi_[v];
        }
        if (rc < best) {
          best = rc;
          best_arc = e;
        }
      }
      if (++e == arcs_) {
        e = 0;
        i = 0;
        j = 0;
      } else if (e < nm_ && ++j == m_) {
        j = 0;
        ++i;
      }
      if (--count == 0) {
        if (best < -tol_) break;
        count = block_;
      }
    }
    next_arc_ = e;
    if (best_arc < 0 || best >= -tol_) return false;
    in_arc = best_arc;
    return true;
  }

  // The lowest common ancestor of s and t in the spanning tree.
  int64_t join_of(int64_t s, int64_t t) const {
    int64_t a = s, b = t;
    while (a != b) {
      if (depth_[a] > depth_[b]) {
        a = parent_[a];
      } else if (depth_[b] > depth_[a]) {
        b = parent_[b];
      } else {
        a = parent_[a];
        b = parent_[b];
      }
    }
    return a;
  }

  // The tree arc that leaves the basis when in_arc (s -> t) enters: pred_[u_out]; side 1 when u_out
  // is on s's path to the join, 2 on t's. delta: the flow the cycle carries.
  struct Leaving {
    double delta;
    int64_t u_out;
    int side;
  };

  // Flow goes s -> t on the entering arc, up from t to the join and down from the join to s.
  // Blocking arcs are those crossed backwards; ties: the last one met in the cycle's direction
  // starting at the join (strict on the s side, non-strict on the t side) keeps the tree
  // strongly feasible.
  Leaving leaving_arc(int64_t s, int64_t t, int64_t join) const {
    Leaving out{kInf, -1, 0};
    for (int64_t u = s; u != join; u = parent_[u])
      if (up_[u] && flow_[pred_[u]] < out.delta) out = {flow_[pred_[u]], u, 1};
    for (int64_t u = t; u != join; u = parent_[u])
      if (!up_[u] && flow_[pred_[u]] <= out.delta) out = {flow_[pred_[u]], u, 2};
    if (out.side == 0) throw std::runtime_error("monge.ot.exact: unbounded problem (internal error)");
    return out;
  }

  // The subtree under u_out is cut off and hung from the entering arc (u_in's link to v_in):
  // re-rooted at u_in by reversing the parent links on the path u_in .. u_out.
  void rehang(int64_t in_arc, int64_t s, int64_t u_in, int64_t v_in, int64_t u_out) {
    path_.clear();
    for (int64_t u = u_in;; u = parent_[u]) {
      path_.push_back(u);
      if (u == u_out) break;
    }
    old_pred_.clear();
    old_up_.clear();
    for (int64_t u : path_) {
      old_pred_.push_back(pred_[u]);
      old_up_.push_back(up_[u]);
      detach(u);
    }
    parent_[u_in] = v_in;
    pred_[u_in] = in_arc;
    up_[u_in] = u_in == s;
    for (size_t k = 1; k < path_.size(); ++k) {
      parent_[path_[k]] = path_[k - 1];
      pred_[path_[k]] = old_pred_[k - 1];
      up_[path_[k]] = !old_up_[k - 1];
    }
    for (int64_t u : path_) attach(u);
  }

  // Every node of the moved subtree (rooted at u_in, now under v_in) shifts its potential by the
  // same amount sigma, which makes the entering arc's reduced cost zero; depths follow.
  void shift_subtree(int64_t u_in, int64_t v_in, double sigma) {
    stack_.clear();
    stack_.push_back(u_in);
    depth_[u_in] = depth_[v_in] + 1;
    while (!stack_.empty()) {
      const int64_t u = stack_.back();
      stack_.pop_back();
      pi_[u] += sigma;
      for (int64_t c : children_[u]) {
        depth_[c] = depth_[u] + 1;
        stack_.push_back(c);
      }
    }
  }

  void pivot(int64_t in_arc) {
    const int64_t s = source(in_arc), t = target(in_arc);
    const double rc_in = cost(in_arc) + pi_[s] - pi_[t];
    const int64_t join = join_of(s, t);
    const Leaving out = leaving_arc(s, t, join);
    const double delta = out.delta;
    if (delta > 0) {
      flow_[in_arc] += delta;
      for (int64_t u = s; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? -delta : delta;
      for (int64_t u = t; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? delta : -delta;
    }
    flow_[pred_[out.u_out]] = 0;
    in_tree_[pred_[out.u_out]] = 0;
    in_tree_[in_arc] = 1;
    const int64_t u_in = out.side == 1 ? s : t, v_in = out.side == 1 ? t : s;
    rehang(in_arc, s, u_in, v_in, out.u_out);
    shift_subtree(u_in, v_in, u_in == s ? -rc_in : rc_in);
  }

  void recompute_potentials() {
    stack_.clear();
    pi_[root_] = 0;
    stack_.push_back(root_);
    while (!stack_.empty()) {
      const int64_t u = stack_.back();
      stack_.pop_back();
      for (int64_t c : children_[u]) {
        const double ce = cost(pred_[c]);
        pi_[c] = up_[c] ? pi_[u] - ce : pi_[u] + ce;
        stack_.push_back(c);
      }
    }
  }

  const double* C_;
  int64_t n_, m_, N_, root_, nm_, arcs_;
  double art_ = 0, tol_ = 0;
  int64_t block_ = 10, next_arc_ = 0;
  std::vector<double> flow_, pi_;
  std::vector<uint8_t> in_tree_, art_up_, up_;
  std::vector<int64_t> parent_, pred_, depth_, child_pos_;
  std::vector<std::vector<int64_t>> children_;
  std::vector<int64_t> path_, old_pred_, stack_;
  std::vector<uint8_t> old_up_;
};

}  // namespace

at::Tensor cost_matrix(const at::Tensor& x, const at::Tensor& y, double power) {
  const at::Tensor px = points(x, "cost_matrix", "x"), py = points(y, "cost_matrix", "y");
  if (px.size(1) != py.size(1))
    fail("cost_matrix", "x and y must have the same number of features, got x " + shape_text(x) + " and y " +
                            shape_text(y));
  if (!(power > 0) || !std::isfinite(power)) fail("cost_matrix", "the power must be positive (2: squared distances, 1: distances)");
  if (power == 2.0) {
    if (px.size(1) <= 64) {
      // Exact differences for low-dimensional points (the toys): no cancellation.
      // Row blocks of about 4M differences, whatever the sizes.
      const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, py.size(0) * px.size(1)));
      at::Tensor out = at::empty({px.size(0), py.size(0)}, at::kDouble);
      for (int64_t r = 0; r < px.size(0); r += rows) {
        const int64_t len = std::min(rows, px.size(0) - r);
        out.narrow(0, r, len).copy_((px.narrow(0, r, len).unsqueeze(1) - py.unsqueeze(0)).square().sum(2));
      }
      return out;
    }
    const at::Tensor sq = px.square().sum(1, true) + py.square().sum(1).unsqueeze(0) - 2 * px.matmul(py.t());
    return sq.clamp_min(0);
  }
  // compute_mode 2: never through matrix products, which lose precision for close points.
  const at::Tensor d = at::cdist(px, py, 2.0, px.size(1) <= 64 ? 2 : 0);
  return power == 1.0 ? d : d.pow(power);
}

ExactResult exact(const at::Tensor& C_in, const at::Tensor& a_in, const at::Tensor& b_in, const ExactOptions& options) {
  const at::Tensor C = check_cost(C_in, "exact");
  const int64_t n = C.size(0), m = C.size(1);
  const at::Tensor a = weights(a_in, n, "exact", "a");
  const at::Tensor b = balance(a, weights(b_in, m, "exact", "b"), options.mass_tolerance, "exact");

  // Zero-weight rows and columns carry nothing: solve on the support only.
  const at::Tensor rows = at::nonzero(a > 0).reshape({-1}), cols = at::nonzero(b > 0).reshape({-1});
  const at::Tensor sub = C.index_select(0, rows).index_select(1, cols).contiguous();
  const double cmin = sub.min().item<double>();
  const at::Tensor shifted = (sub - cmin).contiguous();  // nonnegative costs, same optimal plans
  const int64_t ns = rows.size(0), ms = cols.size(0);
  std::vector<double> supply(static_cast<size_t>(ns + ms));
  const at::Tensor as = a.index_select(0, rows), bs = b.index_select(0, cols);
  for (int64_t i = 0; i < ns; ++i) supply[i] = as[i].item<double>();
  for (int64_t j = 0; j < ms; ++j) supply[ns + j] = -bs[j].item<double>();

  NetworkSimplex simplex(shifted.data_ptr<double>(), ns, ms, supply);
  ExactResult r;
  r.pivots = simplex.run(options.max_pivots);
  const double mass = a.sum().item<double>();
  if (simplex.artificial_flow() > 1e-9 * mass)
    throw std::runtime_error("monge.ot.exact: no feasible plan found (internal error: flow left on artificial arcs)");

  at::Tensor plan_s = at::empty({ns, ms}, at::kDouble);
  double* p = plan_s.data_ptr<double>();
  for (int64_t e = 0; e < ns * ms; ++e) p[e] = simplex.flow(e);
  at::Tensor us = at::empty({ns}, at::kDouble), vs = at::empty({ms}, at::kDouble);
  for (int64_t i = 0; i < ns; ++i) us[i] = cmin - simplex.potential(i);
  for (int64_t j = 0; j < ms; ++j) vs[j] = simplex.potential(ns + j);

  r.plan = at::zeros({n, m}, at::kDouble);
  r.plan.index_put_({rows.unsqueeze(1), cols.unsqueeze(0)}, plan_s);
  r.cost = (r.plan * C).sum().item<double>();
  // Balance the free constant of the duals: a.u == b.v.
  const double shift = 0.5 * ((as * us).sum().item<double>() - (bs * vs).sum().item<double>()) / mass;
  us -= shift;
  vs += shift;
  // Zero-weight points: the tightest feasible duals (c-transforms), rows against the support
  // columns first, then every column against every row.
  r.u = at::full({n}, kInf, at::kDouble);
  r.v = at::full({m}, kInf, at::kDouble);
  r.u.index_put_({rows}, us);
  r.v.index_put_({cols}, vs);
  if (ns < n) {
    const at::Tensor zero_rows = at::nonzero(a <= 0).reshape({-1});
    const at::Tensor t = (C.index_select(0, zero_rows).index_select(1, cols) - vs.unsqueeze(0)).amin(1);
    r.u.index_put_({zero_rows}, t);
  }
  if (ms < m) {
    const at::Tensor zero_cols = at::nonzero(b <= 0).reshape({-1});
    const at::Tensor t = (C.index_select(1, zero_cols) - r.u.unsqueeze(1)).amin(0);
    r.v.index_put_({zero_cols}, t);
  }
  return r;
}

namespace {

void check_eps(double eps, const std::string& where) {
  if (!(eps > 0) || !std::isfinite(eps))
    fail(where, "eps must be a positive number (the entropic regularisation, in units of the cost), got " +
                    std::to_string(eps));
}

// One side's log-domain update: -lambda * logsumexp over the other side, in units of eps.
// Ce = C / eps; returns F with f = eps F.
at::Tensor row_update(const at::Tensor& Ce, const at::Tensor& log_b, const at::Tensor& G, double lambda) {
  return -lambda * at::logsumexp((log_b + G).unsqueeze(0) - Ce, 1);
}
at::Tensor col_update(const at::Tensor& Ce, const at::Tensor& log_a, const at::Tensor& F, double lambda) {
  return -lambda * at::logsumexp((log_a + F).unsqueeze(1) - Ce, 0);
}

// sum P_ij (F_i + G_j - Ce_ij) - sum P + sum a sum b: KL(P | a (x) b) with log P taken exactly.
double entropy_term(const at::Tensor& P, const at::Tensor& F, const at::Tensor& G, const at::Tensor& Ce,
                    const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor logratio = F.unsqueeze(1) + G.unsqueeze(0) - Ce;
  return (P * logratio).sum().item<double>() - P.sum().item<double>() +
         a.sum().item<double>() * b.sum().item<double>();
}

// KL(p | q) with log p given (p = exp(log_p), 0 log 0 = 0).
double kl(const at::Tensor& p, const at::Tensor& log_p, const at::Tensor& q) {
  const at::Tensor terms = at::where(p > 0, p * (log_p - at::log(q)), at::zeros_like(p));
  return (terms - p + q).sum().item<double>();
}

}  // namespace

SinkhornResult sinkhorn(const at::Tensor& C_in, const at::Tensor& a_in, const at::Tensor& b_in,
                        const SinkhornOptions& o) {
  const at::Tensor C = check_cost(C_in, "sinkhorn");
  check_eps(o.eps, "sinkhorn");
  if (o.max_iter < 1) fail("sinkhorn", "max_iter must be at least 1");
  const int64_t n = C.size(0), m = C.size(1);
  const at::Tensor a = weights(a_in, n, "sinkhorn", "a");
  const at::Tensor b = balance(a, weights(b_in, m, "sinkhorn", "b"), o.mass_tolerance, "sinkhorn");
  const at::Tensor Ce = C / o.eps, log_a = a.log(), log_b = b.log();
  at::Tensor F = at::zeros({n}, at::kDouble), G = at::zeros({m}, at::kDouble);
  SinkhornResult r;
  at::Tensor P;
  const int64_t every = std::max<int64_t>(1, o.check_every);
  for (int64_t it = 1; it <= o.max_iter; ++it) {
    F = row_update(Ce, log_b, G, 1.0);
    G = col_update(Ce, log_a, F, 1.0);
    r.iterations = it;
    if (it % every == 0 || it == o.max_iter) {
      P = at::exp(log_a.unsqueeze(1) + F.unsqueeze(1) + log_b.unsqueeze(0) + G.unsqueeze(0) - Ce);
      r.error = (P.sum(1) - a).abs().sum().item<double>() + (P.sum(0) - b).abs().sum().item<double>();
      if (r.error <= o.tol) {
        r.converged = true;
        break;
      }
    }
  }
  r.plan = P;
  r.cost = (P * C).sum().item<double>();
  r.objective = r.cost + o.eps * entropy_term(P, F, G, Ce, a, b);
  r.f = F * o.eps;
  r.g = G * o.eps;
  return r;
}

UnbalancedResult unbalanced_sinkhorn(const at::Tensor& C_in, const at::Tensor& a_in, const at::Tensor& b_in,
                                     const UnbalancedOptions& o) {
  const std::string where = "unbalanced";
  const at::Tensor C = check_cost(C_in, where);
  check_eps(o.eps, where);
  for (double rho : {o.rho_a, o.rho_b})
    if (!(rho > 0))
      fail(where, "rho (the marginal penalty) must be positive, or infinity for a hard marginal, got " +
                      std::to_string(rho));
  if (o.max_iter < 1) fail(where, "max_iter must be at least 1");
  const int64_t n = C.size(0), m = C.size(1);
  const at::Tensor a = weights(a_in, n, where, "a");
  at::Tensor b = weights(b_in, m, where, "b");
  if (std::isinf(o.rho_a) && std::isinf(o.rho_b)) b = balance(a, b, o.mass_tolerance, where);
  const double la = std::isinf(o.rho_a) ? 1.0 : o.rho_a / (o.rho_a + o.eps);
  const double lb = std::isinf(o.rho_b) ? 1.0 : o.rho_b / (o.rho_b + o.eps);
  const at::Tensor Ce = C / o.eps, log_a = a.log(), log_b = b.log();
  at::Tensor F = at::zeros({n}, at::kDouble), G = at::zeros({m}, at::kDouble);
  const bool translate = !std::isinf(o.rho_a) && !std::isinf(o.rho_b);
  UnbalancedResult r;
  for (int64_t it = 1; it <= o.max_iter; ++it) {
    at::Tensor F_new = row_update(Ce, log_b, G, la);
    at::Tensor G_new = col_update(Ce, log_a, F_new, lb);
    if (translate) {
      // (f + k, g - k) leaves the plan alone and the scaling updates shrink k only by the factor
      // la * lb per iteration (1 - 2 eps / rho): best k in closed form (Sejourne et al. 2022).
      const double log_A = at::logsumexp(log_a - F_new * (o.eps / o.rho_a), 0).item<double>();
      const double log_B = at::logsumexp(log_b - G_new * (o.eps / o.rho_b), 0).item<double>();
      const double k = (log_A - log_B) * (o.rho_a * o.rho_b / (o.rho_a + o.rho_b)) / o.eps;
      F_new += k;
      G_new -= k;
    }
    // Changes of potentials that stay -inf-free: weights may be zero but potentials are finite.
    r.error = std::max((F_new - F).abs().max().item<double>(), (G_new - G).abs().max().item<double>());
    F = F_new;
    G = G_new;
    r.iterations = it;
    if (r.error <= o.tol) {
      r.converged = true;
      break;
    }
  }
  const at::Tensor logP = log_a.unsqueeze(1) + F.unsqueeze(1) + log_b.unsqueeze(0) + G.unsqueeze(0) - Ce;
  r.plan = at::exp(logP);
  r.marginal_a = r.plan.sum(1);
  r.marginal_b = r.plan.sum(0);
  r.mass = r.plan.sum().item<double>();
  r.cost = (r.plan * C).sum().item<double>();
  r.objective = r.cost + o.eps * entropy_term(r.plan, F, G, Ce, a, b);
  if (!std::isinf(o.rho_a)) r.objective += o.rho_a * kl(r.marginal_a, at::logsumexp(logP, 1), a);
  if (!std::isinf(o.rho_b)) r.objective += o.rho_b * kl(r.marginal_b, at::logsumexp(logP, 0), b);
  r.f = F * o.eps;
  r.g = G * o.eps;
  return r;
}

namespace {

// sum_ij wx_i wy_j |x_i - y_j|, in row blocks.
double mean_distance(const at::Tensor& x, const at::Tensor& wx, const at::Tensor& y, const at::Tensor& wy) {
  double total = 0;
  const int64_t rows = std::max<int64_t>(1, (1 << 22) / std::max<int64_t>(1, y.size(0)));
  for (int64_t r = 0; r < x.size(0); r += rows) {
    const int64_t len = std::min(rows, x.size(0) - r);
    const at::Tensor d = at::cdist(x.narrow(0, r, len), y, 2.0, x.size(1) <= 64 ? 2 : 0);
    total += (wx.narrow(0, r, len).unsqueeze(1) * d * wy.unsqueeze(0)).sum().item<double>();
  }
  return total;
}

// OT_eps(a, a) by the symmetric update F <- (F + T(F)) / 2 (Feydy et al. 2019), which converges in
// a few dozen iterations where alternating updates oscillate; the fixed point is sinkhorn()'s.
double self_objective(const at::Tensor& C, const at::Tensor& a, double eps, int64_t max_iter, double tol) {
  const at::Tensor Ce = C / eps, log_a = a.log();
  at::Tensor F = at::zeros({a.size(0)}, at::kDouble), P;
  for (int64_t it = 1; it <= max_iter; ++it) {
    F = 0.5 * (F + row_update(Ce, log_a, F, 1.0));
    if (it % 10 == 0 || it == max_iter) {
      P = at::exp(log_a.unsqueeze(1) + F.unsqueeze(1) + log_a.unsqueeze(0) + F.unsqueeze(0) - Ce);
      if ((P.sum(1) - a).abs().sum().item<double>() <= tol) break;
    }
  }
  return (P * C).sum().item<double>() + eps * entropy_term(P, F, F, Ce, a, a);
}

at::Tensor probabilities(const at::Tensor& w, int64_t n, const std::string& where, const char* name) {
  const at::Tensor h = weights(w, n, where, name);
  return h / h.sum();
}

}  // namespace

double energy_distance(const at::Tensor& x_in, const at::Tensor& y_in, const at::Tensor& wx_in, const at::Tensor& wy_in) {
  const at::Tensor x = points(x_in, "energy_distance", "x"), y = points(y_in, "energy_distance", "y");
  if (x.size(1) != y.size(1))
    fail("energy_distance", "x and y must have the same number of features, got x " + shape_text(x_in) +
                                " and y " + shape_text(y_in));
  const at::Tensor wx = probabilities(wx_in, x.size(0), "energy_distance", "a");
  const at::Tensor wy = probabilities(wy_in, y.size(0), "energy_distance", "b");
  return 2 * mean_distance(x, wx, y, wy) - mean_distance(x, wx, x, wx) - mean_distance(y, wy, y, wy);
}

double sinkhorn_divergence(const at::Tensor& x_in, const at::Tensor& y_in, const at::Tensor& wx_in,
                           const at::Tensor& wy_in, const DivergenceOptions& o) {
  const std::string where = "sinkhorn_divergence";
  const at::Tensor x = points(x_in, where, "x"), y = points(y_in, where, "y");
  if (x.size(1) != y.size(1))
    fail(where, "x and y must have the same number of features, got x " + shape_text(x_in) + " and y " +
                    shape_text(y_in));
  check_eps(o.eps, where);
  const at::Tensor wx = probabilities(wx_in, x.size(0), where, "a");
  const at::Tensor wy = probabilities(wy_in, y.size(0), where, "b");
  SinkhornOptions so;
  so.eps = o.eps;
  so.max_iter = o.max_iter;
  so.tol = o.tol;
  const double cross = sinkhorn(cost_matrix(x, y, o.power), wx, wy, so).objective;
  const double self_x = self_objective(cost_matrix(x, x, o.power), wx, o.eps, o.max_iter, o.tol);
  const double self_y = self_objective(cost_matrix(y, y, o.power), wy, o.eps, o.max_iter, o.tol);
  return cross - 0.5 * (self_x + self_y);
}

}  // namespace monge::host::ot
