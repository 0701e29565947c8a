// Lua bindings for training and maps: monge.train{...}, monge.load_map(path), map objects.

#include <cmath>
#include <cstring>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "host/apply/apply.hpp"
#include "host/apply/options.hpp"
#include "host/apply/batch.hpp"
#include "host/apply/stream.hpp"
#include "host/core/cpu_cache.hpp"
#include "host/core/cpu_features.hpp"
#include "host/core/device.hpp"
#include "host/core/registry.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/option_tables.hpp"
#include "host/lua/tensor.hpp"
#include "host/train/distributed.hpp"
#include "host/train/options.hpp"
#include "host/train/trainer.hpp"
#include "monge/image_metrics.hpp"

namespace monge::lua {

namespace {

constexpr const char* kMapMeta = "monge.Map";

struct MapBox {
  host::LoadedMap map;
  std::string path;
};

MapBox& check_map(lua_State* L, int index) {
  auto* box = test_box_alive<MapBox>(L, index, kMapMeta, "map", [](const MapBox& b) { return b.map.module != nullptr; });
  if (!box) throw std::runtime_error("expected a map (from monge.train or monge.load_map), got " + std::string(luaL_typename(L, index)));
  return *box;
}

void push_map(lua_State* L, MapBox box) {
  new (lua_newuserdata(L, sizeof(MapBox))) MapBox(std::move(box));
  luaL_getmetatable(L, kMapMeta);
  lua_setmetatable(L, -2);
}

// Field `key` of the options table at 1 as a plugin of `kind`; nullopt when absent.
std::optional<PluginRef> plugin_field(lua_State* L, const char* key, Kind kind, bool required) {
  lua_getfield(L, 1, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (required) throw std::runtime_error(std::string("monge.train: '") + key + "' (a " + kind_name(kind) + ") is required");
    return std::nullopt;
  }
  auto ref = test_plugin_ref(L, -1);
  lua_pop(L, 1);
  if (!ref || ref->object->kind() != kind)
    throw std::runtime_error(std::string("monge.train: '") + key + "' must be a " + kind_name(kind) + " object");
  return ref;
}

// A plugin object with parameters (made by the global registry) as a map file records it.
host::PluginSpec recorded(const PluginRef& ref) {
  return host::PluginSpec{ref.name, *ref.params, host::Registry::global().find(ref.name).version};
}

// monge.train's table at index 1 as a TrainConfig: keys, types, ranges and defaults from the
// declaration (host/train/options.cpp); the plugin objects are read again for their names and
// parameters, the tensors here only.
host::TrainConfig train_config(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  host::TrainConfig c;
  const Params p = table_options(L, 1, host::train_options(), "monge.train");
  host::set_train_options(p, c);
  auto op = plugin_field(L, "operator", Kind::Operator, true);
  c.op = std::dynamic_pointer_cast<ForwardOperator>(op->object);
  if (op->params) c.op_spec = recorded(*op);
  if (auto noise = plugin_field(L, "noise", Kind::Noise, false)) {
    c.noise = std::dynamic_pointer_cast<NoiseModel>(noise->object);
    if (noise->params) c.noise_spec = recorded(*noise);
  }
  auto map = plugin_field(L, "map", Kind::Network, true);
  if (!map->params) throw std::runtime_error("monge.train: 'map' must be a network plugin");
  c.map_net = std::dynamic_pointer_cast<Network>(map->object);
  c.map_spec = recorded(*map);
  c.potential_net = std::dynamic_pointer_cast<Network>(plugin_field(L, "potential", Kind::Network, true)->object);
  auto solver = plugin_field(L, "solver", Kind::Solver, true);
  c.solver = std::dynamic_pointer_cast<Solver>(solver->object);
  c.solver_name = solver->name;
  c.cost = std::dynamic_pointer_cast<Cost>(plugin_field(L, "cost", Kind::Cost, true)->object);
  c.clean = tensor_field(L, 1, "clean", "monge.train");
  c.measured = tensor_field(L, 1, "measured", "monge.train");
  c.eval_clean = tensor_field(L, 1, "eval", "monge.train");
  if (!(c.dist_timeout > 0)) throw std::runtime_error("monge.train: 'dist_timeout' must be a positive number of seconds");

  return c;
}

// The trained map as monge.load_map would give it: the network with its operator, lift, noise
// and tiling described.
host::LoadedMap trained_map(const host::TrainConfig& c, const host::TrainResult& r) {
  host::LoadedMap trained;
  trained.module = r.map;
  trained.op = c.op;
  trained.info.network = c.map_spec;
  trained.info.shape = r.shape;
  trained.info.latent_channels = r.latent_channels;
  trained.info.input_noise = r.input_noise;
  trained.info.op = c.op_spec;
  if (auto* w = dynamic_cast<const host::wiener::WienerLift*>(c.op.get())) trained.info.lift = w->model();
  trained.info.noise = c.noise ? c.noise_spec : std::optional<host::PluginSpec>(host::PluginSpec{"none", Params{}});
  host::describe_tiling(trained, c.map_net);
  return trained;
}

// The result table of monge.train: map, map_path, iterations, seconds, its_per_second, evals,
// stats, warnings and rollbacks.
void push_train_result(lua_State* L, const host::TrainConfig& c, const host::TrainResult& r) {
  lua_createtable(L, 0, 9);
  push_map(L, MapBox{trained_map(c, r), r.map_path.string()});
  lua_setfield(L, -2, "map");
  lua_pushstring(L, r.map_path.string().c_str());
  lua_setfield(L, -2, "map_path");
  lua_pushnumber(L, static_cast<lua_Number>(r.iterations));
  lua_setfield(L, -2, "iterations");
  lua_pushnumber(L, r.seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushnumber(L, r.seconds > 0 ? r.iterations / r.seconds : 0);
  lua_setfield(L, -2, "its_per_second");
  lua_createtable(L, static_cast<int>(r.evals.size()), 0);
  for (size_t i = 0; i < r.evals.size(); ++i) {
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, static_cast<lua_Number>(r.evals[i].iteration));
    lua_setfield(L, -2, "iter");
    lua_pushnumber(L, r.evals[i].psnr_degraded);
    lua_setfield(L, -2, "psnr_degraded");
    lua_pushnumber(L, r.evals[i].psnr_restored);
    lua_setfield(L, -2, "psnr");
    lua_pushnumber(L, r.evals[i].ssim_degraded);
    lua_setfield(L, -2, "ssim_degraded");
    lua_pushnumber(L, r.evals[i].ssim_restored);
    lua_setfield(L, -2, "ssim");
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_setfield(L, -2, "evals");
  push_table(L, r.last_stats);
  lua_setfield(L, -2, "stats");
  lua_createtable(L, static_cast<int>(r.warnings.size()), 0);
  for (size_t i = 0; i < r.warnings.size(); ++i) {
    lua_pushstring(L, r.warnings[i].c_str());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_setfield(L, -2, "warnings");
  lua_pushnumber(L, static_cast<lua_Number>(r.rollbacks));
  lua_setfield(L, -2, "rollbacks");
}

int l_train(lua_State* L) {
  const host::TrainConfig c = train_config(L);
  const host::TrainResult r = host::train(c);
  push_train_result(L, c, r);
  return 1;
}

// monge.load_map(path [, { trust_code = true }]): trust_code also reads maps that are programs
// (formats 1 and 2, TorchScript modules; host::LoadOptions).
int l_load_map(lua_State* L) {
  const std::string path = luaL_checkstring(L, 1);
  host::LoadOptions options;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "monge.load_map", {"trust_code"});
    lua_getfield(L, 2, "trust_code");
    options.trust_code = lua_toboolean(L, -1) != 0;
    lua_pop(L, 1);
  }
  host::LoadedMap m = host::load_map(path, host::Registry::global(), options);
  push_map(L, MapBox{m, path});
  return 1;
}

c10::Device module_device(Module& module) {
  const auto param = module.parameters();
  return param.empty() ? c10::Device(c10::kCPU) : param.front().device();
}

// map:restore(y [, { strength = s, precision = "fp32", layout = "auto" }]): T(Q(y)) clamped to
// [-1, 1], without gradients; at strength s below 1, Q(y) + s (T(Q(y)) - Q(y)); the network in
// fp32 (the default here), bf16 or auto, in the layout asked for (as monge.apply).
int m_restore(lua_State* L) {
  MapBox& box = check_map(L, 1);
  at::Tensor y = to_tensor(L, 2);
  if (y.dim() != 4) throw std::runtime_error("map:restore: expected an N x C x H x W tensor of measurements");
  double strength = 1;
  std::string precision = "fp32", layout = "auto";
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    check_keys(L, 3, "map:restore", {"strength", "precision", "layout"});
    strength = opt_number_field(L, 3, "strength", 1);
    precision = opt_string_field(L, 3, "precision", precision);
    layout = opt_string_field(L, 3, "layout", layout);
  }
  host::check_strength(strength, *box.map.module, box.map.info, "map:restore");
  const c10::Device device = module_device(*box.map.module);
  const host::Precision p =
      host::resolve_precision(host::parse_precision(precision, "map:restore: precision"), device, "map:restore");
  const host::Layout l = host::parse_layout(layout, "map:restore: layout");
  push_tensor(L, host::restore(*box.map.module, box.map.op.get(), y, device, 256, strength, p, l).to(y.device()));
  return 1;
}

// map:forward(q): the network on an already lifted input, with autograd.
int m_forward(lua_State* L) {
  push_tensor(L, check_map(L, 1).map.module->forward(to_tensor(L, 2)));
  return 1;
}

// map:sample(y): the map on measurements y as apply uses it: Q(y + s n) for a smoothed map, the
// latent z of a stochastic one; with autograd and not clamped (unlike restore).
int m_sample(lua_State* L) {
  MapBox& box = check_map(L, 1);
  Module& module = *box.map.module;
  push_tensor(L, module.forward(host::map_input(module, box.map.op.get(), to_tensor(L, 2))));
  return 1;
}

// map:to(device): moves the network to "cpu", "cuda" or "auto" (CUDA when available); returns the map.
int m_to(lua_State* L) {
  MapBox& box = check_map(L, 1);
  const std::string name = luaL_optstring(L, 2, "auto");
  box.map.module->to(host::resolve_device(name, "map:to"));
  lua_settop(L, 1);
  return 1;
}

int m_parameters(lua_State* L) {
  int64_t n = 0;
  for (const auto& p : check_map(L, 1).map.module->parameters()) n += p.numel();
  lua_pushnumber(L, static_cast<lua_Number>(n));
  return 1;
}

// map:reseed(seed): restarts a stochastic map's stream of noise (latent z or input noise; the same
// seed gives the same samples).
int m_reseed(lua_State* L) {
  MapBox& box = check_map(L, 1);
  auto* latent = dynamic_cast<host::StochasticMap*>(box.map.module.get());
  if (!latent) throw std::runtime_error("map:reseed: this map is deterministic (it takes no latent noise z and no input noise)");
  const lua_Number seed = luaL_checknumber(L, 2);
  if (!(seed >= 0) || seed != std::floor(seed)) throw std::runtime_error("map:reseed: the seed must be an integer >= 0");
  latent->reseed(static_cast<uint64_t>(seed));
  return 0;
}

// The fields of a map, in the order its "no field" error lists them.
const Field<MapBox> kMapFields[] = {
    {"path", [](lua_State* L, MapBox& box) { lua_pushstring(L, box.path.c_str()); }},
    {"network", [](lua_State* L, MapBox& box) { lua_pushstring(L, box.map.info.network.name.c_str()); }},
    {"operator",
     [](lua_State* L, MapBox& box) {
       // The operator whose lift the map applies (nil for a TorchScript map or one trained without).
       if (!box.map.op) lua_pushnil(L);
       else if (box.map.info.op)
         push_plugin(L, box.map.op, box.map.info.op->name, std::make_shared<Params>(box.map.info.op->params));
       else
         push_plugin(L, box.map.op, "operator");
     }},
    {"notes", [](lua_State* L, MapBox& box) { push_table(L, box.map.info.notes); }},
    {"metrics", [](lua_State* L, MapBox& box) { push_table(L, box.map.info.metrics); }},
    {"device", [](lua_State* L, MapBox& box) { lua_pushstring(L, module_device(*box.map.module).str().c_str()); }},
    {"latent",
     [](lua_State* L, MapBox& box) { lua_pushnumber(L, static_cast<lua_Number>(box.map.info.latent_channels)); }},
    {"input_noise", [](lua_State* L, MapBox& box) { lua_pushnumber(L, box.map.info.input_noise); }},
    {"noise",
     [](lua_State* L, MapBox& box) {
       // The noise model it was trained with, as a spec "name:key=value,..." ("none"); nil: not recorded.
       if (box.map.info.noise) lua_pushstring(L, host::plugin_spec_text(*box.map.info.noise).c_str());
       else lua_pushnil(L);
     }},
    {"restore", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_restore>); }},
    {"forward", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_forward>); }},
    {"sample", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_sample>); }},
    {"to", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_to>); }},
    {"parameters", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_parameters>); }},
    {"reseed", [](lua_State* L, MapBox&) { lua_pushcfunction(L, &guard<m_reseed>); }},
};

int mt_index(lua_State* L) { return push_field(L, check_map(L, 1), "map", luaL_checkstring(L, 2), kMapFields); }

int mt_gc(lua_State* L) {
  return gc_box<MapBox>(L, kMapMeta);
}

int mt_tostring(lua_State* L) {
  MapBox& box = check_map(L, 1);
  lua_pushfstring(L, "map %s (%s)", box.map.info.network.name.c_str(), box.path.c_str());
  return 1;
}

// monge.metrics.psnr(a, b) / monge.metrics.ssim(a, b): batch means on [0, 1] (see monge/image_metrics.hpp).
int l_psnr(lua_State* L) {
  lua_pushnumber(L, image_metrics::psnr(to_tensor(L, 1), to_tensor(L, 2)));
  return 1;
}

int l_ssim(lua_State* L) {
  lua_pushnumber(L, image_metrics::ssim(to_tensor(L, 1), to_tensor(L, 2)));
  return 1;
}

// The map of options table field "map": a map object or a map file path (loaded into `holder`).
const host::LoadedMap& map_field(lua_State* L, const char* who, host::LoadedMap& holder) {
  lua_getfield(L, 1, "map");
  const host::LoadedMap* map = nullptr;
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_getfield(L, 1, "trust_code");
    const bool trust = lua_toboolean(L, -1) != 0;
    lua_pop(L, 1);
    holder = host::load_map(lua_tostring(L, -1), host::Registry::global(), {trust});
    map = &holder;
  } else if (!lua_isnil(L, -1)) {
    map = &check_map(L, -1).map;
  }
  lua_pop(L, 1);
  if (!map) throw std::runtime_error(std::string(who) + ": 'map' (a map or a map file path) is required");
  return *map;
}

// Readies `map` for monge.apply and monge.batch: moved to the streaming options' device; `seed`,
// when given, reseeds a stochastic map's noise and is an error for another map.
void ready_map(lua_State* L, const Params& p, const host::LoadedMap& map, const host::StreamOptions& o, const char* who) {
  lua_getfield(L, 1, "seed");
  const bool seeded = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (seeded) {
    auto* stochastic = dynamic_cast<host::StochasticMap*>(map.module.get());
    if (!stochastic) throw std::runtime_error(std::string(who) + ": 'seed' seeds a stochastic map's noise; this map is deterministic");
    stochastic->reseed(static_cast<uint64_t>(p.integer("seed")));
  }
  if (o.device != module_device(*map.module)) map.module->to(o.device);
}

void set_numbers(lua_State* L, std::initializer_list<std::pair<const char*, double>> fields) {
  for (const auto& [k, v] : fields) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
  }
}

// monge.apply{ map = m, input = "in.tif", output = "out.tif", tile = 512, ... }: the streaming,
// tiled apply of `monge apply` (host/apply/stream.hpp); returns a table describing what was done.
int l_apply(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const Params p = table_options(L, 1, host::apply_options(), "monge.apply", {"map", "input", "output"});
  host::LoadedMap holder;
  const host::LoadedMap& map = map_field(L, "monge.apply", holder);
  const std::string input = opt_string_field(L, 1, "input", ""), output = opt_string_field(L, 1, "output", "");
  if (input.empty() || output.empty()) throw std::runtime_error("monge.apply: 'input' and 'output' (file paths) are required");
  const host::StreamOptions o = host::stream_options(p, "monge.apply");
  ready_map(L, p, map, o, "monge.apply");
  const host::StreamReport r = host::apply_stream(map, input, output, o);
  lua_createtable(L, 0, 10);
  set_numbers(L, {{"width", double(r.out_width)},   {"height", double(r.out_height)}, {"in_width", double(r.in_width)},
                  {"in_height", double(r.in_height)}, {"bands", double(r.bands)},      {"seconds", r.seconds},
                  {"tile", double(r.plan.tile)},    {"halo", double(r.plan.halo)}, {"nonfinite", double(r.nonfinite)}});
  lua_pushboolean(L, r.plan.blend ? 0 : 1);
  lua_setfield(L, -2, "exact");
  lua_pushstring(L, r.plan.why.c_str());
  lua_setfield(L, -2, "plan");
  lua_pushstring(L, host::precision_name(r.plan.precision));
  lua_setfield(L, -2, "precision");
  return 1;
}

// monge.batch{ map = m, inputs = { "scans/", "more.tar" }, out = "restored", shard = "0/2", ... }
int l_batch(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const Params p = table_options(L, 1, host::batch_options(), "monge.batch", {"map", "inputs"});
  host::LoadedMap holder;
  const host::LoadedMap& map = map_field(L, "monge.batch", holder);
  const host::BatchOptions o = host::batch_options(p, "monge.batch");
  ready_map(L, p, map, o.apply, "monge.batch");
  const host::BatchReport r = host::run_batch(map, strings_field(L, 1, "inputs", "monge.batch"), o);
  lua_createtable(L, 0, 9);
  set_numbers(L, {{"found", double(r.found)},   {"mine", double(r.mine)},   {"already", double(r.already)},
                  {"ok", double(r.ok)},         {"failed", double(r.failed)}, {"failed_before", double(r.failed_before)},
                  {"seconds", r.seconds},       {"mpix", r.mpix}});
  lua_pushstring(L, r.manifest.string().c_str());
  lua_setfield(L, -2, "manifest");
  lua_pushstring(L, host::precision_name(r.precision));
  lua_setfield(L, -2, "precision");
  return 1;
}

// This process's place in a data-parallel job (torchrun or Slurm variables; 0 of 1 otherwise).
int l_rank(lua_State* L) {
  lua_pushinteger(L, host::dist_env().rank);
  return 1;
}
int l_world_size(lua_State* L) {
  lua_pushinteger(L, host::dist_env().world);
  return 1;
}
int l_local_rank(lua_State* L) {
  lua_pushinteger(L, host::dist_env().local_rank);
  return 1;
}

int l_cuda_available(lua_State* L) {
  lua_pushboolean(L, torch::cuda::is_available());
  return 1;
}

// monge.cpu_bf16(): whether bf16 training (precision = "bf16") runs on this CPU, and whether its
// bf16 is native (what inference's precision "auto" and "bf16" need).
int l_cpu_bf16(lua_State* L) {
  lua_pushboolean(L, host::cpu_bf16_kernels());
  lua_pushboolean(L, host::cpu_bf16_native());
  return 2;
}

// monge.cpu_cache([{ limit_mb = N }]): the CPU tensor cache (host/core/cpu_cache.hpp) as a table
// { installed, limit_mb, cached_mb, in_use_mb, hits, misses, released }; with limit_mb, sets the
// limit first (0: keep nothing cached; the monge executable installs the cache at start).
int l_cpu_cache(lua_State* L) {
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    check_keys(L, 1, "monge.cpu_cache", {"limit_mb"});
    const double mb = opt_number_field(L, 1, "limit_mb", -1);
    if (!(mb >= 0 && mb <= double(size_t{1} << 24)) || mb != std::floor(mb))
      throw std::runtime_error("monge.cpu_cache: limit_mb must be a whole number of MiB (0: cache nothing)");
    host::install_cpu_cache(static_cast<size_t>(mb) << 20);
  }
  const host::CpuCacheStats s = host::cpu_cache_stats();
  lua_createtable(L, 0, 7);
  lua_pushboolean(L, s.installed);
  lua_setfield(L, -2, "installed");
  constexpr double kMiB = 1 << 20;
  set_numbers(L, {{"limit_mb", double(s.limit) / kMiB}, {"cached_mb", double(s.cached) / kMiB},
                  {"in_use_mb", double(s.in_use) / kMiB}, {"hits", double(s.hits)}, {"misses", double(s.misses)},
                  {"released", double(s.released)}});
  return 1;
}

// monge.setenv(NAME, VALUE | nil): sets (or, with nil, removes) an environment variable of this
// process, seen by what reads it at each use (MONGE_ONEDNN) and by the processes it starts.
int l_setenv(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  if (*name == '\0' || std::strchr(name, '=') != nullptr)
    throw std::runtime_error(std::string("monge.setenv: not a variable name: '") + name + "'");
  const int rc = lua_isnoneornil(L, 2) ? unsetenv(name) : setenv(name, luaL_checkstring(L, 2), 1);
  if (rc != 0) throw std::runtime_error(std::string("monge.setenv: cannot set ") + name);
  return 0;
}

}  // namespace

void open_train(lua_State* L) {
  new_object_metatable<mt_index, mt_tostring, mt_gc>(L, kMapMeta);
  lua_pop(L, 1);
  set_function<l_train>(L, "train");
  set_function<l_load_map>(L, "load_map");
  set_function<l_apply>(L, "apply");
  set_function<l_batch>(L, "batch");
  set_function<l_cuda_available>(L, "cuda_available");
  set_function<l_cpu_bf16>(L, "cpu_bf16");
  set_function<l_cpu_cache>(L, "cpu_cache");
  set_function<l_setenv>(L, "setenv");
  set_function<l_rank>(L, "rank");
  set_function<l_world_size>(L, "world_size");
  set_function<l_local_rank>(L, "local_rank");
  get_or_create_table(L, -1, "metrics");
  set_function<l_psnr>(L, "psnr");
  set_function<l_ssim>(L, "ssim");
  lua_pop(L, 1);
}

}  // namespace monge::lua
