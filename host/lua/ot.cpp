// Lua bindings for the discrete OT references: monge.ot.* (host/ot/discrete_ot.hpp).

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/option_tables.hpp"
#include "host/lua/tensor.hpp"
#include "host/ot/discrete_ot.hpp"
#include "host/ot/options.hpp"

namespace monge::lua {

namespace {

namespace ot = monge::host::ot;

// A tensor argument; a flat table of numbers is read in float64 (to_tensor would give float32,
// and weights like 1/3 would lose their equal masses).
at::Tensor tensor_arg(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TTABLE && !test_tensor(L, index)) {
    const int n = static_cast<int>(lua_objlen(L, index));
    bool flat = n > 0;
    std::vector<double> values;
    for (int i = 1; i <= n && flat; ++i) {
      lua_rawgeti(L, index, i);
      if (lua_type(L, -1) == LUA_TNUMBER) values.push_back(lua_tonumber(L, -1));
      else flat = false;
      lua_pop(L, 1);
    }
    if (flat) return at::tensor(values, at::kDouble);
  }
  return to_tensor(L, index);
}

// Field `key` of the options table at `index` as a tensor; undefined when absent or nil.
at::Tensor weights_field(lua_State* L, int index, const char* key) {
  at::Tensor t;
  if (lua_isnoneornil(L, index)) return t;
  lua_getfield(L, index, key);
  if (!lua_isnil(L, -1)) t = tensor_arg(L, lua_gettop(L));
  lua_pop(L, 1);
  return t;
}

void set_number(lua_State* L, const char* key, double value) {
  lua_pushnumber(L, static_cast<lua_Number>(value));
  lua_setfield(L, -2, key);
}
void set_tensor(lua_State* L, const char* key, const at::Tensor& t) {
  push_tensor(L, t);
  lua_setfield(L, -2, key);
}
void set_bool(lua_State* L, const char* key, bool value) {
  lua_pushboolean(L, value ? 1 : 0);
  lua_setfield(L, -2, key);
}

// The fields a balanced and an unbalanced Sinkhorn result share, into the table on the stack.
template <class Result>
void set_sinkhorn_fields(lua_State* L, const Result& r) {
  set_tensor(L, "plan", r.plan);
  set_number(L, "cost", r.cost);
  set_number(L, "objective", r.objective);
  set_tensor(L, "f", r.f);
  set_tensor(L, "g", r.g);
  set_number(L, "iterations", static_cast<double>(r.iterations));
  set_number(L, "error", r.error);
  set_bool(L, "converged", r.converged);
}

// monge.ot.cost_matrix(x, y [, p]) -> [n, m] float64
int l_cost_matrix(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1), y = tensor_arg(L, 2);
  push_tensor(L, ot::cost_matrix(x, y, luaL_optnumber(L, 3, 2.0)));
  return 1;
}

// monge.ot.exact(C [, a, b]) -> { plan, cost, u, v, pivots }
int l_exact(lua_State* L) {
  const at::Tensor C = tensor_arg(L, 1);
  const at::Tensor a = lua_isnoneornil(L, 2) ? at::Tensor() : tensor_arg(L, 2);
  const at::Tensor b = lua_isnoneornil(L, 3) ? at::Tensor() : tensor_arg(L, 3);
  const ot::ExactResult r = ot::exact(C, a, b);
  lua_createtable(L, 0, 5);
  set_tensor(L, "plan", r.plan);
  set_number(L, "cost", r.cost);
  set_tensor(L, "u", r.u);
  set_tensor(L, "v", r.v);
  set_number(L, "pivots", static_cast<double>(r.pivots));
  return 1;
}

// monge.ot.sinkhorn(C [, { eps, a, b, max_iter, tol }]) -> { plan, cost, objective, f, g, iterations, error, converged }
int l_sinkhorn(lua_State* L) {
  const at::Tensor C = tensor_arg(L, 1);
  // Keys, types, ranges and defaults from the declaration (host/ot/options.cpp); the weights here.
  const ot::SinkhornOptions o = ot::sinkhorn_settings(table_options(L, 2, ot::sinkhorn_options(), "monge.ot.sinkhorn"));
  const ot::SinkhornResult r = ot::sinkhorn(C, weights_field(L, 2, "a"), weights_field(L, 2, "b"), o);
  lua_createtable(L, 0, 8);
  set_sinkhorn_fields(L, r);
  return 1;
}

// monge.ot.unbalanced(C [, { eps, rho | rho_a, rho_b, a, b, max_iter, tol }])
//   -> { plan, cost, objective, marginal_a, marginal_b, mass, f, g, iterations, error, converged }
int l_unbalanced(lua_State* L) {
  const at::Tensor C = tensor_arg(L, 1);
  const ot::UnbalancedOptions o =
      ot::unbalanced_settings(table_options(L, 2, ot::unbalanced_options(), "monge.ot.unbalanced"));
  const ot::UnbalancedResult r = ot::unbalanced_sinkhorn(C, weights_field(L, 2, "a"), weights_field(L, 2, "b"), o);
  lua_createtable(L, 0, 11);
  set_sinkhorn_fields(L, r);
  set_tensor(L, "marginal_a", r.marginal_a);
  set_tensor(L, "marginal_b", r.marginal_b);
  set_number(L, "mass", r.mass);
  return 1;
}

// monge.ot.energy_distance(x, y [, { a, b }]) -> number
int l_energy_distance(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1), y = tensor_arg(L, 2);
  table_options(L, 3, ot::energy_distance_options(), "monge.ot.energy_distance");
  lua_pushnumber(L, ot::energy_distance(x, y, weights_field(L, 3, "a"), weights_field(L, 3, "b")));
  return 1;
}

// monge.ot.sinkhorn_divergence(x, y [, { eps, p, a, b, max_iter, tol }]) -> number
int l_sinkhorn_divergence(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1), y = tensor_arg(L, 2);
  const ot::DivergenceOptions o =
      ot::divergence_settings(table_options(L, 3, ot::divergence_options(), "monge.ot.sinkhorn_divergence"));
  lua_pushnumber(L, ot::sinkhorn_divergence(x, y, weights_field(L, 3, "a"), weights_field(L, 3, "b"), o));
  return 1;
}

}  // namespace

void open_ot(lua_State* L) {
  get_or_create_table(L, -1, "ot");
  set_function<l_cost_matrix>(L, "cost_matrix");
  set_function<l_exact>(L, "exact");
  set_function<l_sinkhorn>(L, "sinkhorn");
  set_function<l_unbalanced>(L, "unbalanced");
  set_function<l_energy_distance>(L, "energy_distance");
  set_function<l_sinkhorn_divergence>(L, "sinkhorn_divergence");
  lua_pop(L, 1);
}

}  // namespace monge::lua
