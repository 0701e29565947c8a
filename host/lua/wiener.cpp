// Lua bindings of the unpaired Wiener filter (host/restore/wiener.hpp):
//   monge.wiener{ operator = A, clean = X, noise = N | noise_variance = v, tolerance = 1e-4, max_radius = 48 }
//       -> an operator with A's forward and the finite Wiener filter as its lift (see docs/lua.md)
//   monge.fitted_lift{ operator = A, clean = X, noise = N, size = 15, ridge = 1e-4, pixels = 100000, seed = 0 }
//       -> an operator with A's forward and, as its lift, the least-squares FIR filter on A's own lift,
//          fitted on pairs simulated from X (for operators that are not linear shift invariant)
//   monge.wiener_restore(Q, y [, { padding = "reflect" | "circular", pad = -1 }])
//       -> the whole-image FFT restoration (the classical baseline), not clamped
//   monge.wiener_info(Q) -> { radius, scale, noise_variance, gain, lag, mean, autocov, response, filter }
//   monge.power_spectrum(images [, { patch = 64, max_patches = 20000 }]) -> [C, 2P, 2P] averaged periodogram
#include <cmath>
#include <optional>

#include <ATen/ATen.h>

#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/tensor.hpp"
#include "host/restore/wiener.hpp"
#include "monge/noise.hpp"

namespace monge::lua {

namespace {

using host::wiener::WienerLift;

std::shared_ptr<WienerLift> check_lift(lua_State* L, int index, const char* function) {
  auto lift = std::dynamic_pointer_cast<WienerLift>(test_plugin(L, index));
  if (!lift)
    throw std::runtime_error(std::string(function) + ": expected an operator made by monge.wiener{...}, got " +
                             luaL_typename(L, index));
  return lift;
}

// The plain operator and the clean set of monge.wiener{} / monge.fitted_lift{} (the table at 1).
struct LiftInputs {
  std::optional<PluginRef> op;
  std::shared_ptr<ForwardOperator> inner;
  at::Tensor* clean = nullptr;
};

LiftInputs lift_inputs(lua_State* L, const char* function) {
  LiftInputs in;
  lua_getfield(L, 1, "operator");
  in.op = test_plugin_ref(L, -1);
  lua_pop(L, 1);
  in.inner = in.op ? std::dynamic_pointer_cast<ForwardOperator>(in.op->object) : nullptr;
  if (!in.inner)
    throw std::runtime_error(std::string(function) + ": 'operator' must be an operator (e.g. monge.operator(\"gaussian_blur\"))");
  if (std::dynamic_pointer_cast<WienerLift>(in.inner))
    throw std::runtime_error(std::string(function) + ": 'operator' already has a lift of monge's; give the plain operator");
  lua_getfield(L, 1, "clean");
  in.clean = test_tensor(L, -1);
  lua_pop(L, 1);
  if (!in.clean) throw std::runtime_error(std::string(function) + ": 'clean' must be a tensor of clean images (N x C x H x W)");
  return in;
}

int l_wiener(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.wiener", {"operator", "clean", "noise", "noise_variance", "tolerance", "max_radius"});
  const auto [op, inner, clean] = lift_inputs(L, "monge.wiener");
  lua_getfield(L, 1, "noise");
  auto noise = std::dynamic_pointer_cast<NoiseModel>(test_plugin(L, -1));
  const bool noise_given = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (noise_given && !noise) throw std::runtime_error("monge.wiener: 'noise' must be a noise model (e.g. monge.noise(\"gaussian\"))");
  lua_getfield(L, 1, "noise_variance");
  const bool variance_given = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (noise_given == variance_given)
    throw std::runtime_error("monge.wiener: give either 'noise' (a noise model) or 'noise_variance' (a number), not both or neither");
  const double variance = noise ? noise->variance() : opt_number_field(L, 1, "noise_variance", 0);
  const double tolerance = opt_number_field(L, 1, "tolerance", 1e-4);
  if (!(tolerance > 0 && tolerance < 1)) throw std::runtime_error("monge.wiener: 'tolerance' must be in (0, 1)");
  const double max_radius = opt_number_field(L, 1, "max_radius", 48);
  if (!(max_radius >= 1 && max_radius <= 256)) throw std::runtime_error("monge.wiener: 'max_radius' must be 1 to 256 pixels");
  auto lift = host::wiener::make_lift(*inner, *clean, variance, tolerance, static_cast<int64_t>(max_radius));
  // Pushed under the inner operator's name and parameters: what a map file records of it.
  push_plugin(L, std::make_shared<WienerLift>(inner, lift), op->name, op->params);
  return 1;
}

int l_fitted_lift(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.fitted_lift", {"operator", "clean", "noise", "size", "ridge", "pixels", "seed"});
  const auto [op, inner, clean] = lift_inputs(L, "monge.fitted_lift");
  lua_getfield(L, 1, "noise");
  auto noise = std::dynamic_pointer_cast<NoiseModel>(test_plugin(L, -1));
  lua_pop(L, 1);
  if (!noise) throw std::runtime_error("monge.fitted_lift: 'noise' must be a noise model (e.g. monge.noise(\"gaussian\")): the simulated pairs draw from it");
  const double size = opt_number_field(L, 1, "size", 15), ridge = opt_number_field(L, 1, "ridge", 1e-4);
  const double pixels = opt_number_field(L, 1, "pixels", 100000), seed = opt_number_field(L, 1, "seed", 0);
  if (!(size >= 1 && size <= 63 && size == std::floor(size) && static_cast<int64_t>(size) % 2 == 1))
    throw std::runtime_error("monge.fitted_lift: 'size' must be an odd whole number, 1 to 63");
  if (!(ridge >= 0 && ridge < 1e6)) throw std::runtime_error("monge.fitted_lift: 'ridge' must be a number >= 0");
  if (!(pixels >= 1 && pixels <= 1e7)) throw std::runtime_error("monge.fitted_lift: 'pixels' must be 1 to 1e7");
  if (!(seed >= 0 && seed < 9e15)) throw std::runtime_error("monge.fitted_lift: 'seed' must be a number >= 0");
  auto lift = host::wiener::fit_lift(*inner, *noise, *clean, static_cast<int64_t>(size), ridge, static_cast<int64_t>(pixels),
                                     static_cast<uint64_t>(seed));
  push_plugin(L, std::make_shared<WienerLift>(inner, lift), op->name, op->params);
  return 1;
}

int l_wiener_restore(lua_State* L) {
  auto lift = check_lift(L, 1, "monge.wiener_restore");
  const at::Tensor y = to_tensor(L, 2);
  std::string padding = "reflect";
  double pad = -1;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    check_keys(L, 3, "monge.wiener_restore", {"padding", "pad"});
    padding = opt_string_field(L, 3, "padding", "reflect");
    pad = opt_number_field(L, 3, "pad", -1);
  }
  const auto& m = *lift->model();
  if (m.kind == host::wiener::LiftKind::Fitted) {  // a finite filter already: the lift is the whole-image restoration
    push_tensor(L, lift->lift(y));
    return 1;
  }
  push_tensor(L, host::wiener::restore_fft(y, m.response, m.prior, m.noise_variance, padding, static_cast<int64_t>(pad)));
  return 1;
}

int l_wiener_info(lua_State* L) {
  const auto& m = *check_lift(L, 1, "monge.wiener_info")->model();
  lua_createtable(L, 0, 10);
  lua_pushstring(L, m.kind == host::wiener::LiftKind::Fitted ? "fitted" : "wiener");
  lua_setfield(L, -2, "kind");
  auto number = [L](const char* key, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
  };
  auto tensor = [L](const char* key, const at::Tensor& t) {
    push_tensor(L, t.clone());
    lua_setfield(L, -2, key);
  };
  number("radius", static_cast<double>(m.filter.radius));
  number("scale", static_cast<double>(m.filter.scale));
  number("noise_variance", m.noise_variance);
  number("gain", m.filter.gain);
  tensor("mean", m.filter.mean);
  tensor("filter", m.filter.weight);
  if (m.kind == host::wiener::LiftKind::Fitted) return 1;  // no response or prior: only the fitted filter
  number("lag", static_cast<double>(m.prior.lag));
  tensor("autocov", m.prior.autocov);
  tensor("response", m.response.taps);
  return 1;
}

int l_power_spectrum(lua_State* L) {
  const at::Tensor x = to_tensor(L, 1);
  double patch = 64, max_patches = 20000;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "monge.power_spectrum", {"patch", "max_patches"});
    patch = opt_number_field(L, 2, "patch", 64);
    max_patches = opt_number_field(L, 2, "max_patches", 20000);
  }
  if (!(patch >= 2 && patch <= 4096) || !(max_patches >= 1 && max_patches <= 1e7))
    throw std::runtime_error("monge.power_spectrum: 'patch' must be 2 to 4096 and 'max_patches' 1 to 1e7");
  push_tensor(L, host::wiener::power_spectrum(x, static_cast<int64_t>(patch), static_cast<int64_t>(max_patches)));
  return 1;
}

}  // namespace

void open_wiener(lua_State* L) {
  set_function<l_wiener>(L, "wiener");
  set_function<l_fitted_lift>(L, "fitted_lift");
  set_function<l_wiener_restore>(L, "wiener_restore");
  set_function<l_wiener_info>(L, "wiener_info");
  set_function<l_power_spectrum>(L, "power_spectrum");
}

}  // namespace monge::lua
