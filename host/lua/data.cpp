// Lua bindings for datasets: monge.data.*

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <vector>

#include "host/data/idx.hpp"
#include "host/data/image_folder.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/tensor.hpp"

namespace monge::lua {

namespace {

// monge.data.idx{ images = path, labels = path, limit = n } -> { images = [N,1,H,W], labels = [N], count = N }
int l_idx(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.data.idx", {"images", "labels", "limit"});
  const std::string images = opt_string_field(L, 1, "images", "");
  const std::string labels = opt_string_field(L, 1, "labels", "");
  const auto limit = static_cast<int64_t>(opt_number_field(L, 1, "limit", 0));
  if (images.empty()) throw std::runtime_error("monge.data.idx: 'images' (path to an IDX image file) is required");
  at::Tensor x = data::read_idx_images(images, limit);
  lua_createtable(L, 0, 3);
  push_tensor(L, x);
  lua_setfield(L, -2, "images");
  if (!labels.empty()) {
    at::Tensor y = data::read_idx(labels, limit).to(at::kLong);
    if (y.dim() != 1 || y.size(0) != x.size(0))
      throw std::runtime_error("monge.data.idx: " + labels + " holds " + std::to_string(y.size(0)) +
                               " labels for " + std::to_string(x.size(0)) + " images");
    push_tensor(L, y);
    lua_setfield(L, -2, "labels");
  }
  lua_pushnumber(L, static_cast<lua_Number>(x.size(0)));
  lua_setfield(L, -2, "count");
  return 1;
}

// Reads field `key` of the table at `index` as a number table {v1, v2, ...}.
std::vector<double> number_list(lua_State* L, int index, const char* key) {
  std::vector<double> out;
  lua_getfield(L, index, key);
  if (lua_istable(L, -1)) {
    const int n = static_cast<int>(lua_objlen(L, -1));
    for (int i = 1; i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      out.push_back(lua_tonumber(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return out;
}

at::Generator seeded(lua_Number seed) {
  return at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
}

// monge.data.images{ dir | list | files, channels, size = {h, w}, crops, seed, limit, recursive, skip_bad }
int l_images(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.data.images",
             {"dir", "list", "files", "channels", "size", "crops", "seed", "limit", "recursive", "skip_bad", "extensions"});
  data::ImageFolderOptions o;
  o.dir = opt_string_field(L, 1, "dir", "");
  o.list = opt_string_field(L, 1, "list", "");
  lua_getfield(L, 1, "files");
  if (lua_istable(L, -1))
    for (int i = 1; i <= static_cast<int>(lua_objlen(L, -1)); ++i) {
      lua_rawgeti(L, -1, i);
      o.files.emplace_back(luaL_checkstring(L, -1));
      lua_pop(L, 1);
    }
  lua_pop(L, 1);
  lua_getfield(L, 1, "extensions");
  if (lua_istable(L, -1)) {
    o.extensions.clear();
    for (int i = 1; i <= static_cast<int>(lua_objlen(L, -1)); ++i) {
      lua_rawgeti(L, -1, i);
      std::string e = luaL_checkstring(L, -1);
      o.extensions.push_back(e.empty() || e[0] == '.' ? e : "." + e);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  o.channels = static_cast<int64_t>(opt_number_field(L, 1, "channels", 0));
  const auto size = number_list(L, 1, "size");
  if (!size.empty()) {
    if (size.size() != 2) throw std::runtime_error("monge.data.images: size must be {height, width}");
    o.crop_height = static_cast<int64_t>(size[0]);
    o.crop_width = static_cast<int64_t>(size[1]);
  }
  o.crops = static_cast<int64_t>(opt_number_field(L, 1, "crops", 1));
  o.seed = static_cast<uint64_t>(opt_number_field(L, 1, "seed", 0));
  o.limit = static_cast<int64_t>(opt_number_field(L, 1, "limit", 0));
  lua_getfield(L, 1, "recursive");
  o.recursive = lua_toboolean(L, -1) != 0;
  lua_getfield(L, 1, "skip_bad");
  o.skip_bad = lua_toboolean(L, -1) != 0;
  lua_pop(L, 2);
  data::ImageSet set = data::load_images(o);
  lua_createtable(L, 0, 4);
  push_tensor(L, set.images);
  lua_setfield(L, -2, "images");
  lua_pushnumber(L, static_cast<lua_Number>(set.images.size(0)));
  lua_setfield(L, -2, "count");
  for (const auto* list : {&set.files, &set.skipped}) {
    lua_createtable(L, static_cast<int>(list->size()), 0);
    for (size_t i = 0; i < list->size(); ++i) {
      lua_pushstring(L, (*list)[i].c_str());
      lua_rawseti(L, -2, static_cast<int>(i + 1));
    }
    lua_setfield(L, -2, list == &set.files ? "files" : "skipped");
  }
  return 1;
}

// monge.data.split(n, {parts}, seed) -> index tensors (0-based, for index_select): a seeded
// permutation of 0..n-1 cut into consecutive parts. Parts are fractions (summing to at most 1) or
// counts (summing to at most n).
int l_split(lua_State* L) {
  const auto n = static_cast<int64_t>(luaL_checknumber(L, 1));
  luaL_checktype(L, 2, LUA_TTABLE);
  const auto seed = luaL_optnumber(L, 3, 0);
  if (n < 1) throw std::runtime_error("monge.data.split: n must be at least 1");
  std::vector<double> parts;
  for (int i = 1; i <= static_cast<int>(lua_objlen(L, 2)); ++i) {
    lua_rawgeti(L, 2, i);
    parts.push_back(lua_tonumber(L, -1));
    lua_pop(L, 1);
  }
  if (parts.empty()) throw std::runtime_error("monge.data.split: give the parts, e.g. {0.5, 0.5} or {1000, 500}");
  double total = 0;
  bool fractions = true;
  for (double p : parts) {
    if (!(p >= 0)) throw std::runtime_error("monge.data.split: parts must be non-negative");
    total += p;
    if (p > 1) fractions = false;
  }
  std::vector<int64_t> counts;
  for (double p : parts) counts.push_back(fractions ? static_cast<int64_t>(std::floor(p * n + 1e-9)) : static_cast<int64_t>(p));
  int64_t used = 0;
  for (int64_t c : counts) used += c;
  if ((fractions && total > 1 + 1e-9) || used > n)
    throw std::runtime_error("monge.data.split: the parts ask for " + std::to_string(used) + " of " + std::to_string(n) +
                             " items (fractions must sum to at most 1, counts to at most n)");
  at::Generator gen = seeded(seed);
  const at::Tensor perm = at::randperm(n, gen, at::kLong);
  lua_createtable(L, static_cast<int>(counts.size()), 0);
  int64_t start = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    push_tensor(L, perm.narrow(0, start, counts[i]).clone());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
    start += counts[i];
  }
  return 1;
}

// monge.data.reweight{ labels = t, weights = {[label] = w, ...}, count = n, seed = s } -> indices
// (0-based, with replacement) whose class frequencies follow the weights; classes not named get 0.
int l_reweight(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.data.reweight", {"labels", "weights", "count", "seed"});
  lua_getfield(L, 1, "labels");
  const at::Tensor labels = to_tensor(L, -1).to(at::kLong).reshape({-1});
  lua_pop(L, 1);
  std::map<int64_t, double> weights;
  lua_getfield(L, 1, "weights");
  if (!lua_istable(L, -1)) throw std::runtime_error("monge.data.reweight: 'weights' must be a table {[label] = weight}");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) != LUA_TNUMBER || lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 0)
      throw std::runtime_error("monge.data.reweight: weights must map labels (numbers) to non-negative numbers");
    weights[static_cast<int64_t>(lua_tonumber(L, -2))] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  const auto count = static_cast<int64_t>(opt_number_field(L, 1, "count", static_cast<double>(labels.numel())));
  at::Generator gen = seeded(opt_number_field(L, 1, "seed", 0));
  // Per-sample probability: class weight / class size.
  at::Tensor p = at::zeros({labels.numel()}, at::kDouble);
  for (const auto& [label, w] : weights) {
    const at::Tensor in = labels.eq(label);
    const int64_t size = in.sum().item<int64_t>();
    if (size == 0 && w > 0)
      throw std::runtime_error("monge.data.reweight: class " + std::to_string(label) + " has weight " + std::to_string(w) +
                               " but no samples");
    if (size > 0) p.masked_fill_(in, w / static_cast<double>(size));
  }
  if (!(p.sum().item<double>() > 0)) throw std::runtime_error("monge.data.reweight: all weights are zero");
  push_tensor(L, at::multinomial(p, count, /*replacement=*/true, gen));
  return 1;
}

// monge.data.mix{ {images = t1, weight = w1}, {images = t2, weight = w2}, count = n, seed = s }:
// n images, each from source i with probability proportional to w_i, uniformly within it.
int l_mix(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const int sources = static_cast<int>(lua_objlen(L, 1));
  if (sources < 1) throw std::runtime_error("monge.data.mix: give sources { {images = t, weight = w}, ... }");
  std::vector<at::Tensor> sets;
  std::vector<double> w;
  for (int i = 1; i <= sources; ++i) {
    lua_rawgeti(L, 1, i);
    if (!lua_istable(L, -1)) throw std::runtime_error("monge.data.mix: source " + std::to_string(i) + " must be a table");
    lua_getfield(L, -1, "images");
    sets.push_back(to_tensor(L, -1));
    lua_pop(L, 1);
    w.push_back(opt_number_field(L, lua_gettop(L), "weight", 1));
    lua_pop(L, 1);
    if (sets.back().dim() != 4 || sets.back().size(0) == 0 || sets.back().sizes().slice(1) != sets.front().sizes().slice(1))
      throw std::runtime_error("monge.data.mix: source " + std::to_string(i) +
                               " must be a non-empty N x C x H x W tensor shaped like the first");
    if (!(w.back() >= 0)) throw std::runtime_error("monge.data.mix: weights must be non-negative");
  }
  const auto count = static_cast<int64_t>(opt_number_field(L, 1, "count", static_cast<double>(sets.front().size(0))));
  at::Generator gen = seeded(opt_number_field(L, 1, "seed", 0));
  const at::Tensor which = at::multinomial(at::tensor(w, at::kDouble), count, true, gen);
  std::vector<at::Tensor> picked;
  for (int i = 0; i < sources; ++i) {
    const int64_t k = which.eq(i).sum().item<int64_t>();
    if (k > 0) picked.push_back(sets[i].index_select(0, at::randint(sets[i].size(0), {k}, gen, at::kLong)));
  }
  at::Tensor out = at::cat(picked, 0);
  push_tensor(L, out.index_select(0, at::randperm(out.size(0), gen, at::kLong)));
  return 1;
}

// monge.data.classes(set, {labels...}): the samples of a { images, labels } set whose label is listed.
int l_classes(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 1, "images");
  const at::Tensor images = to_tensor(L, -1);
  lua_getfield(L, 1, "labels");
  if (lua_isnil(L, -1)) throw std::runtime_error("monge.data.classes: the set has no labels");
  const at::Tensor labels = to_tensor(L, -1).to(at::kLong);
  lua_pop(L, 2);
  at::Tensor keep = at::zeros_like(labels, at::kBool);
  for (int i = 1; i <= static_cast<int>(lua_objlen(L, 2)); ++i) {
    lua_rawgeti(L, 2, i);
    keep.logical_or_(labels.eq(static_cast<int64_t>(lua_tonumber(L, -1))));
    lua_pop(L, 1);
  }
  const at::Tensor index = keep.nonzero().reshape({-1});
  if (index.numel() == 0) throw std::runtime_error("monge.data.classes: no sample has any of the listed labels");
  lua_createtable(L, 0, 3);
  push_tensor(L, images.index_select(0, index));
  lua_setfield(L, -2, "images");
  push_tensor(L, labels.index_select(0, index));
  lua_setfield(L, -2, "labels");
  lua_pushnumber(L, static_cast<lua_Number>(index.numel()));
  lua_setfield(L, -2, "count");
  return 1;
}

int l_fashion_mnist_dir(lua_State* L) {
  lua_pushstring(L, data::fashion_mnist_dir().string().c_str());
  return 1;
}

}  // namespace

void open_data(lua_State* L) {
  get_or_create_table(L, -1, "data");
  set_function<l_idx>(L, "idx");
  set_function<l_fashion_mnist_dir>(L, "fashion_mnist_dir");
  set_function<l_images>(L, "images");
  set_function<l_split>(L, "split");
  set_function<l_reweight>(L, "reweight");
  set_function<l_mix>(L, "mix");
  set_function<l_classes>(L, "classes");
  lua_pop(L, 1);
}

}  // namespace monge::lua
