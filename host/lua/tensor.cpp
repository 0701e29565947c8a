// Tensors as Lua userdata ("monge.Tensor"): constructors, elementwise and nn-style functions,
// methods, arithmetic metamethods and autograd. The Lua-side API is documented in docs/lua.md.
//
// Conventions: Lua numbers that name a dimension or a position are 1-based (negative counts from
// the end, -1 is the last); values stored inside tensors are never shifted (argmax returns 0-based
// indices and index_select takes 0-based index tensors, like the class labels of monge.data).

#include "host/lua/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ScalarOps.h>

#include "host/core/threads.hpp"
#include "host/lua/lua_util.hpp"
#include "monge/params.hpp"
#include "monge/shape.hpp"

namespace monge::lua {

namespace {

constexpr const char* kTensorMeta = "monge.Tensor";
constexpr int kMaxTableDepth = 64;

// ------------------------------------------------------------------------------- memory
//
// Lua's collector sees a tensor as a few bytes of userdata, not the megabytes of its data, so a
// loop creating temporaries would grow without bound before Lua felt any pressure. The bytes of
// live tensor userdata are tracked here, and a full collection runs whenever they reach twice
// what survived the previous one (at least kMinCollectBytes): the pause rule of Lua's own GC.

constexpr int64_t kMinCollectBytes = int64_t{64} << 20;
std::atomic<int64_t> g_tensor_bytes{0};
std::atomic<int64_t> g_collect_at{kMinCollectBytes};

int64_t counted_bytes(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

void account(lua_State* L, int64_t bytes) {
  if (g_tensor_bytes.fetch_add(bytes) + bytes < g_collect_at.load()) return;
  lua_gc(L, LUA_GCCOLLECT, 0);
  g_collect_at.store(std::max(kMinCollectBytes, 2 * g_tensor_bytes.load()));
}

// ------------------------------------------------------------------------------- messages

bool is_module_function(const char* name);  // defined with the registration tables

/// The running binding as users see it: "monge.exp" when called as a function of the module,
/// "tensor:exp" when called as a method (then argument numbers do not count self) or when it is
/// a method only.
struct Caller {
  std::string name;
  bool method = false;
};

Caller caller(lua_State* L, const char* base) {
  lua_Debug ar;
  bool method = false;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.namewhat)
    method = std::strcmp(ar.namewhat, "method") == 0;
  return {(method || !is_module_function(base) ? "tensor:" : "monge.") + std::string(base), method};
}

std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.14g", v);
  return buf;
}

/// What the value at `idx` is, for messages: "string", "number 2.5", "tensor", "no value".
std::string got(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNONE: return "no value";
    case LUA_TNUMBER: return "number " + number_text(lua_tonumber(L, idx));
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, kTensorMeta)) return "tensor";
      break;
    default: break;
  }
  return luaL_typename(L, idx);
}

[[noreturn]] void fail(lua_State* L, const char* fn, const std::string& msg) {
  throw std::runtime_error(caller(L, fn).name + ": " + msg);
}

/// "argument N must be <expected>, got <what>", numbered as the user wrote the call.
[[noreturn]] void arg_error(lua_State* L, const char* fn, int narg, const std::string& expected) {
  const Caller c = caller(L, fn);
  std::string which = "argument " + std::to_string(c.method ? narg - 1 : narg);
  if (c.method && narg == 1) which = "self";
  throw std::runtime_error(c.name + ": " + which + " must be " + expected + ", got " + got(L, narg));
}

// ------------------------------------------------------------------------------- dtypes

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},  {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},   {"int8", at::kChar},
    {"uint8", at::kByte},    {"bool", at::kBool},      {"float", at::kFloat},   {"double", at::kDouble},
    {"half", at::kHalf},     {"long", at::kLong},      {"int", at::kInt},
};

std::optional<at::ScalarType> parse_dtype(const std::string& s) {
  for (const auto& d : kDtypes)
    if (s == d.name) return d.type;
  return std::nullopt;
}

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return c10::toString(t);
}

at::ScalarType check_dtype(lua_State* L, const char* fn, const std::string& s) {
  if (auto t = parse_dtype(s)) return *t;
  std::vector<std::string> names;
  for (const auto& d : kDtypes) names.emplace_back(d.name);
  std::string msg = "unknown dtype '" + s + "'";
  const std::string hint = did_you_mean(s, names);
  if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
  fail(L, fn, msg + " (dtypes: float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool)");
}

// ------------------------------------------------------------------------------- arguments

bool is_integral(double v) { return std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 9.0e18; }

double number_arg(lua_State* L, int idx, const char* fn) {
  if (lua_type(L, idx) != LUA_TNUMBER) arg_error(L, fn, idx, "a number");
  return lua_tonumber(L, idx);
}

int64_t int_arg(lua_State* L, int idx, const char* fn, const char* what = "an integer") {
  if (lua_type(L, idx) != LUA_TNUMBER || !is_integral(lua_tonumber(L, idx))) arg_error(L, fn, idx, what);
  return static_cast<int64_t>(lua_tonumber(L, idx));
}

bool opt_bool_arg(lua_State* L, int idx, const char* fn, bool def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx)) arg_error(L, fn, idx, "a boolean");
  return lua_toboolean(L, idx) != 0;
}

at::Scalar number_scalar(double v) {
  if (is_integral(v)) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

/// A Lua number or boolean as a 0-dim "wrapped number": in arithmetic it takes the dtype of the
/// tensor it meets, as Python numbers do in PyTorch.
at::Tensor wrapped(lua_State* L, int idx) {
  if (lua_isboolean(L, idx)) return at::native::wrapped_scalar_tensor(at::Scalar(lua_toboolean(L, idx) != 0));
  return at::native::wrapped_scalar_tensor(number_scalar(lua_tonumber(L, idx)));
}

/// 1-based (or negative) dimension `d` of an `ndim`-D tensor as a 0-based one. `insert` allows
/// one past the end (unsqueeze).
int64_t to_dim(lua_State* L, const char* fn, int64_t d, int64_t ndim, bool insert = false) {
  const int64_t n = insert ? ndim + 1 : std::max<int64_t>(ndim, 1);
  if (d >= 1 && d <= n) return d - 1;
  if (d <= -1 && d >= -n) return n + d;
  if (d == 0) fail(L, fn, "dimension 0 is invalid: dimensions are 1-based (-1 is the last)");
  fail(L, fn, "dimension " + std::to_string(d) + " is out of range for a " + std::to_string(ndim) +
                  "-D tensor (valid: 1.." + std::to_string(n) + " or -" + std::to_string(n) + "..-1)");
}

int64_t dim_arg(lua_State* L, int idx, const char* fn, int64_t ndim, bool insert = false) {
  return to_dim(L, fn, int_arg(L, idx, fn, "a dimension (an integer)"), ndim, insert);
}

/// 1-based (or negative) position `i` along a dimension of `size` elements, as a 0-based one.
int64_t to_pos(lua_State* L, const char* fn, int64_t i, int64_t size, int64_t dim1) {
  if (i >= 1 && i <= size) return i - 1;
  if (i <= -1 && i >= -size) return size + i;
  fail(L, fn, "index " + std::to_string(i) + " is out of range for dimension " + std::to_string(dim1) + " of size " +
                  std::to_string(size) + (i == 0 ? " (indices are 1-based)" : ""));
}

/// A table of integers, or the integers from argument `first` on (t:reshape{2, 3} or t:reshape(2, 3)).
int absolute(lua_State* L, int idx) { return idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx; }

std::vector<int64_t> int_list(lua_State* L, int first, const char* fn, const char* what) {
  first = absolute(L, first);
  std::vector<int64_t> out;
  if (lua_istable(L, first)) {
    const int n = static_cast<int>(lua_objlen(L, first));
    for (int i = 1; i <= n; ++i) {
      lua_rawgeti(L, first, i);
      const bool ok = lua_type(L, -1) == LUA_TNUMBER && is_integral(lua_tonumber(L, -1));
      const double v = lua_tonumber(L, -1);
      const std::string g = got(L, -1);
      lua_pop(L, 1);
      if (!ok) fail(L, fn, std::string(what) + " " + std::to_string(i) + " must be an integer, got " + g);
      out.push_back(static_cast<int64_t>(v));
    }
    return out;
  }
  if (lua_type(L, first) != LUA_TNUMBER) arg_error(L, fn, first, std::string("a table of ") + what + "s or integers");
  for (int i = first; lua_type(L, i) == LUA_TNUMBER; ++i) out.push_back(int_arg(L, i, fn));
  return out;
}

/// An int or a pair {a, b} (stride, padding, kernel sizes).
std::vector<int64_t> pair_value(lua_State* L, int idx, const char* fn, const char* what) {
  idx = absolute(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER && is_integral(lua_tonumber(L, idx))) {
    const auto v = static_cast<int64_t>(lua_tonumber(L, idx));
    return {v, v};
  }
  if (lua_istable(L, idx)) {
    auto v = int_list(L, idx, fn, what);
    if (v.size() == 2) return v;
  }
  fail(L, fn, std::string(what) + " must be an integer or a table of two integers, got " + got(L, idx));
}

/// Rejects a table at `idx` with keys beyond 1..#t, the usual sign of options put in the wrong
/// table (monge.zeros{2, 3, dtype = "float64"}). Returns a message, or "" if it is a plain array.
std::string non_array_key(lua_State* L, int idx) {
  idx = absolute(L, idx);
  const size_t n = lua_objlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    const bool in_range = lua_type(L, -1) == LUA_TNUMBER && is_integral(lua_tonumber(L, -1)) &&
                          lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= static_cast<double>(n);
    if (!in_range) {
      std::string key = lua_type(L, -1) == LUA_TSTRING ? "'" + std::string(lua_tostring(L, -1)) + "'" : got(L, -1);
      lua_pop(L, 1);
      return "has the key " + key + " besides its " + std::to_string(n) + " array elements";
    }
  }
  return "";
}

// ------------------------------------------------------------------------------- tensors

void push_shape(lua_State* L, at::IntArrayRef sizes) {
  lua_createtable(L, static_cast<int>(sizes.size()), 0);
  for (size_t i = 0; i < sizes.size(); ++i) {
    lua_pushnumber(L, static_cast<lua_Number>(sizes[i]));
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
}

/// Reads a nested Lua table of numbers/booleans: its shape from the first elements, then every
/// element, checking that each level has the same length everywhere.
class TableReader {
 public:
  /// `prefix` starts every error message ("monge.tensor"); empty for none.
  TableReader(lua_State* L, std::string prefix) : L_(L), prefix_(std::move(prefix)) {}

  at::Tensor read(int idx, std::optional<at::ScalarType> dtype) {
    idx = idx < 0 ? lua_gettop(L_) + idx + 1 : idx;
    if (const std::string bad = non_array_key(L_, idx); !bad.empty())
      error("the table " + bad + " (options go in a separate table after it)");
    find_shape(idx);
    lua_pushvalue(L_, idx);
    fill(0, "");
    lua_pop(L_, 1);
    auto t = at::tensor(values_, at::kDouble).reshape(shape_);
    const at::ScalarType type = dtype ? *dtype : (any_bool_ && !any_number_) ? at::kBool : at::kFloat;
    return t.to(type);
  }

 private:
  void find_shape(int idx) {
    lua_pushvalue(L_, idx);
    while (lua_istable(L_, -1)) {
      if (shape_.size() >= kMaxTableDepth) error("nested table is too deep");
      const size_t n = lua_objlen(L_, -1);
      shape_.push_back(static_cast<int64_t>(n));
      if (n == 0) break;
      lua_rawgeti(L_, -1, 1);
      lua_remove(L_, -2);
    }
    lua_pop(L_, 1);
  }

  // The table at the top of the stack is level `d` (0-based), reached through `path` ("[2][1]").
  void fill(size_t d, const std::string& path) {
    luaL_checkstack(L_, 4, "nested table");
    const auto n = static_cast<int64_t>(lua_objlen(L_, -1));
    if (n != shape_[d])
      error("ragged nested table: level " + std::to_string(d + 1) + " has length " + std::to_string(n) +
                        " at " + (path.empty() ? "the top" : path) + ", but length " + std::to_string(shape_[d]) +
                        " at " + (d ? first_path(d) : "the top"));
    for (int64_t i = 1; i <= n; ++i) {
      lua_rawgeti(L_, -1, static_cast<int>(i));
      const std::string here = path + "[" + std::to_string(i) + "]";
      const bool leaf_level = d + 1 == shape_.size();
      if (!leaf_level) {
        if (!lua_istable(L_, -1))
          error("ragged nested table: element " + here + " is a " + got(L_, -1) + ", but level " +
                            std::to_string(d + 2) + " holds tables of length " + std::to_string(shape_[d + 1]));
        fill(d + 1, here);
      } else if (lua_type(L_, -1) == LUA_TNUMBER) {
        any_number_ = true;
        values_.push_back(lua_tonumber(L_, -1));
      } else if (lua_isboolean(L_, -1)) {
        any_bool_ = true;
        values_.push_back(lua_toboolean(L_, -1) ? 1.0 : 0.0);
      } else if (lua_istable(L_, -1)) {
        error("ragged nested table: element " + here + " is a table, but level " + std::to_string(d + 1) +
                          " holds numbers (as at " + first_path(d + 1) + ")");
      } else {
        error("element " + here + " must be a number or boolean, got " + got(L_, -1));
      }
      lua_pop(L_, 1);
    }
  }

  [[noreturn]] void error(const std::string& msg) const {
    throw std::runtime_error(prefix_.empty() ? msg : prefix_ + ": " + msg);
  }

  static std::string first_path(size_t depth) {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += "[1]";
    return s;
  }

  lua_State* L_;
  std::string prefix_;
  std::vector<int64_t> shape_;
  std::vector<double> values_;
  bool any_number_ = false, any_bool_ = false;
};

/// The value at `idx` as a tensor for function `fn`: tensors, numbers, booleans, nested tables.
at::Tensor tensor_arg(lua_State* L, int idx, const char* fn) {
  if (auto* t = test_tensor(L, idx)) return *t;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: return at::scalar_tensor(lua_tonumber(L, idx), at::kFloat);
    case LUA_TBOOLEAN: return at::scalar_tensor(lua_toboolean(L, idx) != 0, at::kBool);
    case LUA_TTABLE: return TableReader(L, caller(L, fn).name).read(idx, std::nullopt);
    default: arg_error(L, fn, idx, "a tensor");
  }
}

/// Second operands of binary operations: numbers and booleans become wrapped numbers.
at::Tensor operand(lua_State* L, int idx, const char* fn) {
  if (lua_type(L, idx) == LUA_TNUMBER || lua_isboolean(L, idx)) return wrapped(L, idx);
  return tensor_arg(L, idx, fn);
}

/// Undefined tensors are pushed as nil (e.g. t.grad before any backward).
void push_or_nil(lua_State* L, const at::Tensor& t) {
  if (t.defined())
    push_tensor(L, t);
  else
    lua_pushnil(L);
}

void check_defined(lua_State* L, const char* fn, const at::Tensor& t) {
  if (!t.defined()) fail(L, fn, "the tensor is undefined");
}

// ------------------------------------------------------------------------------- options

struct Options {
  std::optional<at::ScalarType> dtype;
  bool requires_grad = false;
  std::optional<uint64_t> seed;
};

/// Reads {dtype=, requires_grad= [, seed=]} at `idx` (nil: defaults).
Options options_arg(lua_State* L, int idx, const char* fn, bool with_seed = false) {
  Options o;
  if (lua_isnoneornil(L, idx)) return o;
  if (!lua_istable(L, idx)) arg_error(L, fn, idx, "an options table");
  const std::string name = caller(L, fn).name;
  if (with_seed)
    check_keys(L, idx, name.c_str(), {"dtype", "requires_grad", "seed"});
  else
    check_keys(L, idx, name.c_str(), {"dtype", "requires_grad"});
  lua_getfield(L, idx, "dtype");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) fail(L, fn, "option 'dtype' must be a string, got " + got(L, -1));
    o.dtype = check_dtype(L, fn, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "requires_grad");
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1)) fail(L, fn, "option 'requires_grad' must be a boolean, got " + got(L, -1));
    o.requires_grad = lua_toboolean(L, -1) != 0;
  }
  lua_pop(L, 1);
  if (with_seed) {
    lua_getfield(L, idx, "seed");
    if (!lua_isnil(L, -1)) {
      const double v = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !is_integral(v) || v < 0)
        fail(L, fn, "option 'seed' must be a non-negative integer, got " + got(L, -1));
      o.seed = static_cast<uint64_t>(v);
    }
    lua_pop(L, 1);
  }
  return o;
}

at::Tensor finish(at::Tensor t, const Options& o) {
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

/// A shape given as a table ({2, 3}) or as numbers (2, 3) from argument 1; `next` receives the
/// index of the first argument after it.
std::vector<int64_t> shape_args(lua_State* L, const char* fn, int* next) {
  std::vector<int64_t> shape;
  auto check = [&](double v, const std::string& g, int i) {
    if (!is_integral(v) || v < 0)
      fail(L, fn, "size " + std::to_string(i) + " must be a non-negative integer, got " + g);
    shape.push_back(static_cast<int64_t>(v));
  };
  if (lua_istable(L, 1)) {
    if (const std::string bad = non_array_key(L, 1); !bad.empty())
      fail(L, fn, "the table of sizes " + bad + " (options go in a separate table after it)");
    const int n = static_cast<int>(lua_objlen(L, 1));
    for (int i = 1; i <= n; ++i) {
      lua_rawgeti(L, 1, i);
      const double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
      const std::string g = got(L, -1);
      lua_pop(L, 1);
      check(v, g, i);
    }
    *next = 2;
    return shape;
  }
  if (lua_type(L, 1) != LUA_TNUMBER) arg_error(L, fn, 1, "a table of sizes or numbers");
  int i = 1;
  for (; lua_type(L, i) == LUA_TNUMBER; ++i) check(lua_tonumber(L, i), got(L, i), i);
  *next = i;
  return shape;
}

// ------------------------------------------------------------------------------- constructors

int f_tensor(lua_State* L) {
  const Options o = options_arg(L, 2, "tensor");
  at::Tensor t;
  if (auto* src = test_tensor(L, 1)) {
    t = src->detach().clone();
    if (o.dtype) t = t.to(*o.dtype);
  } else if (lua_type(L, 1) == LUA_TNUMBER) {
    t = at::scalar_tensor(lua_tonumber(L, 1), at::kDouble).to(o.dtype.value_or(at::kFloat));
  } else if (lua_isboolean(L, 1)) {
    t = at::scalar_tensor(lua_toboolean(L, 1) != 0, at::kBool).to(o.dtype.value_or(at::kBool));
  } else if (lua_istable(L, 1)) {
    t = TableReader(L, caller(L, "tensor").name).read(1, o.dtype);
  } else {
    arg_error(L, "tensor", 1, "a table of numbers, a number or a tensor");
  }
  push_tensor(L, finish(t, o));
  return 1;
}

template <at::Tensor (*Make)(at::IntArrayRef, at::TensorOptions)>
int filled(lua_State* L, const char* fn) {
  int next = 0;
  const auto shape = shape_args(L, fn, &next);
  const Options o = options_arg(L, next, fn);
  push_tensor(L, finish(Make(shape, at::TensorOptions().dtype(o.dtype.value_or(at::kFloat))), o));
  return 1;
}

at::Tensor make_zeros(at::IntArrayRef s, at::TensorOptions o) { return at::zeros(s, o); }
at::Tensor make_ones(at::IntArrayRef s, at::TensorOptions o) { return at::ones(s, o); }
int f_zeros(lua_State* L) { return filled<make_zeros>(L, "zeros"); }
int f_ones(lua_State* L) { return filled<make_ones>(L, "ones"); }

int f_full(lua_State* L) {
  if (!lua_istable(L, 1)) arg_error(L, "full", 1, "a table of sizes");
  int next = 0;
  const auto shape = shape_args(L, "full", &next);
  const Options o = options_arg(L, 3, "full");
  at::Tensor t;
  if (lua_isboolean(L, 2))
    t = at::full(shape, at::Scalar(lua_toboolean(L, 2) != 0), at::TensorOptions().dtype(o.dtype.value_or(at::kBool)));
  else
    t = at::full(shape, at::Scalar(number_arg(L, 2, "full")), at::TensorOptions().dtype(o.dtype.value_or(at::kFloat)));
  push_tensor(L, finish(t, o));
  return 1;
}

template <bool Normal>
int random_tensor(lua_State* L, const char* fn) {
  int next = 0;
  const auto shape = shape_args(L, fn, &next);
  const Options o = options_arg(L, next, fn, true);
  const auto opts = at::TensorOptions().dtype(o.dtype.value_or(at::kFloat));
  c10::optional<at::Generator> gen;
  if (o.seed) gen = at::make_generator<at::CPUGeneratorImpl>(*o.seed);
  at::Tensor t = Normal ? at::randn(shape, gen, opts) : at::rand(shape, gen, opts);
  push_tensor(L, finish(t, o));
  return 1;
}
int f_rand(lua_State* L) { return random_tensor<false>(L, "rand"); }
int f_randn(lua_State* L) { return random_tensor<true>(L, "randn"); }

int f_arange(lua_State* L) {
  std::vector<double> a;
  int i = 1;
  for (; i <= 3 && lua_type(L, i) == LUA_TNUMBER; ++i) a.push_back(lua_tonumber(L, i));
  if (a.empty()) arg_error(L, "arange", 1, "a number");
  const Options o = options_arg(L, i, "arange");
  double start = 0, stop = a[0], step = 1;
  if (a.size() >= 2) start = a[0], stop = a[1];
  if (a.size() == 3) step = a[2];
  bool integral = true;
  for (double v : a) integral = integral && is_integral(v);
  const auto type = o.dtype.value_or(integral ? at::kLong : at::kFloat);
  push_tensor(L, finish(at::arange(number_scalar(start), number_scalar(stop), number_scalar(step),
                                   at::TensorOptions().dtype(type)),
                        o));
  return 1;
}

int f_linspace(lua_State* L) {
  const double a = number_arg(L, 1, "linspace"), b = number_arg(L, 2, "linspace");
  const int64_t n = int_arg(L, 3, "linspace", "a number of steps (an integer)");
  const Options o = options_arg(L, 4, "linspace");
  push_tensor(L, finish(at::linspace(a, b, n, at::TensorOptions().dtype(o.dtype.value_or(at::kFloat))), o));
  return 1;
}

std::vector<at::Tensor> tensor_list(lua_State* L, int idx, const char* fn) {
  if (!lua_istable(L, idx)) arg_error(L, fn, idx, "a table of tensors");
  std::vector<at::Tensor> out;
  const int n = static_cast<int>(lua_objlen(L, idx));
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, i);
    at::Tensor* t = test_tensor(L, -1);
    if (!t) fail(L, fn, "element " + std::to_string(i) + " of the list must be a tensor, got " + got(L, -1));
    out.push_back(*t);
    lua_pop(L, 1);
  }
  if (out.empty()) fail(L, fn, "the list of tensors is empty");
  return out;
}

int f_cat(lua_State* L) {
  const auto list = tensor_list(L, 1, "cat");
  const int64_t d = lua_isnoneornil(L, 2) ? 0 : dim_arg(L, 2, "cat", list[0].dim());
  push_tensor(L, at::cat(list, d));
  return 1;
}

int f_stack(lua_State* L) {
  const auto list = tensor_list(L, 1, "stack");
  const int64_t d = lua_isnoneornil(L, 2) ? 0 : dim_arg(L, 2, "stack", list[0].dim(), true);
  push_tensor(L, at::stack(list, d));
  return 1;
}

int f_manual_seed(lua_State* L) {
  const int64_t seed = int_arg(L, 1, "manual_seed", "a non-negative integer");
  if (seed < 0) arg_error(L, "manual_seed", 1, "a non-negative integer");
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(static_cast<uint64_t>(seed));
  return 0;
}

int f_is_tensor(lua_State* L) {
  lua_pushboolean(L, test_tensor(L, 1) != nullptr);
  return 1;
}

int f_set_threads(lua_State* L) {
  const int64_t n = int_arg(L, 1, "set_threads", "a positive integer");
  if (n < 1 || n > 1024) arg_error(L, "set_threads", 1, "a positive integer");
  host::set_threads(static_cast<int>(n));
  return 0;
}

// monge.did_you_mean(word, { candidates }): the nearest candidate (edit distance), or nil; the
// suggestion the host's own messages make, for Lua command lines.
int f_did_you_mean(lua_State* L) {
  const std::string word = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  std::vector<std::string> names;
  for (int i = 1;; ++i) {
    lua_rawgeti(L, 2, i);
    if (lua_isnil(L, -1)) break;
    if (lua_type(L, -1) != LUA_TSTRING) arg_error(L, "did_you_mean", 2, "a list of strings");
    names.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  const std::string hint = did_you_mean(word, names);
  if (hint.empty()) lua_pushnil(L);
  else lua_pushstring(L, hint.c_str());
  return 1;
}

int f_threads(lua_State* L) {
  lua_pushnumber(L, at::get_num_threads());
  return 1;
}

// monge.clock(): seconds on a monotonic wall clock (os.clock() is CPU time, summed over threads).
int f_clock(lua_State* L) {
  lua_pushnumber(L, std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  return 1;
}

// monge.no_grad(fn, ...): calls fn(...) with gradients off and returns its results. The guard is
// thread-local RAII: it must be gone before a Lua error unwinds past this frame.
int f_no_grad(lua_State* L) {
  if (lua_type(L, 1) != LUA_TFUNCTION) arg_error(L, "no_grad", 1, "a function");
  const int nargs = lua_gettop(L) - 1;
  int rc;
  {
    at::NoGradGuard no_grad;
    rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
  }
  if (rc != 0) return lua_error(L);  // the error value as raised, file:line included
  return lua_gettop(L);
}

// ------------------------------------------------------------------------------- elementwise

#define MONGE_UNARY(NAME, EXPR)                      \
  int f_##NAME(lua_State* L) {                       \
    const at::Tensor t = tensor_arg(L, 1, #NAME);    \
    push_tensor(L, EXPR);                            \
    return 1;                                        \
  }

MONGE_UNARY(exp, at::exp(t))
MONGE_UNARY(log, at::log(t))
MONGE_UNARY(sqrt, at::sqrt(t))
MONGE_UNARY(abs, at::abs(t))
MONGE_UNARY(tanh, at::tanh(t))
MONGE_UNARY(sigmoid, at::sigmoid(t))
MONGE_UNARY(relu, at::relu(t))
MONGE_UNARY(sin, at::sin(t))
MONGE_UNARY(cos, at::cos(t))
MONGE_UNARY(neg, at::neg(t))
MONGE_UNARY(float, t.to(at::kFloat))
MONGE_UNARY(double, t.to(at::kDouble))
MONGE_UNARY(long, t.to(at::kLong))
MONGE_UNARY(bool, t.to(at::kBool))
MONGE_UNARY(clone, t.clone())
MONGE_UNARY(detach, t.detach())
MONGE_UNARY(contiguous, t.contiguous())
#undef MONGE_UNARY

// clamp(t, lo, hi): either bound may be nil; bounds are numbers or tensors.
int f_clamp(lua_State* L) {
  const at::Tensor t = tensor_arg(L, 1, "clamp");
  const bool lo = !lua_isnoneornil(L, 2), hi = !lua_isnoneornil(L, 3);
  if (!lo && !hi) fail(L, "clamp", "give at least one bound (lo, hi or both)");
  if ((!lo || lua_type(L, 2) == LUA_TNUMBER) && (!hi || lua_type(L, 3) == LUA_TNUMBER)) {
    c10::optional<at::Scalar> a, b;
    if (lo) a = number_scalar(lua_tonumber(L, 2));
    if (hi) b = number_scalar(lua_tonumber(L, 3));
    push_tensor(L, at::clamp(t, a, b));
    return 1;
  }
  c10::optional<at::Tensor> a, b;
  if (lo) a = operand(L, 2, "clamp");
  if (hi) b = operand(L, 3, "clamp");
  push_tensor(L, at::clamp(t, a, b));
  return 1;
}

int f_pow(lua_State* L) {
  if (lua_type(L, 1) == LUA_TNUMBER && test_tensor(L, 2)) {
    push_tensor(L, at::pow(number_scalar(lua_tonumber(L, 1)), *test_tensor(L, 2)));
    return 1;
  }
  const at::Tensor t = tensor_arg(L, 1, "pow");
  if (lua_type(L, 2) == LUA_TNUMBER)
    push_tensor(L, at::pow(t, number_scalar(lua_tonumber(L, 2))));
  else if (test_tensor(L, 2))
    push_tensor(L, at::pow(t, *test_tensor(L, 2)));
  else
    arg_error(L, "pow", 2, "a number or a tensor");
  return 1;
}

int f_softplus(lua_State* L) {
  const at::Tensor t = tensor_arg(L, 1, "softplus");
  const double beta = lua_isnoneornil(L, 2) ? 1.0 : number_arg(L, 2, "softplus");
  const double threshold = lua_isnoneornil(L, 3) ? 20.0 : number_arg(L, 3, "softplus");
  push_tensor(L, at::softplus(t, beta, threshold));
  return 1;
}

// ------------------------------------------------------------------------------- binary

enum class Binary { Add, Sub, Mul, Div, Pow, Gt, Lt, Ge, Le, Eq, Ne, Matmul };

at::Tensor apply(Binary op, const at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case Binary::Add: return at::add(a, b);
    case Binary::Sub: return at::sub(a, b);
    case Binary::Mul: return at::mul(a, b);
    case Binary::Div: return at::div(a, b);
    case Binary::Pow: return at::pow(a, b);
    case Binary::Gt: return at::gt(a, b);
    case Binary::Lt: return at::lt(a, b);
    case Binary::Ge: return at::ge(a, b);
    case Binary::Le: return at::le(a, b);
    case Binary::Eq: return at::eq(a, b);
    case Binary::Ne: return at::ne(a, b);
    case Binary::Matmul: return at::matmul(a, b);
  }
  throw std::logic_error("unknown binary operation");
}

template <Binary Op>
int binary_function(lua_State* L, const char* fn) {
  const at::Tensor a = lua_type(L, 1) == LUA_TNUMBER ? wrapped(L, 1) : tensor_arg(L, 1, fn);
  push_tensor(L, apply(Op, a, operand(L, 2, fn)));
  return 1;
}
int f_add(lua_State* L) { return binary_function<Binary::Add>(L, "add"); }
int f_sub(lua_State* L) { return binary_function<Binary::Sub>(L, "sub"); }
int f_mul(lua_State* L) { return binary_function<Binary::Mul>(L, "mul"); }
int f_div(lua_State* L) { return binary_function<Binary::Div>(L, "div"); }
int f_gt(lua_State* L) { return binary_function<Binary::Gt>(L, "gt"); }
int f_lt(lua_State* L) { return binary_function<Binary::Lt>(L, "lt"); }
int f_ge(lua_State* L) { return binary_function<Binary::Ge>(L, "ge"); }
int f_le(lua_State* L) { return binary_function<Binary::Le>(L, "le"); }
int f_eq(lua_State* L) { return binary_function<Binary::Eq>(L, "eq"); }
int f_ne(lua_State* L) { return binary_function<Binary::Ne>(L, "ne"); }

int f_matmul(lua_State* L) {
  push_tensor(L, at::matmul(tensor_arg(L, 1, "matmul"), tensor_arg(L, 2, "matmul")));
  return 1;
}

int f_where(lua_State* L) {
  const at::Tensor cond = tensor_arg(L, 1, "where");
  if (cond.scalar_type() != at::kBool)
    fail(L, "where", "the condition must be a bool tensor (e.g. from t:gt(0)), got " +
                         std::string(dtype_name(cond.scalar_type())));
  push_tensor(L, at::where(cond, operand(L, 2, "where"), operand(L, 3, "where")));
  return 1;
}

// Metamethods: either operand may be the tensor.
const char* op_verb(Binary op) {
  switch (op) {
    case Binary::Add: return "add";
    case Binary::Sub: return "subtract";
    case Binary::Mul: return "multiply";
    case Binary::Div: return "divide";
    case Binary::Pow: return "raise to a power";
    default: return "combine";
  }
}

at::Tensor meta_operand(lua_State* L, int idx, Binary op) {
  if (lua_type(L, idx) == LUA_TNUMBER || lua_isboolean(L, idx)) return wrapped(L, idx);
  if (auto* t = test_tensor(L, idx)) return *t;
  throw std::runtime_error(std::string("cannot ") + op_verb(op) + " " + got(L, 1) + " and " + got(L, 2) +
                           " (tensor arithmetic takes tensors and numbers)");
}

template <Binary Op>
int meta_binary(lua_State* L) {
  const at::Tensor a = meta_operand(L, 1, Op), b = meta_operand(L, 2, Op);
  if (Op == Binary::Pow && a.unsafeGetTensorImpl()->is_wrapped_number())
    push_tensor(L, at::pow(number_scalar(lua_tonumber(L, 1)), b));
  else if (Op == Binary::Pow && b.unsafeGetTensorImpl()->is_wrapped_number())
    push_tensor(L, at::pow(a, b.item()));
  else
    push_tensor(L, apply(Op, a, b));
  return 1;
}

int meta_unm(lua_State* L) {
  push_tensor(L, at::neg(check_tensor(L, 1)));
  return 1;
}

// ------------------------------------------------------------------------------- nn-style ops

int f_conv2d(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1, "conv2d");
  const at::Tensor w = tensor_arg(L, 2, "conv2d");
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::optional<std::string> padding_mode;
  int64_t groups = 1;
  c10::optional<at::Tensor> bias;
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_istable(L, 3)) arg_error(L, "conv2d", 3, "an options table");
    check_keys(L, 3, caller(L, "conv2d").name.c_str(), {"stride", "padding", "dilation", "groups", "bias"});
    lua_getfield(L, 3, "stride");
    if (!lua_isnil(L, -1)) stride = pair_value(L, -1, "conv2d", "stride");
    lua_getfield(L, 3, "padding");
    if (lua_type(L, -1) == LUA_TSTRING) {
      padding_mode = lua_tostring(L, -1);
      if (*padding_mode != "same" && *padding_mode != "valid")
        fail(L, "conv2d", "padding must be a number, a pair, \"same\" or \"valid\", got \"" + *padding_mode + "\"");
    } else if (!lua_isnil(L, -1)) {
      padding = pair_value(L, -1, "conv2d", "padding");
    }
    lua_getfield(L, 3, "dilation");
    if (!lua_isnil(L, -1)) dilation = pair_value(L, -1, "conv2d", "dilation");
    lua_getfield(L, 3, "groups");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER || !is_integral(lua_tonumber(L, -1)) || lua_tonumber(L, -1) < 1)
        fail(L, "conv2d", "groups must be a positive integer, got " + got(L, -1));
      groups = static_cast<int64_t>(lua_tonumber(L, -1));
    }
    lua_getfield(L, 3, "bias");
    if (!lua_isnil(L, -1)) {
      at::Tensor* b = test_tensor(L, -1);
      if (!b) fail(L, "conv2d", "bias must be a tensor, got " + got(L, -1));
      bias = *b;
    }
    lua_pop(L, 5);
  }
  if (padding_mode)
    push_tensor(L, at::conv2d(x, w, bias, stride, *padding_mode, dilation, groups));
  else
    push_tensor(L, at::conv2d(x, w, bias, stride, padding, dilation, groups));
  return 1;
}

// Circular padding of dimension `d` by (left, right) elements, wrapping around.
at::Tensor circular(lua_State* L, const at::Tensor& x, int64_t d, int64_t left, int64_t right) {
  const int64_t n = x.size(d);
  if (left < 0 || right < 0) fail(L, "pad", "circular padding must be non-negative");
  if (left > n || right > n)
    fail(L, "pad", "circular padding (" + std::to_string(left) + ", " + std::to_string(right) +
                       ") is larger than the dimension of size " + std::to_string(n));
  return at::cat({x.narrow(d, n - left, left), x, x.narrow(d, 0, right)}, d);
}

int f_pad(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1, "pad");
  if (!lua_istable(L, 2)) arg_error(L, "pad", 2, "a table of paddings {left, right[, top, bottom[, front, back]]}");
  const auto pads = int_list(L, 2, "pad", "padding");
  if (pads.empty() || pads.size() % 2 != 0)
    fail(L, "pad", "the paddings must come in pairs ({left, right, top, bottom, ...}), got " +
                       std::to_string(pads.size()) + " values");
  if (static_cast<int64_t>(pads.size() / 2) > x.dim())
    fail(L, "pad", std::to_string(pads.size()) + " paddings for a " + std::to_string(x.dim()) + "-D tensor");
  if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TSTRING)
    arg_error(L, "pad", 3, "a mode (\"constant\", \"reflect\", \"replicate\" or \"circular\")");
  const std::string mode = lua_isnoneornil(L, 3) ? "constant" : lua_tostring(L, 3);
  if (mode == "constant") {
    const double value = lua_isnoneornil(L, 4) ? 0.0 : number_arg(L, 4, "pad");
    push_tensor(L, at::constant_pad_nd(x, pads, value));
  } else if (mode == "reflect" || mode == "replicate") {
    const bool reflect = mode == "reflect";
    const size_t k = pads.size() / 2;
    if (x.dim() < static_cast<int64_t>(k) + 1 || x.dim() > static_cast<int64_t>(k) + 2)
      fail(L, "pad", mode + " padding with " + std::to_string(pads.size()) + " values needs a " + std::to_string(k + 1) +
                         "-D or " + std::to_string(k + 2) + "-D tensor, got " + std::to_string(x.dim()) + "-D");
    at::Tensor y;
    if (k == 1) y = reflect ? at::reflection_pad1d(x, pads) : at::replication_pad1d(x, pads);
    else if (k == 2) y = reflect ? at::reflection_pad2d(x, pads) : at::replication_pad2d(x, pads);
    else if (k == 3) y = reflect ? at::reflection_pad3d(x, pads) : at::replication_pad3d(x, pads);
    else fail(L, "pad", mode + " padding supports 2, 4 or 6 values, got " + std::to_string(pads.size()));
    push_tensor(L, y);
  } else if (mode == "circular") {
    at::Tensor y = x;
    for (size_t k = 0; k < pads.size() / 2; ++k)
      y = circular(L, y, x.dim() - 1 - static_cast<int64_t>(k), pads[2 * k], pads[2 * k + 1]);
    push_tensor(L, y);
  } else {
    std::string msg = "unknown mode '" + mode + "'";
    const std::string hint = did_you_mean(mode, {"constant", "reflect", "replicate", "circular"});
    if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
    fail(L, "pad", msg + " (modes: constant, reflect, replicate, circular)");
  }
  return 1;
}

int f_avg_pool2d(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1, "avg_pool2d");
  const auto kernel = pair_value(L, 2, "avg_pool2d", "kernel size");
  const auto stride = lua_isnoneornil(L, 3) ? kernel : pair_value(L, 3, "avg_pool2d", "stride");
  const auto padding = lua_isnoneornil(L, 4) ? std::vector<int64_t>{0, 0} : pair_value(L, 4, "avg_pool2d", "padding");
  push_tensor(L, at::avg_pool2d(x, kernel, stride, padding));
  return 1;
}

// interpolate(x, {size = {h, w}} or {scale = s or {sh, sw}}, mode): 4-D (N, C, H, W) tensors.
int f_interpolate(lua_State* L) {
  const at::Tensor x = tensor_arg(L, 1, "interpolate");
  if (!lua_istable(L, 2)) arg_error(L, "interpolate", 2, "a table {size = {h, w}} or {scale = s}");
  check_keys(L, 2, caller(L, "interpolate").name.c_str(), {"size", "scale", "mode", "align_corners"});
  std::string mode = "nearest";
  lua_getfield(L, 2, "mode");
  if (lua_type(L, -1) == LUA_TSTRING) mode = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TSTRING) arg_error(L, "interpolate", 3, "a mode (\"nearest\", \"bilinear\" or \"bicubic\")");
    mode = lua_tostring(L, 3);
  }
  lua_getfield(L, 2, "align_corners");
  const bool align = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  if (x.dim() != 4) fail(L, "interpolate", "expected a 4-D (N, C, H, W) tensor, got " + std::to_string(x.dim()) + "-D");
  std::optional<std::vector<int64_t>> size;
  std::optional<std::vector<double>> scale;
  lua_getfield(L, 2, "size");
  if (!lua_isnil(L, -1)) size = pair_value(L, -1, "interpolate", "size");
  lua_getfield(L, 2, "scale");
  if (lua_type(L, -1) == LUA_TNUMBER) {
    scale = std::vector<double>{lua_tonumber(L, -1), lua_tonumber(L, -1)};
  } else if (lua_istable(L, -1) && lua_objlen(L, -1) == 2) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (lua_type(L, -2) != LUA_TNUMBER || lua_type(L, -1) != LUA_TNUMBER)
      fail(L, "interpolate", "scale must be a number or a table of two numbers");
    scale = std::vector<double>{lua_tonumber(L, -2), lua_tonumber(L, -1)};
    lua_pop(L, 2);
  } else if (!lua_isnil(L, -1)) {
    fail(L, "interpolate", "scale must be a number or a table of two numbers, got " + got(L, -1));
  }
  lua_pop(L, 2);
  if (size.has_value() == scale.has_value()) fail(L, "interpolate", "give exactly one of size = {h, w} and scale = s");
  at::OptionalIntArrayRef out_size = size ? at::OptionalIntArrayRef(*size) : c10::nullopt;
  c10::optional<at::ArrayRef<double>> factors = scale ? c10::optional<at::ArrayRef<double>>(*scale) : c10::nullopt;
  if (mode == "nearest")
    push_tensor(L, at::upsample_nearest2d(x, out_size, factors));
  else if (mode == "bilinear")
    push_tensor(L, at::upsample_bilinear2d(x, out_size, align, factors));
  else if (mode == "bicubic")
    push_tensor(L, at::upsample_bicubic2d(x, out_size, align, factors));
  else {
    std::string msg = "unknown mode '" + mode + "'";
    const std::string hint = did_you_mean(mode, {"nearest", "bilinear", "bicubic"});
    if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
    fail(L, "interpolate", msg + " (modes: nearest, bilinear, bicubic)");
  }
  return 1;
}

// ------------------------------------------------------------------------------- methods

at::Tensor& self(lua_State* L, const char* fn) {
  at::Tensor* t = test_tensor(L, 1);
  if (!t) arg_error(L, fn, 1, "a tensor");
  check_defined(L, fn, *t);
  return *t;
}

int m_shape(lua_State* L) {
  push_shape(L, self(L, "shape").sizes());
  return 1;
}

int m_size(lua_State* L) {
  const at::Tensor& t = self(L, "size");
  if (lua_isnoneornil(L, 2)) {
    push_shape(L, t.sizes());
    return 1;
  }
  if (t.dim() == 0) fail(L, "size", "a 0-dim tensor has no dimensions");
  lua_pushnumber(L, static_cast<lua_Number>(t.size(dim_arg(L, 2, "size", t.dim()))));
  return 1;
}

int m_dim(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(self(L, "dim").dim()));
  return 1;
}

int m_numel(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(self(L, "numel").numel()));
  return 1;
}

int m_dtype(lua_State* L) {
  lua_pushstring(L, dtype_name(self(L, "dtype").scalar_type()));
  return 1;
}

int m_device(lua_State* L) {
  lua_pushstring(L, self(L, "device").device().str().c_str());
  return 1;
}

int m_is_leaf(lua_State* L) {
  lua_pushboolean(L, self(L, "is_leaf").is_leaf());
  return 1;
}

// t:to("float64"), t:to("cpu"), t:to("cuda:0"), t:to(other) (dtype and device of other).
int m_to(lua_State* L) {
  const at::Tensor& t = self(L, "to");
  if (auto* other = test_tensor(L, 2)) {
    push_tensor(L, t.to(other->device(), other->scalar_type()));
    return 1;
  }
  if (lua_type(L, 2) != LUA_TSTRING) arg_error(L, "to", 2, "a dtype name, a device name or a tensor");
  const std::string s = lua_tostring(L, 2);
  if (auto type = parse_dtype(s)) {
    push_tensor(L, t.to(*type));
    return 1;
  }
  if (s == "cpu" || s.rfind("cuda", 0) == 0 || s.rfind("mps", 0) == 0) {
    push_tensor(L, t.to(c10::Device(s)));
    return 1;
  }
  check_dtype(L, "to", s);  // raises "unknown dtype" with a suggestion
  return 0;
}

int m_reshape(lua_State* L) {
  push_tensor(L, self(L, "reshape").reshape(int_list(L, 2, "reshape", "size")));
  return 1;
}

int m_view(lua_State* L) {
  push_tensor(L, self(L, "view").view(int_list(L, 2, "view", "size")));
  return 1;
}

int m_permute(lua_State* L) {
  const at::Tensor& t = self(L, "permute");
  auto dims = int_list(L, 2, "permute", "dimension");
  for (auto& d : dims) d = to_dim(L, "permute", d, t.dim());
  push_tensor(L, t.permute(dims));
  return 1;
}

int m_transpose(lua_State* L) {
  const at::Tensor& t = self(L, "transpose");
  push_tensor(L, t.transpose(dim_arg(L, 2, "transpose", t.dim()), dim_arg(L, 3, "transpose", t.dim())));
  return 1;
}

int m_squeeze(lua_State* L) {
  const at::Tensor& t = self(L, "squeeze");
  push_tensor(L, lua_isnoneornil(L, 2) ? t.squeeze() : t.squeeze(dim_arg(L, 2, "squeeze", t.dim())));
  return 1;
}

int m_unsqueeze(lua_State* L) {
  const at::Tensor& t = self(L, "unsqueeze");
  push_tensor(L, t.unsqueeze(dim_arg(L, 2, "unsqueeze", t.dim(), true)));
  return 1;
}

int m_flatten(lua_State* L) {
  const at::Tensor& t = self(L, "flatten");
  const int64_t a = lua_isnoneornil(L, 2) ? 0 : dim_arg(L, 2, "flatten", t.dim());
  const int64_t b = lua_isnoneornil(L, 3) ? -1 : dim_arg(L, 3, "flatten", t.dim());
  push_tensor(L, t.flatten(a, b));
  return 1;
}

int m_narrow(lua_State* L) {
  const at::Tensor& t = self(L, "narrow");
  const int64_t d = dim_arg(L, 2, "narrow", t.dim());
  const int64_t start = int_arg(L, 3, "narrow");
  const int64_t len = int_arg(L, 4, "narrow", "a length (a non-negative integer)");
  const int64_t size = t.dim() ? t.size(d) : 1;
  // One past the end is a valid start for an empty slice.
  const int64_t s0 = (start == size + 1 && len == 0) ? size : to_pos(L, "narrow", start, size, d + 1);
  if (len < 0 || s0 + len > size)
    fail(L, "narrow", "length " + std::to_string(len) + " from " + std::to_string(start) + " exceeds dimension " +
                          std::to_string(d + 1) + " of size " + std::to_string(size));
  push_tensor(L, t.narrow(d, s0, len));
  return 1;
}

int m_select(lua_State* L) {
  const at::Tensor& t = self(L, "select");
  if (t.dim() == 0) fail(L, "select", "cannot select from a 0-dim tensor");
  const int64_t d = dim_arg(L, 2, "select", t.dim());
  push_tensor(L, t.select(d, to_pos(L, "select", int_arg(L, 3, "select"), t.size(d), d + 1)));
  return 1;
}

// index_select(dim, idx): idx is a 0-based int64 tensor, or a Lua table of 1-based positions.
int m_index_select(lua_State* L) {
  const at::Tensor& t = self(L, "index_select");
  const int64_t d = dim_arg(L, 2, "index_select", t.dim());
  at::Tensor idx;
  if (auto* i = test_tensor(L, 3)) {
    idx = *i;
  } else if (lua_istable(L, 3)) {
    auto pos = int_list(L, 3, "index_select", "index");
    for (auto& p : pos) p = to_pos(L, "index_select", p, t.dim() ? t.size(d) : 1, d + 1);
    idx = at::tensor(pos, at::kLong);
  } else {
    arg_error(L, "index_select", 3, "an index tensor or a table of positions");
  }
  push_tensor(L, t.index_select(d, idx));
  return 1;
}

// ---- reductions: t:sum(), t:sum(dim), t:sum({d1, d2}), t:sum(dim, keepdim)

/// The dims of argument 2 (nil: all) converted to 0-based.
std::optional<std::vector<int64_t>> dims_arg(lua_State* L, const at::Tensor& t, const char* fn) {
  if (lua_isnoneornil(L, 2)) return std::nullopt;
  std::vector<int64_t> dims;
  if (lua_istable(L, 2)) {
    dims = int_list(L, 2, fn, "dimension");
    for (auto& d : dims) d = to_dim(L, fn, d, t.dim());
  } else {
    dims.push_back(dim_arg(L, 2, fn, t.dim()));
  }
  return dims;
}

std::vector<int64_t> all_dims(const at::Tensor& t) {
  std::vector<int64_t> d(static_cast<size_t>(t.dim()));
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<int64_t>(i);
  return d;
}

enum class Reduce { Sum, Mean, Std, Var, Norm };

template <Reduce R>
int reduce(lua_State* L, const char* fn) {
  const at::Tensor& t = self(L, fn);
  auto dims = dims_arg(L, t, fn);
  const bool keep = opt_bool_arg(L, 3, fn, false);
  if (!dims && keep) dims = all_dims(t);
  at::Tensor out;
  if (R == Reduce::Sum) out = dims ? at::sum(t, *dims, keep) : at::sum(t);
  if (R == Reduce::Mean) out = dims ? at::mean(t, *dims, keep) : at::mean(t);
  if (R == Reduce::Std || R == Reduce::Var) {
    const bool unbiased = opt_bool_arg(L, 4, fn, true);
    const at::OptionalIntArrayRef d = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    out = R == Reduce::Std ? at::std(t, d, unbiased, keep) : at::var(t, d, unbiased, keep);
  }
  if (R == Reduce::Norm) {
    const double p = lua_isnoneornil(L, 4) ? 2.0 : number_arg(L, 4, fn);
    out = dims ? at::norm(t, p, *dims, keep) : at::norm(t, p);
  }
  push_tensor(L, out);
  return 1;
}
int m_sum(lua_State* L) { return reduce<Reduce::Sum>(L, "sum"); }
int m_mean(lua_State* L) { return reduce<Reduce::Mean>(L, "mean"); }
int m_std(lua_State* L) { return reduce<Reduce::Std>(L, "std"); }
int m_var(lua_State* L) { return reduce<Reduce::Var>(L, "var"); }
int m_norm(lua_State* L) { return reduce<Reduce::Norm>(L, "norm"); }

int64_t single_dim(lua_State* L, const at::Tensor& t, const char* fn) {
  if (lua_istable(L, 2)) fail(L, fn, "reduces over one dimension at a time, got a table");
  return dim_arg(L, 2, fn, t.dim());
}

int m_prod(lua_State* L) {
  const at::Tensor& t = self(L, "prod");
  if (lua_isnoneornil(L, 2)) {
    push_tensor(L, at::prod(t));
    return 1;
  }
  push_tensor(L, at::prod(t, single_dim(L, t, "prod"), opt_bool_arg(L, 3, "prod", false)));
  return 1;
}

// t:max() -> 0-dim tensor; t:max(dim [, keepdim]) -> values, indices (0-based, int64).
template <bool Max>
int extreme(lua_State* L, const char* fn) {
  const at::Tensor& t = self(L, fn);
  if (lua_isnoneornil(L, 2)) {
    push_tensor(L, Max ? t.max() : t.min());
    return 1;
  }
  const int64_t d = single_dim(L, t, fn);
  const bool keep = opt_bool_arg(L, 3, fn, false);
  auto [values, indices] = Max ? at::max(t, d, keep) : at::min(t, d, keep);
  push_tensor(L, values);
  push_tensor(L, indices);
  return 2;
}
int m_max(lua_State* L) { return extreme<true>(L, "max"); }
int m_min(lua_State* L) { return extreme<false>(L, "min"); }

template <bool Max>
int arg_extreme(lua_State* L, const char* fn) {
  const at::Tensor& t = self(L, fn);
  c10::optional<int64_t> d;
  if (!lua_isnoneornil(L, 2)) d = single_dim(L, t, fn);
  const bool keep = opt_bool_arg(L, 3, fn, false);
  push_tensor(L, Max ? at::argmax(t, d, keep) : at::argmin(t, d, keep));
  return 1;
}
int m_argmax(lua_State* L) { return arg_extreme<true>(L, "argmax"); }
int m_argmin(lua_State* L) { return arg_extreme<false>(L, "argmin"); }

// ---- values

void push_scalar(lua_State* L, const at::Scalar& s) {
  if (s.isBoolean())
    lua_pushboolean(L, s.toBool());
  else if (s.isIntegral(false))
    lua_pushnumber(L, static_cast<lua_Number>(s.toLong()));
  else
    lua_pushnumber(L, s.toDouble());
}

int m_item(lua_State* L) {
  const at::Tensor& t = self(L, "item");
  if (t.numel() != 1)
    fail(L, "item", "needs a tensor with exactly one element, got shape " + shape_text(t.sizes()));
  push_scalar(L, t.item());
  return 1;
}

// Builds nested tables from a contiguous double (or bool) buffer.
template <class T>
void push_list(lua_State* L, const T* data, at::IntArrayRef sizes, size_t d, int64_t& offset) {
  luaL_checkstack(L, 3, "tolist");
  if (d == sizes.size()) {
    if constexpr (std::is_same_v<T, bool>)
      lua_pushboolean(L, data[offset]);
    else
      lua_pushnumber(L, static_cast<lua_Number>(data[offset]));
    ++offset;
    return;
  }
  lua_createtable(L, static_cast<int>(sizes[d]), 0);
  for (int64_t i = 0; i < sizes[d]; ++i) {
    push_list(L, data, sizes, d + 1, offset);
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
}

int m_tolist(lua_State* L) {
  const at::Tensor& t = self(L, "tolist");
  int64_t offset = 0;
  if (t.scalar_type() == at::kBool) {
    const at::Tensor c = t.detach().cpu().contiguous();
    push_list(L, c.data_ptr<bool>(), c.sizes(), 0, offset);
  } else if (at::isIntegralType(t.scalar_type(), false)) {
    const at::Tensor c = t.detach().cpu().to(at::kLong).contiguous();
    push_list(L, c.data_ptr<int64_t>(), c.sizes(), 0, offset);
  } else {
    const at::Tensor c = t.detach().cpu().to(at::kDouble).contiguous();
    push_list(L, c.data_ptr<double>(), c.sizes(), 0, offset);
  }
  return 1;
}

// ---- autograd

// t:requires_grad() -> boolean; t:requires_grad(b) -> t, with the flag set.
int m_requires_grad(lua_State* L) {
  at::Tensor& t = self(L, "requires_grad");
  if (lua_isnone(L, 2)) {
    lua_pushboolean(L, t.requires_grad());
    return 1;
  }
  if (!lua_isboolean(L, 2)) arg_error(L, "requires_grad", 2, "a boolean");
  t.set_requires_grad(lua_toboolean(L, 2) != 0);
  lua_settop(L, 1);
  return 1;
}

int m_backward(lua_State* L) {
  const at::Tensor& t = self(L, "backward");
  at::Tensor grad;
  if (!lua_isnoneornil(L, 2)) grad = tensor_arg(L, 2, "backward");
  const bool retain = opt_bool_arg(L, 3, "backward", false);
  t.backward(grad, retain);
  return 0;
}

int m_zero_grad(lua_State* L) {
  at::Tensor& t = self(L, "zero_grad");
  at::Tensor& g = t.mutable_grad();
  if (g.defined()) {
    at::NoGradGuard no_grad;
    if (g.requires_grad()) g = g.detach();
    g.zero_();
  }
  lua_settop(L, 1);
  return 1;
}

// ---- comparison of whole tensors

std::pair<at::Tensor, at::Tensor> promoted(const at::Tensor& a, const at::Tensor& b) {
  const auto type = at::result_type(a, b);
  return {a.detach().to(type), b.detach().to(type)};
}

int m_allclose(lua_State* L) {
  const at::Tensor& t = self(L, "allclose");
  const at::Tensor other = operand(L, 2, "allclose");
  const double rtol = lua_isnoneornil(L, 3) ? 1e-5 : number_arg(L, 3, "allclose");
  const double atol = lua_isnoneornil(L, 4) ? 1e-8 : number_arg(L, 4, "allclose");
  auto [a, b] = promoted(t, other);
  if (!at::isFloatingType(a.scalar_type())) a = a.to(at::kDouble), b = b.to(at::kDouble);
  lua_pushboolean(L, at::allclose(a, b, rtol, atol));
  return 1;
}

int m_equal(lua_State* L) {
  const at::Tensor& t = self(L, "equal");
  const at::Tensor other = tensor_arg(L, 2, "equal");
  if (t.sizes() != other.sizes()) {
    lua_pushboolean(L, false);
    return 1;
  }
  auto [a, b] = promoted(t, other);
  lua_pushboolean(L, at::equal(a, b));
  return 1;
}

// ------------------------------------------------------------------------------- metamethods

void append_value(std::string& s, const at::Tensor& flat, int64_t i) {
  const at::ScalarType type = flat.scalar_type();
  if (type == at::kBool) {
    s += flat.data_ptr<bool>()[i] ? "true" : "false";
  } else if (at::isIntegralType(type, false)) {
    s += std::to_string(flat.data_ptr<int64_t>()[i]);
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", flat.data_ptr<double>()[i]);
    s += buf;
  }
}

void append_values(std::string& s, const at::Tensor& flat, at::IntArrayRef sizes, size_t d, int64_t& i) {
  if (d == sizes.size()) {
    append_value(s, flat, i++);
    return;
  }
  s += "[";
  for (int64_t k = 0; k < sizes[d]; ++k) {
    if (k) s += d + 1 == sizes.size() ? ", " : ",\n" + std::string(d + 1, ' ');
    append_values(s, flat, sizes, d + 1, i);
  }
  s += "]";
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "tensor(undefined)";
  std::string s = std::string("tensor(") + dtype_name(t.scalar_type()) + ", " + shape_text(t.sizes()) + ", " +
                  t.device().str() + (t.requires_grad() ? ", requires_grad" : "") + ")";
  if (t.numel() > 64) return s;
  at::Tensor c = t.detach().cpu().contiguous();
  if (c.scalar_type() != at::kBool)
    c = c.to(at::isIntegralType(c.scalar_type(), false) ? at::kLong : at::kDouble);
  int64_t i = 0;
  s += t.dim() <= 1 ? " " : "\n";
  append_values(s, c, c.sizes(), 0, i);
  return s;
}

int meta_tostring(lua_State* L) {
  at::Tensor* t = test_tensor(L, 1);
  lua_pushstring(L, t ? describe(*t).c_str() : "tensor(?)");
  return 1;
}

int meta_concat(lua_State* L) {
  std::string s;
  for (int i = 1; i <= 2; ++i) {
    if (auto* t = test_tensor(L, i))
      s += describe(*t);
    else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER)
      s += lua_tostring(L, i);
    else
      throw std::runtime_error(std::string("cannot concatenate a tensor and a ") + luaL_typename(L, i));
  }
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

int meta_gc(lua_State* L) {
  // Type-checked: Lua code can call getmetatable(t).__gc with any value.
  if (auto* t = static_cast<at::Tensor*>(luaL_testudata(L, 1, kTensorMeta))) {
    g_tensor_bytes.fetch_sub(counted_bytes(*t));
    t->~Tensor();
    new (t) at::Tensor();  // stays a valid (undefined) tensor should anything still see it
  }
  return 0;
}

int meta_len(lua_State* L) {
  const at::Tensor& t = check_tensor(L, 1);
  if (t.dim() == 0) throw std::runtime_error("length of a 0-dim tensor (it has no dimensions)");
  lua_pushnumber(L, static_cast<lua_Number>(t.size(0)));
  return 1;
}

/// The 0-based row of dimension 1 for the Lua index at `idx` (t[i], t[-1]).
int64_t row_index(lua_State* L, const at::Tensor& t, int idx) {
  const double v = lua_tonumber(L, idx);
  if (!is_integral(v)) throw std::runtime_error("tensor index must be an integer, got " + number_text(v));
  if (t.dim() == 0) throw std::runtime_error("cannot index a 0-dim tensor (use t:item())");
  const auto i = static_cast<int64_t>(v);
  const int64_t size = t.size(0);
  if (i >= 1 && i <= size) return i - 1;
  if (i <= -1 && i >= -size) return size + i;
  throw std::runtime_error("index " + std::to_string(i) + " is out of range for dimension 1 of size " +
                           std::to_string(size) + (i == 0 ? " (indices are 1-based)" : ""));
}

std::vector<std::string> method_names(lua_State* L) {
  std::vector<std::string> names{"grad"};
  lua_pushnil(L);
  while (lua_next(L, lua_upvalueindex(1)) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) names.emplace_back(lua_tostring(L, -1));
  }
  return names;
}

// __index: t[i] (1-based row), t.grad, and methods (upvalue 1: the method table).
int meta_index(lua_State* L) {
  const at::Tensor& t = check_tensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    push_tensor(L, t.select(0, row_index(L, t, 2)));
    return 1;
  }
  if (lua_type(L, 2) != LUA_TSTRING)
    throw std::runtime_error(std::string("tensors are indexed by integers or method names, got ") + got(L, 2));
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  const std::string key = lua_tostring(L, 2);
  if (key == "grad") {
    push_or_nil(L, t.grad());
    return 1;
  }
  std::string msg = "tensor has no field '" + key + "'";
  const std::string hint = did_you_mean(key, method_names(L));
  if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
  throw std::runtime_error(msg);
}

// __newindex: t[i] = number or tensor (copied into row i); t.grad = tensor or nil.
int meta_newindex(lua_State* L) {
  at::Tensor& t = check_tensor(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING && std::strcmp(lua_tostring(L, 2), "grad") == 0) {
    if (lua_isnil(L, 3))
      t.mutable_grad() = at::Tensor();
    else if (auto* g = test_tensor(L, 3))
      t.mutable_grad() = *g;
    else
      throw std::runtime_error("t.grad must be set to a tensor or nil, got " + got(L, 3));
    return 0;
  }
  if (lua_type(L, 2) != LUA_TNUMBER)
    throw std::runtime_error(std::string("cannot set field ") + (lua_type(L, 2) == LUA_TSTRING ? "'" + std::string(lua_tostring(L, 2)) + "'" : got(L, 2)) +
                             " of a tensor (only t[i] = value and t.grad = g)");
  if (t.is_leaf() && t.requires_grad() && at::GradMode::is_enabled())
    throw std::runtime_error("cannot assign into a leaf tensor that requires grad (assign inside monge.no_grad, or "
                             "into a detached copy)");
  at::Tensor row = t.select(0, row_index(L, t, 2));
  if (lua_type(L, 3) == LUA_TNUMBER)
    row.fill_(number_scalar(lua_tonumber(L, 3)));
  else if (lua_isboolean(L, 3))
    row.fill_(at::Scalar(lua_toboolean(L, 3) != 0));
  else if (auto* v = test_tensor(L, 3))
    row.copy_(*v);
  else if (lua_istable(L, 3))
    row.copy_(TableReader(L, "").read(3, std::nullopt));
  else
    throw std::runtime_error("t[i] = value takes a number, a boolean, a table or a tensor, got " + got(L, 3));
  return 0;
}

// __call: makes t:grad() work while t.grad is a tensor (t.grad(t) returns the gradient itself).
int meta_call(lua_State* L) {
  const at::Tensor& g = check_tensor(L, 1);
  at::Tensor* owner = test_tensor(L, 2);
  if (owner && owner->defined() && owner->grad().defined() &&
      owner->grad().unsafeGetTensorImpl() == g.unsafeGetTensorImpl()) {
    lua_settop(L, 1);
    return 1;
  }
  throw std::runtime_error("a tensor is not callable");
}

// ------------------------------------------------------------------------------- registration

struct Entry {
  const char* name;
  lua_CFunction fn;
};

// Elementwise and nn-style functions: on the module table and as methods (self = argument 1).
const Entry kShared[] = {
    {"exp", &guard<f_exp>},         {"log", &guard<f_log>},
    {"sqrt", &guard<f_sqrt>},       {"abs", &guard<f_abs>},
    {"tanh", &guard<f_tanh>},       {"sigmoid", &guard<f_sigmoid>},
    {"relu", &guard<f_relu>},       {"sin", &guard<f_sin>},
    {"cos", &guard<f_cos>},         {"neg", &guard<f_neg>},
    {"clamp", &guard<f_clamp>},     {"pow", &guard<f_pow>},
    {"softplus", &guard<f_softplus>}, {"conv2d", &guard<f_conv2d>},
    {"pad", &guard<f_pad>},         {"avg_pool2d", &guard<f_avg_pool2d>},
    {"interpolate", &guard<f_interpolate>}, {"matmul", &guard<f_matmul>},
    {"where", &guard<f_where>},     {"add", &guard<f_add>},
    {"sub", &guard<f_sub>},         {"mul", &guard<f_mul>},
    {"div", &guard<f_div>},
};

// Module-only functions.
const Entry kModule[] = {
    {"tensor", &guard<f_tensor>},       {"zeros", &guard<f_zeros>},
    {"ones", &guard<f_ones>},           {"full", &guard<f_full>},
    {"rand", &guard<f_rand>},           {"randn", &guard<f_randn>},
    {"arange", &guard<f_arange>},       {"linspace", &guard<f_linspace>},
    {"cat", &guard<f_cat>},             {"stack", &guard<f_stack>},
    {"manual_seed", &guard<f_manual_seed>}, {"is_tensor", &guard<f_is_tensor>},
    {"set_threads", &guard<f_set_threads>}, {"threads", &guard<f_threads>},
    {"no_grad", &guard<f_no_grad>},     {"clock", &guard<f_clock>},
    {"did_you_mean", &guard<f_did_you_mean>},
};

// Methods only.
const Entry kMethods[] = {
    {"shape", &guard<m_shape>},       {"size", &guard<m_size>},
    {"dim", &guard<m_dim>},           {"numel", &guard<m_numel>},
    {"dtype", &guard<m_dtype>},       {"device", &guard<m_device>},
    {"is_leaf", &guard<m_is_leaf>},   {"to", &guard<m_to>},
    {"float", &guard<f_float>},       {"double", &guard<f_double>},
    {"long", &guard<f_long>},         {"bool", &guard<f_bool>},
    {"clone", &guard<f_clone>},       {"detach", &guard<f_detach>},
    {"contiguous", &guard<f_contiguous>}, {"reshape", &guard<m_reshape>},
    {"view", &guard<m_view>},         {"permute", &guard<m_permute>},
    {"transpose", &guard<m_transpose>}, {"squeeze", &guard<m_squeeze>},
    {"unsqueeze", &guard<m_unsqueeze>}, {"flatten", &guard<m_flatten>},
    {"narrow", &guard<m_narrow>},     {"select", &guard<m_select>},
    {"index_select", &guard<m_index_select>}, {"sum", &guard<m_sum>},
    {"mean", &guard<m_mean>},         {"std", &guard<m_std>},
    {"var", &guard<m_var>},           {"prod", &guard<m_prod>},
    {"norm", &guard<m_norm>},         {"max", &guard<m_max>},
    {"min", &guard<m_min>},           {"argmax", &guard<m_argmax>},
    {"argmin", &guard<m_argmin>},     {"item", &guard<m_item>},
    {"tolist", &guard<m_tolist>},     {"requires_grad", &guard<m_requires_grad>},
    {"backward", &guard<m_backward>}, {"zero_grad", &guard<m_zero_grad>},
    {"allclose", &guard<m_allclose>}, {"equal", &guard<m_equal>},
    {"gt", &guard<f_gt>},             {"lt", &guard<f_lt>},
    {"ge", &guard<f_ge>},             {"le", &guard<f_le>},
    {"eq", &guard<f_eq>},             {"ne", &guard<f_ne>},
};

bool is_module_function(const char* name) {
  for (const auto& e : kShared)
    if (std::strcmp(e.name, name) == 0) return true;
  for (const auto& e : kModule)
    if (std::strcmp(e.name, name) == 0) return true;
  return false;
}

void set_entries(lua_State* L, const Entry* begin, const Entry* end) {
  for (const Entry* e = begin; e != end; ++e) {
    lua_pushcfunction(L, e->fn);
    lua_setfield(L, -2, e->name);
  }
}

/// Pushes the "monge.Tensor" metatable, creating it on first use.
void push_metatable(lua_State* L) {
  if (luaL_newmetatable(L, kTensorMeta) == 0) return;
  const int mt = lua_gettop(L);
  lua_newtable(L);  // methods
  set_entries(L, std::begin(kShared), std::end(kShared));
  set_entries(L, std::begin(kMethods), std::end(kMethods));
  lua_pushvalue(L, -1);
  lua_setfield(L, mt, "methods");  // reached from Lua as monge.Tensor
  lua_pushcclosure(L, &guard<meta_index>, 1);
  lua_setfield(L, mt, "__index");
  const Entry meta[] = {
      {"__gc", &meta_gc},
      {"__tostring", &guard<meta_tostring>},
      {"__concat", &guard<meta_concat>},
      {"__len", &guard<meta_len>},
      {"__newindex", &guard<meta_newindex>},
      {"__call", &guard<meta_call>},
      {"__unm", &guard<meta_unm>},
      {"__add", &guard<meta_binary<Binary::Add>>},
      {"__sub", &guard<meta_binary<Binary::Sub>>},
      {"__mul", &guard<meta_binary<Binary::Mul>>},
      {"__div", &guard<meta_binary<Binary::Div>>},
      {"__pow", &guard<meta_binary<Binary::Pow>>},
  };
  set_entries(L, std::begin(meta), std::end(meta));
  lua_pushstring(L, "monge.Tensor");
  lua_setfield(L, mt, "__name");
}

}  // namespace

void open_tensor(lua_State* L) {
  luaL_checkstack(L, 4, "open_tensor");
  push_metatable(L);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Tensor");  // monge.Tensor: the method table, open to additions from Lua
  lua_pop(L, 1);
  set_entries(L, std::begin(kShared), std::end(kShared));
  set_entries(L, std::begin(kModule), std::end(kModule));
}

void push_tensor(lua_State* L, at::Tensor t) {
  if (!t.defined()) {
    lua_pushnil(L);
    return;
  }
  const int64_t bytes = counted_bytes(t);
  void* p = lua_newuserdata(L, sizeof(at::Tensor));
  new (p) at::Tensor(std::move(t));
  push_metatable(L);
  lua_setmetatable(L, -2);
  account(L, bytes);
}

at::Tensor* test_tensor(lua_State* L, int index) {
  // push_tensor never pushes an undefined tensor: one is a tensor whose __gc ran.
  return test_box_alive<at::Tensor>(L, index, kTensorMeta, "tensor", [](const at::Tensor& t) { return t.defined(); });
}

at::Tensor& check_tensor(lua_State* L, int index) {
  if (at::Tensor* t = test_tensor(L, index)) return *t;
  lua_Debug ar;
  std::string name;
  int narg = index;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar)) {
    if (ar.name) name = std::string(ar.name) + ": ";
    if (ar.namewhat && std::strcmp(ar.namewhat, "method") == 0) --narg;
  }
  const std::string g = got(L, index);
  const std::string which = narg == 0 ? "self" : "argument " + std::to_string(narg);
  luaL_error(L, "%s%s must be a tensor, got %s", name.c_str(), which.c_str(), g.c_str());
  throw std::logic_error("unreachable");  // luaL_error does not return
}

at::Tensor to_tensor(lua_State* L, int index) {
  if (at::Tensor* t = test_tensor(L, index)) return *t;
  switch (lua_type(L, index)) {
    case LUA_TNUMBER: return at::scalar_tensor(lua_tonumber(L, index), at::kFloat);
    case LUA_TBOOLEAN: return at::scalar_tensor(lua_toboolean(L, index) != 0, at::kBool);
    case LUA_TTABLE: return TableReader(L, "").read(index, std::nullopt);
    default:
      throw std::runtime_error(std::string("expected a tensor, a number or a table of numbers, got ") +
                               got(L, index));
  }
}

at::Tensor tensor_field(lua_State* L, int index, const char* key, const char* who, bool required) {
  lua_getfield(L, index, key);
  at::Tensor out;
  if (!lua_isnil(L, -1)) {
    at::Tensor* t = test_tensor(L, -1);
    if (!t) {
      const std::string got = luaL_typename(L, -1);
      lua_pop(L, 1);
      throw std::runtime_error(std::string(who) + ": '" + key + "' must be a tensor, got " + got);
    }
    out = *t;
  } else if (required) {
    lua_pop(L, 1);
    throw std::runtime_error(std::string(who) + ": '" + key + "' (a tensor) is required");
  }
  lua_pop(L, 1);
  return out;
}

}  // namespace monge::lua
