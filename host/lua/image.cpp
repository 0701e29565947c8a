// Lua bindings for images: monge.image.load / save / grid.

#include <ATen/ATen.h>

#include "host/image/vips_io.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/tensor.hpp"

namespace monge::lua {

namespace {

int l_load(lua_State* L) {
  push_tensor(L, image::load(luaL_checkstring(L, 1)));
  return 1;
}

// monge.image.save(t, path): t is C x H x W, H x W, or a batch N x C x H x W (saved as a grid).
int l_save(lua_State* L) {
  at::Tensor t = check_tensor(L, 1);
  const char* path = luaL_checkstring(L, 2);
  if (t.dim() == 4) t = image::grid(t, 8, 2, 1.0);
  image::save(t, path);
  return 0;
}

// monge.image.grid(batch, { nrow = 8, padding = 2, pad_value = 1 }) -> C x H' x W'
int l_grid(lua_State* L) {
  const at::Tensor& batch = check_tensor(L, 1);
  int64_t nrow = 8, padding = 2;
  double pad_value = 1.0;
  if (lua_istable(L, 2)) {
    check_keys(L, 2, "monge.image.grid", {"nrow", "padding", "pad_value"});
    nrow = static_cast<int64_t>(opt_number_field(L, 2, "nrow", 8));
    padding = static_cast<int64_t>(opt_number_field(L, 2, "padding", 2));
    pad_value = opt_number_field(L, 2, "pad_value", 1.0);
  }
  push_tensor(L, image::grid(batch, nrow, padding, pad_value));
  return 1;
}

}  // namespace

void open_image(lua_State* L) {
  get_or_create_table(L, -1, "image");
  set_function<l_load>(L, "load");
  set_function<l_save>(L, "save");
  set_function<l_grid>(L, "grid");
  lua_pushboolean(L, image::available());
  lua_setfield(L, -2, "available");
  lua_pop(L, 1);
}

}  // namespace monge::lua
