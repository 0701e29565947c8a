// Lua bindings for plugins: constructing any plugin with a params table, calling its methods, and
// defining operators and costs as Lua functions usable wherever a plugin of that kind is.

#include <cmath>
#include <map>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "host/core/registry.hpp"
#include "host/core/sum_cost.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/option_tables.hpp"
#include "host/lua/runtime.hpp"
#include "host/lua/tensor.hpp"
#include "monge/cost.hpp"
#include "monge/metric.hpp"
#include "monge/noise.hpp"
#include "monge/operator.hpp"

namespace monge::lua {

namespace {

constexpr const char* kPluginMeta = "monge.Plugin";

struct PluginBox {
  std::shared_ptr<Plugin> object;
  std::string name;
  std::shared_ptr<const Params> params;
};

PluginBox* test_box(lua_State* L, int index) {
  return test_box_alive<PluginBox>(L, index, kPluginMeta, "plugin object", [](const PluginBox& b) { return b.object != nullptr; });
}

PluginBox& check_box(lua_State* L, int index) {
  auto* box = test_box(L, index);
  if (!box) throw std::runtime_error("expected a monge plugin object, got " + std::string(luaL_typename(L, index)));
  return *box;
}

template <class T>
std::shared_ptr<T> check_kind(lua_State* L, int index, Kind kind, const char* function) {
  auto* box = test_box(L, index);
  std::shared_ptr<T> p = box ? std::dynamic_pointer_cast<T>(box->object) : nullptr;
  if (!p)
    throw std::runtime_error(std::string(function) + ": expected a " + kind_name(kind) + " object, got " +
                             (box ? std::string(kind_name(box->object->kind())) + " object" : luaL_typename(L, index)));
  return p;
}

// ---------------------------------------------------------------- Lua functions as plugins

// A reference to a Lua function, called from C++ (e.g. by a C++ cost that holds a Lua operator).
class LuaFunction {
 public:
  LuaFunction(lua_State* L, int index) : L_(L) {
    lua_pushvalue(L, index);
    ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ~LuaFunction() {
    if (state_alive(L_)) luaL_unref(L_, LUA_REGISTRYINDEX, ref_);
  }
  LuaFunction(const LuaFunction&) = delete;
  LuaFunction& operator=(const LuaFunction&) = delete;

  /// Calls the function with tensor arguments; returns its first result as a tensor.
  at::Tensor call(const char* what, std::initializer_list<at::Tensor> args) const {
    if (!state_alive(L_)) throw Error(std::string(what) + ": the Lua state that defined it is closed");
    const int top = lua_gettop(L_);
    lua_rawgeti(L_, LUA_REGISTRYINDEX, ref_);
    for (const auto& a : args) push_tensor(L_, a);
    if (lua_pcall(L_, static_cast<int>(args.size()), 1, 0) != 0) {
      std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "(error object is not a string)";
      lua_settop(L_, top);
      throw Error(msg);
    }
    at::Tensor* t = test_tensor(L_, -1);
    if (!t) {
      const std::string got = luaL_typename(L_, -1);
      lua_settop(L_, top);
      throw Error(std::string(what) + " must return a tensor, got " + got);
    }
    at::Tensor out = *t;
    lua_settop(L_, top);
    return out;
  }

 private:
  lua_State* L_;
  int ref_;
};

class LuaOperator final : public ForwardOperator {
 public:
  LuaOperator(std::unique_ptr<LuaFunction> forward, std::unique_ptr<LuaFunction> lift,
              std::optional<double> lipschitz, int64_t scale)
      : forward_(std::move(forward)), lift_(std::move(lift)), lipschitz_(lipschitz), scale_(scale) {}
  at::Tensor forward(const at::Tensor& x) const override { return forward_->call("operator forward", {x}); }
  at::Tensor lift(const at::Tensor& y) const override { return lift_ ? lift_->call("operator lift", {y}) : y; }
  std::vector<int64_t> measurement_shape(const std::vector<int64_t>& signal) const override {
    if (scale_ == 1) return signal;
    auto out = signal;
    for (size_t d = out.size() >= 2 ? out.size() - 2 : 0; d < out.size(); ++d) out[d] /= scale_;
    return out;
  }
  std::optional<double> lipschitz() const override { return lipschitz_; }
  int64_t scale_factor() const override { return scale_; }

 private:
  std::unique_ptr<LuaFunction> forward_, lift_;
  std::optional<double> lipschitz_;
  int64_t scale_;
};

class LuaCost final : public Cost {
 public:
  explicit LuaCost(std::unique_ptr<LuaFunction> fn) : fn_(std::move(fn)) {}
  at::Tensor evaluate(const at::Tensor& y, const at::Tensor& x) const override {
    at::Tensor c = fn_->call("cost function", {y, x});
    if (c.dim() != 1 || c.size(0) != x.size(0))
    {
      std::ostringstream got;
      got << c.sizes();
      throw Error("cost function must return one value per sample (shape [" + std::to_string(x.size(0)) +
                  "]), got shape " + got.str());
    }
    return c;
  }

 private:
  std::unique_ptr<LuaFunction> fn_;
};

using host::SumCost;

std::string describe_params(const PluginBox& box) {
  std::ostringstream s;
  s << kind_name(box.object->kind()) << " " << box.name;
  if (box.params && !box.params->values().empty()) {
    s << " {";
    bool first = true;
    for (const auto& [k, v] : box.params->values()) {
      s << (first ? "" : ", ") << k << " = " << detail::value_text(v);
      first = false;
    }
    s << "}";
  }
  return s.str();
}

// ---------------------------------------------------------------- construction

ParamMap to_param_map(lua_State* L, int index, const std::string& owner) {
  ParamMap out;
  if (lua_isnoneornil(L, index)) return out;
  if (!lua_istable(L, index))
    throw std::runtime_error(owner + ": parameters must be a table like { sigma = 1.5 }, got " +
                             luaL_typename(L, index));
  index = index < 0 ? lua_gettop(L) + index + 1 : index;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      throw std::runtime_error(owner + ": parameter names must be strings (use { name = value })");
    }
    const std::string key = lua_tostring(L, -2);
    out[key] = to_value(L, -1, owner + ": parameter '" + key + "'");
    lua_pop(L, 1);
  }
  return out;
}

int create_plugin(lua_State* L, std::optional<Kind> kind, const char* function) {
  if (lua_type(L, 1) != LUA_TSTRING)
    throw std::runtime_error(std::string(function) + ": argument 1 must be a plugin name, got " +
                             luaL_typename(L, 1));
  const std::string name = lua_tostring(L, 1);
  auto& reg = host::Registry::global();
  auto params = std::make_shared<const Params>(reg.resolve(name, to_param_map(L, 2, name), kind));
  push_plugin(L, reg.instantiate(name, *params), name, params);
  return 1;
}

std::unique_ptr<LuaFunction> opt_function(lua_State* L, int table, const char* key, bool required,
                                          const char* function) {
  lua_getfield(L, table, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (required) throw std::runtime_error(std::string(function) + ": field '" + key + "' (a function) is required");
    return nullptr;
  }
  if (!lua_isfunction(L, -1)) {
    const std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw std::runtime_error(std::string(function) + ": field '" + key + "' must be a function, got " + got);
  }
  auto f = std::make_unique<LuaFunction>(L, -1);
  lua_pop(L, 1);
  return f;
}

int l_operator(lua_State* L) {
  if (!lua_istable(L, 1)) return create_plugin(L, Kind::Operator, "monge.operator");
  // A Lua-defined operator: monge.operator{ forward = fn, lift = fn, lipschitz = L, scale = k, name = "" }
  check_keys(L, 1, "monge.operator", {"forward", "lift", "lipschitz", "scale", "name"});
  auto fwd = opt_function(L, 1, "forward", true, "monge.operator");
  auto lift = opt_function(L, 1, "lift", false, "monge.operator");
  std::optional<double> lip;
  lua_getfield(L, 1, "lipschitz");
  if (lua_isnumber(L, -1)) lip = lua_tonumber(L, -1);
  lua_pop(L, 1);
  const double scale = opt_number_field(L, 1, "scale", 1);
  if (scale < 1 || std::floor(scale) != scale)
    throw std::runtime_error("monge.operator: 'scale' must be a positive integer, got " + std::to_string(scale));
  const std::string name = opt_string_field(L, 1, "name", "lua_operator");
  push_plugin(L, std::make_shared<LuaOperator>(std::move(fwd), std::move(lift), lip, static_cast<int64_t>(scale)),
              name);
  return 1;
}

int l_cost(lua_State* L) {
  if (lua_isfunction(L, 1)) {
    push_plugin(L, std::make_shared<LuaCost>(std::make_unique<LuaFunction>(L, 1)),
                lua_isstring(L, 2) ? lua_tostring(L, 2) : "lua_cost");
    return 1;
  }
  if (lua_istable(L, 1)) {
    check_keys(L, 1, "monge.cost", {"evaluate", "name"});
    auto fn = opt_function(L, 1, "evaluate", true, "monge.cost");
    push_plugin(L, std::make_shared<LuaCost>(std::move(fn)), opt_string_field(L, 1, "name", "lua_cost"));
    return 1;
  }
  return create_plugin(L, Kind::Cost, "monge.cost");
}

int l_noise(lua_State* L) { return create_plugin(L, Kind::Noise, "monge.noise"); }
int l_network(lua_State* L) { return create_plugin(L, Kind::Network, "monge.network"); }
int l_solver(lua_State* L) { return create_plugin(L, Kind::Solver, "monge.solver"); }
int l_metric(lua_State* L) { return create_plugin(L, Kind::Metric, "monge.metric"); }
int l_plugin(lua_State* L) { return create_plugin(L, std::nullopt, "monge.plugin"); }

int l_plugins(lua_State* L) {
  auto list = host::Registry::global().list();
  lua_createtable(L, static_cast<int>(list.size()), 0);
  int i = 1;
  for (const auto* r : list) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, r->name.c_str());
    lua_setfield(L, -2, "name");
    lua_pushstring(L, kind_name(r->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, r->version.c_str());
    lua_setfield(L, -2, "version");
    lua_pushstring(L, r->summary.c_str());
    lua_setfield(L, -2, "summary");
    lua_pushstring(L, r->file.string().c_str());
    lua_setfield(L, -2, "file");
    lua_rawseti(L, -2, i++);
  }
  return 1;
}

int l_describe(lua_State* L) {
  const auto& r = host::Registry::global().find(luaL_checkstring(L, 1));
  lua_pushstring(L, r.schema->describe().c_str());
  return 1;
}

int l_load_plugin(lua_State* L) {
  host::Registry::global().add_path(luaL_checkstring(L, 1));
  return 0;
}

int l_plugin_warnings(lua_State* L) {
  const auto& w = host::Registry::global().warnings();
  lua_createtable(L, static_cast<int>(w.size()), 0);
  for (size_t i = 0; i < w.size(); ++i) {
    lua_pushstring(L, w[i].c_str());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  return 1;
}

// ---------------------------------------------------------------- methods

int m_forward(lua_State* L) {
  push_tensor(L, check_kind<ForwardOperator>(L, 1, Kind::Operator, "forward")->forward(to_tensor(L, 2)));
  return 1;
}
int m_lift(lua_State* L) {
  push_tensor(L, check_kind<ForwardOperator>(L, 1, Kind::Operator, "lift")->lift(to_tensor(L, 2)));
  return 1;
}
int m_lipschitz(lua_State* L) {
  auto l = check_kind<ForwardOperator>(L, 1, Kind::Operator, "lipschitz")->lipschitz();
  if (l) lua_pushnumber(L, *l);
  else lua_pushnil(L);
  return 1;
}
int m_scale_factor(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_kind<ForwardOperator>(L, 1, Kind::Operator, "scale_factor")->scale_factor()));
  return 1;
}
int m_measurement_shape(lua_State* L) {
  auto op = check_kind<ForwardOperator>(L, 1, Kind::Operator, "measurement_shape");
  luaL_checktype(L, 2, LUA_TTABLE);
  std::vector<int64_t> shape;
  for (int i = 1; i <= static_cast<int>(lua_objlen(L, 2)); ++i) {
    lua_rawgeti(L, 2, i);
    shape.push_back(static_cast<int64_t>(lua_tonumber(L, -1)));
    lua_pop(L, 1);
  }
  auto out = op->measurement_shape(shape);
  lua_createtable(L, static_cast<int>(out.size()), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    lua_pushnumber(L, static_cast<lua_Number>(out[i]));
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  return 1;
}
int m_sample(lua_State* L) {
  auto noise = check_kind<NoiseModel>(L, 1, Kind::Noise, "sample");
  c10::optional<at::Generator> gen;
  if (lua_isnumber(L, 3)) gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(lua_tonumber(L, 3)));
  else if (!lua_isnoneornil(L, 3))
    throw std::runtime_error("sample: argument 2 (seed) must be a number or nil, got " + std::string(luaL_typename(L, 3)));
  push_tensor(L, noise->sample(to_tensor(L, 2), gen));
  return 1;
}
int m_nll(lua_State* L) {
  push_tensor(L, check_kind<NoiseModel>(L, 1, Kind::Noise, "nll")->nll(to_tensor(L, 2), to_tensor(L, 3)));
  return 1;
}
int m_evaluate(lua_State* L) {
  push_tensor(L, check_kind<Cost>(L, 1, Kind::Cost, "evaluate")->evaluate(to_tensor(L, 2), to_tensor(L, 3)));
  return 1;
}
int m_per_image(lua_State* L) {
  push_tensor(L, check_kind<Metric>(L, 1, Kind::Metric, "per_image")->per_image(to_tensor(L, 2), to_tensor(L, 3)));
  return 1;
}
int m_aggregate(lua_State* L) {
  lua_pushnumber(L, check_kind<Metric>(L, 1, Kind::Metric, "aggregate")->aggregate(to_tensor(L, 2)));
  return 1;
}
int m_set_level(lua_State* L) {
  lua_pushboolean(L, check_kind<Metric>(L, 1, Kind::Metric, "set_level")->set_level());
  return 1;
}
int m_higher_is_better(lua_State* L) {
  lua_pushboolean(L, check_kind<Metric>(L, 1, Kind::Metric, "higher_is_better")->higher_is_better());
  return 1;
}
// m(restored, reference): the set's score (the aggregate of the per-image scores, or a set-level metric's).
int m_score(lua_State* L) {
  auto metric = check_kind<Metric>(L, 1, Kind::Metric, "metric call");
  lua_pushnumber(L, metric->score_set(to_tensor(L, 2), to_tensor(L, 3)));
  return 1;
}
int m_params(lua_State* L) {
  auto& box = check_box(L, 1);
  if (box.params) push_params(L, *box.params);
  else lua_newtable(L);
  return 1;
}

const std::map<Kind, std::map<std::string, lua_CFunction>>& kind_methods() {
  static const std::map<Kind, std::map<std::string, lua_CFunction>> m = {
      {Kind::Operator,
       {{"forward", &guard<m_forward>}, {"lift", &guard<m_lift>}, {"lipschitz", &guard<m_lipschitz>},
        {"scale_factor", &guard<m_scale_factor>}, {"measurement_shape", &guard<m_measurement_shape>}}},
      {Kind::Noise, {{"sample", &guard<m_sample>}, {"nll", &guard<m_nll>}}},
      {Kind::Cost, {{"evaluate", &guard<m_evaluate>}}},
      {Kind::Metric,
       {{"per_image", &guard<m_per_image>}, {"aggregate", &guard<m_aggregate>},
        {"higher_is_better", &guard<m_higher_is_better>}, {"set_level", &guard<m_set_level>}}},
      {Kind::Network, {}},
      {Kind::Solver, {}},
  };
  return m;
}

int mt_index(lua_State* L) {
  auto& box = check_box(L, 1);
  const std::string key = luaL_checkstring(L, 2);
  if (key == "name") {
    lua_pushstring(L, box.name.c_str());
    return 1;
  }
  if (key == "kind") {
    lua_pushstring(L, kind_name(box.object->kind()));
    return 1;
  }
  if (key == "params") {
    lua_pushcfunction(L, &guard<m_params>);
    return 1;
  }
  const auto& methods = kind_methods().at(box.object->kind());
  auto it = methods.find(key);
  if (it == methods.end()) {
    std::vector<std::string> names = {"name", "kind", "params"};
    for (const auto& [n, f] : methods) names.push_back(n);
    std::string msg = std::string(kind_name(box.object->kind())) + " '" + box.name + "' has no field '" + key + "'";
    const std::string hint = did_you_mean(key, names);
    if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
    throw std::runtime_error(msg);
  }
  lua_pushcfunction(L, it->second);
  return 1;
}

// op(x) == op:forward(x); cost(y, x) == cost:evaluate(y, x); metric(a, b) == metric:aggregate(metric:per_image(a, b))
int mt_call(lua_State* L) {
  auto& box = check_box(L, 1);
  switch (box.object->kind()) {
    case Kind::Operator: return m_forward(L);
    case Kind::Cost: return m_evaluate(L);
    case Kind::Metric: return m_score(L);
    default: throw std::runtime_error(std::string(kind_name(box.object->kind())) + " '" + box.name + "' is not callable");
  }
}

int mt_tostring(lua_State* L) {
  lua_pushstring(L, describe_params(check_box(L, 1)).c_str());
  return 1;
}

int mt_gc(lua_State* L) {
  return gc_box<PluginBox>(L, kPluginMeta);
}

// cost + cost, cost * number, number * cost: weighted sums of costs.
void add_terms(lua_State* L, int index, double weight, SumCost& into) {
  auto p = check_kind<Cost>(L, index, Kind::Cost, "cost arithmetic");
  if (auto sum = std::dynamic_pointer_cast<SumCost>(p)) {
    for (const auto& [w, c] : sum->terms) into.terms.emplace_back(w * weight, c);
  } else {
    into.terms.emplace_back(weight, p);
  }
}

int mt_add(lua_State* L) {
  auto sum = std::make_shared<SumCost>();
  add_terms(L, 1, 1.0, *sum);
  add_terms(L, 2, 1.0, *sum);
  push_plugin(L, sum, "sum");
  return 1;
}

int mt_mul(lua_State* L) {
  const int cost_index = lua_isnumber(L, 1) ? 2 : 1;
  const int weight_index = 3 - cost_index;
  if (!lua_isnumber(L, weight_index))
    throw std::runtime_error("costs can only be multiplied by numbers (a weight), got " +
                             std::string(luaL_typename(L, weight_index)));
  auto sum = std::make_shared<SumCost>();
  add_terms(L, cost_index, lua_tonumber(L, weight_index), *sum);
  push_plugin(L, sum, "sum");
  return 1;
}

}  // namespace

Value to_value(lua_State* L, int index, const std::string& key) {
  switch (lua_type(L, index)) {
    case LUA_TNIL: return std::monostate{};
    case LUA_TBOOLEAN: return static_cast<bool>(lua_toboolean(L, index));
    case LUA_TNUMBER: {
      const double d = lua_tonumber(L, index);
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
      return d;
    }
    case LUA_TSTRING: return std::string(lua_tostring(L, index));
    case LUA_TTABLE: {
      // Absolute, so that it still names the table while an element is pushed (nothing is pushed
      // before lua_rawgeti: shifting a relative index there read the slot below, a parameter's key).
      if (index < 0 && index > LUA_REGISTRYINDEX) index = lua_gettop(L) + index + 1;
      std::vector<double> list;
      const int n = static_cast<int>(lua_objlen(L, index));
      for (int i = 1; i <= n; ++i) {
        lua_rawgeti(L, index, i);
        if (!lua_isnumber(L, -1)) {
          lua_pop(L, 1);
          throw std::runtime_error(key + ": tables are accepted only as lists of numbers");
        }
        list.push_back(lua_tonumber(L, -1));
        lua_pop(L, 1);
      }
      return list;
    }
    case LUA_TUSERDATA:
      if (auto* box = test_box(L, index)) return box->object;
      break;
    default: break;
  }
  throw std::runtime_error(key + ": values of type " + std::string(luaL_typename(L, index)) + " are not accepted");
}

std::optional<PluginRef> test_plugin_ref(lua_State* L, int index) {
  auto* box = test_box(L, index);
  if (!box) return std::nullopt;
  return PluginRef{box->object, box->name, box->params};
}

std::shared_ptr<Plugin> test_plugin(lua_State* L, int index) {
  auto* box = test_box(L, index);
  return box ? box->object : nullptr;
}

void push_plugin(lua_State* L, std::shared_ptr<Plugin> object, const std::string& name,
                 std::shared_ptr<const Params> params) {
  void* mem = lua_newuserdata(L, sizeof(PluginBox));
  new (mem) PluginBox{std::move(object), name, std::move(params)};
  luaL_getmetatable(L, kPluginMeta);
  lua_setmetatable(L, -2);
}

void open_plugins(lua_State* L) {
  if (new_object_metatable<mt_index, mt_tostring, mt_gc>(L, kPluginMeta)) {
    set_function<mt_call>(L, "__call");
    set_function<mt_add>(L, "__add");
    set_function<mt_mul>(L, "__mul");
  }
  lua_pop(L, 1);
  set_function<l_operator>(L, "operator");
  set_function<l_noise>(L, "noise");
  set_function<l_cost>(L, "cost");
  set_function<l_network>(L, "network");
  set_function<l_solver>(L, "solver");
  set_function<l_metric>(L, "metric");
  set_function<l_plugin>(L, "plugin");
  set_function<l_plugins>(L, "plugins");
  set_function<l_describe>(L, "describe");
  set_function<l_load_plugin>(L, "load_plugin");
  set_function<l_plugin_warnings>(L, "plugin_warnings");
}

}  // namespace monge::lua
