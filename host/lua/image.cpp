// Lua bindings for images: monge.image.load / save / grid / header / synthetic / difference.

#include <ATen/ATen.h>

#include "host/image/vips_io.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/tensor.hpp"

namespace monge::lua {

namespace {

// monge.image.load(path [, { max_pixels = N, nan = "error" }]): N defaults to
// image::kLoadMaxPixels (0: no limit); nan = "replace" reads NaN/-Inf as 0 and +Inf as 1.
int l_load(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  int64_t max_pixels = image::kLoadMaxPixels;
  image::NonFinite nonfinite = image::NonFinite::Error;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "monge.image.load", {"max_pixels", "nan"});
    nonfinite = image::parse_nonfinite(opt_string_field(L, 2, "nan", "error"), "monge.image.load: nan");
    const double v = opt_number_field(L, 2, "max_pixels", double(max_pixels));
    if (!(v >= 0 && v <= 9e18)) throw std::runtime_error("monge.image.load: max_pixels must be a number of pixels (0: no limit)");
    max_pixels = static_cast<int64_t>(v);
  }
  push_tensor(L, image::load(path, max_pixels, nonfinite));
  return 1;
}

// monge.image.save(t, path [, { bits = 8 }]): t is C x H x W, H x W, or a batch N x C x H x W
// (saved as a grid); bits 8, 16 or 32 (float).
int l_save(lua_State* L) {
  at::Tensor t = check_tensor(L, 1);
  const char* path = luaL_checkstring(L, 2);
  int bits = 8;
  if (lua_istable(L, 3)) {
    check_keys(L, 3, "monge.image.save", {"bits"});
    bits = static_cast<int>(opt_number_field(L, 3, "bits", 8));
  }
  if (t.dim() == 4) t = image::grid(t, 8, 2, 1.0);
  image::save(t, path, bits);
  return 0;
}

// monge.image.header(path) -> { width, height, bands, format, alpha }, from the header only.
int l_header(lua_State* L) {
  const image::Header h = image::header(luaL_checkstring(L, 1));
  lua_createtable(L, 0, 5);
  lua_pushnumber(L, static_cast<lua_Number>(h.width));
  lua_setfield(L, -2, "width");
  lua_pushnumber(L, static_cast<lua_Number>(h.height));
  lua_setfield(L, -2, "height");
  lua_pushnumber(L, static_cast<lua_Number>(h.bands));
  lua_setfield(L, -2, "bands");
  lua_pushstring(L, h.format.c_str());
  lua_setfield(L, -2, "format");
  lua_pushboolean(L, h.alpha);
  lua_setfield(L, -2, "alpha");
  return 1;
}

// monge.image.difference(a, b) -> { samples, max, mean, p99, p999, within1, histogram }: how two
// 8- or 16-bit files of one size and format differ sample by sample, in levels (one streaming
// pass); histogram[d + 1] counts the samples d levels apart (an int64 tensor).
int l_difference(lua_State* L) {
  const image::Difference d = image::difference(luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  const double within1 = d.samples > 0 ? double(d.histogram[0] + (d.histogram.size() > 1 ? d.histogram[1] : 0)) / double(d.samples) : 1.0;
  lua_createtable(L, 0, 7);
  for (const auto& [key, value] : {std::pair<const char*, double>{"samples", double(d.samples)}, {"max", double(d.max())},
                                   {"mean", d.mean()}, {"p99", double(d.quantile(0.99))}, {"p999", double(d.quantile(0.999))},
                                   {"within1", within1}}) {
    lua_pushnumber(L, value);
    lua_setfield(L, -2, key);
  }
  push_tensor(L, at::tensor(d.histogram, at::kLong));
  lua_setfield(L, -2, "histogram");
  return 1;
}

// monge.image.synthetic{ file = "big.tif[tile,bigtiff]", width = w, height = h, bands = 1, seed = 0 }
int l_synthetic(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.image.synthetic", {"file", "width", "height", "bands", "seed"});
  const std::string file = opt_string_field(L, 1, "file", "");
  if (file.empty()) throw std::runtime_error("monge.image.synthetic: 'file' is required");
  image::synthetic(file, static_cast<int64_t>(opt_number_field(L, 1, "width", 0)),
                   static_cast<int64_t>(opt_number_field(L, 1, "height", 0)),
                   static_cast<int64_t>(opt_number_field(L, 1, "bands", 1)),
                   static_cast<uint64_t>(opt_number_field(L, 1, "seed", 0)));
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
  set_function<l_header>(L, "header");
  set_function<l_synthetic>(L, "synthetic");
  set_function<l_difference>(L, "difference");
  lua_pushboolean(L, image::available());
  lua_setfield(L, -2, "available");
  lua_pop(L, 1);
}

}  // namespace monge::lua
