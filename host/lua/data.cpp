// Lua bindings for datasets: monge.data.*

#include <ATen/ATen.h>

#include "host/data/idx.hpp"
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

int l_fashion_mnist_dir(lua_State* L) {
  lua_pushstring(L, data::fashion_mnist_dir().string().c_str());
  return 1;
}

}  // namespace

void open_data(lua_State* L) {
  get_or_create_table(L, -1, "data");
  set_function<l_idx>(L, "idx");
  set_function<l_fashion_mnist_dir>(L, "fashion_mnist_dir");
  lua_pop(L, 1);
}

}  // namespace monge::lua
