#include "host/ot/options.hpp"

#include <limits>

namespace monge::host::ot {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A number that must be above 0: the library checks it and says so ("eps must be a positive
// number"); a closed range cannot say "above 0".
ParamSpec positive(std::string name, double def, std::string doc) {
  return {std::move(name), ParamType::Real, def, std::nullopt, std::nullopt, {}, Kind::Operator, false, std::move(doc)};
}

// Every option of `schema` without a flag (these are Lua functions).
OptionSet& add_lua(OptionSet& set, const Schema& schema, const std::vector<std::pair<std::string, std::string>>& default_texts = {}) {
  std::vector<std::pair<std::string, OptionCli>> cli;
  for (const auto& spec : schema.specs()) {
    std::string text;
    for (const auto& [name, t] : default_texts)
      if (name == spec.name) text = t;
    cli.emplace_back(spec.name, lua_only(text));
  }
  return set.add(schema, cli);
}

OptionSet& weights(OptionSet& set) {
  return set.opaque("a", "tensor or list of numbers", "uniform 1/n", "weights of the first points (the rows of `C`, or `x`), nonnegative")
      .opaque("b", "tensor or list of numbers", "uniform 1/m", "weights of the second points (the columns of `C`, or `y`), nonnegative");
}

// eps, max_iter and tol, with the defaults of one function's C++ options.
Schema iterations(double eps, int64_t max_iter, double tol, const std::string& tol_doc) {
  Schema s;
  s.add(positive("eps", eps, "entropic regularisation, in units of the cost; above 0"))
      .integer("max_iter", max_iter, 1, int64_t{1} << 40, "iterations at most")
      .real("tol", tol, 0, kInf, tol_doc);
  return s;
}

OptionSet make_sinkhorn() {
  const SinkhornOptions d;
  OptionSet set("monge.ot.sinkhorn");
  add_lua(set, iterations(d.eps, d.max_iter, d.tol, "stop when the L1 marginal error is at most this"));
  return weights(set);
}

OptionSet make_unbalanced() {
  const UnbalancedOptions d;
  OptionSet set("monge.ot.unbalanced");
  Schema eps;
  eps.add(*iterations(d.eps, d.max_iter, d.tol, "").find("eps"));
  add_lua(set, eps);
  Schema rho;  // rho_a and rho_b default to rho: -1 stands for "not given" (below their range)
  rho.real("rho", d.rho_a, 0, kInf, "the KL penalty of both marginals; math.huge makes them hard")
      .add({"rho_a", ParamType::Real, -1.0, 0.0, kInf, {}, Kind::Operator, false, "the penalty of the rows' marginal `P 1`"})
      .add({"rho_b", ParamType::Real, -1.0, 0.0, kInf, {}, Kind::Operator, false, "the penalty of the columns' marginal `P^T 1`"});
  add_lua(set, rho, {{"rho_a", "`rho`"}, {"rho_b", "`rho`"}});
  Schema it = iterations(d.eps, d.max_iter, d.tol,
                         "stop when the largest change of `f` or `g` over an iteration, divided by `eps`, is at most this");
  Schema rest;
  rest.add(*it.find("max_iter")).add(*it.find("tol"));
  add_lua(set, rest);
  return weights(set);
}

OptionSet make_energy_distance() {
  OptionSet set("monge.ot.energy_distance");
  return weights(set);
}

OptionSet make_divergence() {
  const DivergenceOptions d;
  OptionSet set("monge.ot.sinkhorn_divergence");
  Schema it = iterations(d.eps, d.max_iter, d.tol, "stop each Sinkhorn problem when its L1 marginal error is at most this");
  Schema s;
  s.add(*it.find("eps")).add(positive("p", d.power, "the cost `|x - y|^p`; above 0")).add(*it.find("max_iter")).add(*it.find("tol"));
  add_lua(set, s);
  return weights(set);
}

}  // namespace

const OptionSet& sinkhorn_options() {
  static const OptionSet set = make_sinkhorn();
  return set;
}
const OptionSet& unbalanced_options() {
  static const OptionSet set = make_unbalanced();
  return set;
}
const OptionSet& energy_distance_options() {
  static const OptionSet set = make_energy_distance();
  return set;
}
const OptionSet& divergence_options() {
  static const OptionSet set = make_divergence();
  return set;
}

namespace {

// eps, max_iter and tol, which every Sinkhorn variant's options hold.
template <class Options>
Options iteration_settings(const Params& p) {
  Options o;
  o.eps = p.real("eps");
  o.max_iter = p.integer("max_iter");
  o.tol = p.real("tol");
  return o;
}

}  // namespace

SinkhornOptions sinkhorn_settings(const Params& p) { return iteration_settings<SinkhornOptions>(p); }

UnbalancedOptions unbalanced_settings(const Params& p) {
  auto o = iteration_settings<UnbalancedOptions>(p);
  const double rho = p.real("rho");
  o.rho_a = p.real("rho_a") < 0 ? rho : p.real("rho_a");
  o.rho_b = p.real("rho_b") < 0 ? rho : p.real("rho_b");
  return o;
}

DivergenceOptions divergence_settings(const Params& p) {
  auto o = iteration_settings<DivergenceOptions>(p);
  o.power = p.real("p");
  return o;
}

}  // namespace monge::host::ot
