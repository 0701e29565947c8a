#include "host/map/map_file.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>

#include <torch/script.h>
#include <torch/torch.h>

#include "host/core/alloc_budget.hpp"
#include "host/core/temp_files.hpp"
#include "host/core/text.hpp"
#include "host/map/param_records.hpp"
#include "host/map/tensor_file.hpp"
#include "monge/version.hpp"

namespace fs = std::filesystem;

namespace monge::host {

namespace {

c10::IValue to_ivalue(const Params& params, const std::string& owner) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [key, value] : params.values()) {
    if (auto b = std::get_if<bool>(&value)) dict.insert(key, *b);
    else if (auto i = std::get_if<int64_t>(&value)) dict.insert(key, *i);
    else if (auto d = std::get_if<double>(&value)) dict.insert(key, *d);
    else if (auto s = std::get_if<std::string>(&value)) dict.insert(key, *s);
    else if (auto l = std::get_if<std::vector<double>>(&value)) dict.insert(key, c10::List<double>(*l));
    else if (std::holds_alternative<std::monostate>(value)) continue;
    else throw Error(owner + ": parameter '" + key + "' holds an object, which a map file cannot record");
  }
  return dict;
}

// A TorchScript module (e.g. a map trained in PyTorch and saved with torch.jit.save) as a map. Its
// parameters are registered here too, so they are counted and moved with the module.
class ScriptedMap final : public Module {
 public:
  explicit ScriptedMap(torch::jit::Module m) : module_(std::move(m)) {
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      std::string name = p.name;
      for (char& ch : name)
        if (ch == '.') ch = '_';
      register_parameter(name, p.value, p.value.requires_grad());
    }
  }
  at::Tensor forward(const at::Tensor& x) override {
    c10::IValue out = module_.forward({x});
    if (!out.isTensor()) throw Error("TorchScript map: forward() must return one tensor");
    return out.toTensor();
  }
  void train(bool on) override {
    Module::train(on);
    module_.train(on);
  }

 private:
  torch::jit::Module module_;
};

ParamMap to_param_map(const c10::IValue& v) {
  ParamMap out;
  for (const auto& entry : v.toGenericDict()) {
    const std::string key = entry.key().toStringRef();
    const c10::IValue& val = entry.value();
    if (val.isBool()) out[key] = val.toBool();
    else if (val.isInt()) out[key] = val.toInt();
    else if (val.isDouble()) out[key] = val.toDouble();
    else if (val.isString()) out[key] = val.toStringRef();
    else if (val.isDoubleList()) out[key] = val.toDoubleVector();
  }
  return out;
}

c10::IValue string_map(const std::map<std::string, std::string>& m) {
  c10::Dict<std::string, std::string> dict;
  for (const auto& [k, v] : m) dict.insert(k, v);
  return dict;
}

using nlohmann::json;

json spec_json(const PluginSpec& spec) { return host::spec_json(spec.name, spec.version, spec.params); }

// A member of the header that must have type `check`, or an error naming it.
template <typename T>
T member(const json& j, const char* key, bool (json::*check)() const noexcept, const char* type) {
  const auto it = j.find(key);
  if (it == j.end() || !((*it).*check)()) throw Error(std::string("'") + key + "' must be " + type);
  return it->get<T>();
}

// Completes a lift whose tensors and numbers are read (the derived fields) and checks that it fits
// a map of `channels` channels and scale factor `scale`.
std::shared_ptr<const wiener::Lift> finish_lift(std::shared_ptr<wiener::Lift> lift, int64_t channels, int64_t scale) {
  const bool fitted = lift->kind == wiener::LiftKind::Fitted;
  std::vector<const at::Tensor*> records{&lift->filter.weight};
  if (fitted) records.push_back(&lift->filter.mean);
  else records.insert(records.end(), {&lift->response.taps, &lift->prior.mean, &lift->prior.autocov});
  for (const at::Tensor* t : records)
    if (!at::isfinite(*t).all().item<bool>()) throw Error("the lift records hold NaN or infinite values");
  if (!(lift->noise_variance >= 0 && std::isfinite(lift->noise_variance))) throw Error("bad lift noise variance");
  auto& f = lift->filter;
  const int64_t k = 2 * f.radius + 1;
  if (fitted) {
    // y -> mean + filter(Q0(y)): the bias per channel in `mean`, no gain; only for scale factor 1,
    // as recorded and as the map's operator has it.
    const bool scale_one = lift->response.scale == 1 && std::max<int64_t>(1, scale) == 1;
    f.scale = 1;
    f.gain = 0;
    if (!(scale_one && f.mean.size(0) == channels && f.radius >= 0 && f.radius <= 4096 &&
          f.weight.sizes() == at::IntArrayRef{channels, 1, k, k}))
      throw Error("the lift records do not fit the map (channels, scale factor or filter size)");
    return lift;
  }
  lift->response.radius = (lift->response.taps.size(0) - 1) / 2;
  lift->prior.lag = (lift->prior.autocov.size(1) - 1) / 2;
  f.scale = lift->response.scale;
  f.mean = lift->prior.mean;
  const auto& r = lift->response;
  const int64_t s = r.scale;
  const bool ok = r.taps.size(0) == r.taps.size(1) && r.taps.size(0) % 2 == 1 && s == std::max<int64_t>(1, scale) &&
                  lift->prior.mean.size(0) == channels &&
                  lift->prior.autocov.sizes() == at::IntArrayRef{channels, 2 * lift->prior.lag + 1, 2 * lift->prior.lag + 1} &&
                  f.radius >= 0 && f.radius <= 4096 && f.weight.sizes() == at::IntArrayRef{channels * s * s, 1, k, k};
  if (!ok) throw Error("the lift records do not fit the map (channels, scale factor or filter size)");
  f.gain = lift->response.gain();
  return lift;
}

// The lift's records in a map file of format 1 or 2 (a PyTorch archive).
std::shared_ptr<const wiener::Lift> read_lift(torch::serialize::InputArchive& archive, int64_t channels, int64_t scale) {
  auto lift = std::make_shared<wiener::Lift>();
  c10::IValue v;
  auto tensor = [&](const char* key, at::ScalarType dtype, int64_t dims) {
    at::Tensor t;
    archive.read(key, t);
    if (t.scalar_type() != dtype || t.dim() != dims) throw Error(std::string("bad ") + key + " record");
    return t.contiguous();
  };
  lift->response.taps = tensor("lift_response", at::kDouble, 2);
  archive.read("lift_scale", v);
  lift->response.scale = v.toInt();
  lift->prior.mean = tensor("lift_mean", at::kDouble, 1);
  lift->prior.autocov = tensor("lift_autocov", at::kDouble, 3);
  archive.read("lift_noise_variance", v);
  lift->noise_variance = v.toDouble();
  lift->filter.weight = tensor("lift_filter", at::kFloat, 4);
  archive.read("lift_filter_radius", v);
  lift->filter.radius = v.toInt();
  return finish_lift(lift, channels, scale);
}

// Bounds on a map file's records: what an honest map needs many times over, so that a hostile
// file cannot make monge allocate without limit before its weights are compared with the network.
constexpr int64_t kMaxChannels = 4096, kMaxScale = 64, kMaxSide = int64_t{1} << 20, kMaxLiftValues = int64_t{1} << 24;

// The lift's records in a map file of format 3: numbers in the header's "lift" object, tensors
// named lift.*.
std::shared_ptr<const wiener::Lift> read_lift(const json& j, const tensor_file::TensorFile& file, int64_t channels,
                                              int64_t scale) {
  if (!j.is_object()) throw Error("the lift record must be an object");
  const auto kind = member<std::string>(j, "kind", &json::is_string, "a string");
  if (kind != "wiener" && kind != "fitted")
    throw Error("unknown lift record '" + kind + "' (this monge knows the lift kinds 'wiener' and 'fitted')");
  auto lift = std::make_shared<wiener::Lift>();
  lift->kind = kind == "fitted" ? wiener::LiftKind::Fitted : wiener::LiftKind::Wiener;
  lift->response.scale = member<int64_t>(j, "scale", &json::is_number_integer, "an integer");
  lift->noise_variance = member<double>(j, "noise_variance", &json::is_number, "a number");
  lift->filter.radius = member<int64_t>(j, "filter_radius", &json::is_number_integer, "an integer");
  if (lift->response.scale < 1 || lift->response.scale > kMaxScale || lift->filter.radius < 0 || lift->filter.radius > 4096)
    throw Error("the lift's scale or filter radius is out of range");
  if (lift->kind == wiener::LiftKind::Fitted) {
    lift->filter.mean = file.take_any("lift.mean", at::kDouble, 1, kMaxLiftValues);
    lift->filter.weight = file.take_any("lift.filter", at::kFloat, 4, kMaxLiftValues);
    return finish_lift(lift, channels, scale);
  }
  lift->response.taps = file.take_any("lift.response", at::kDouble, 2, kMaxLiftValues);
  lift->prior.mean = file.take_any("lift.mean", at::kDouble, 1, kMaxLiftValues);
  lift->prior.autocov = file.take_any("lift.autocov", at::kDouble, 3, kMaxLiftValues);
  lift->filter.weight = file.take_any("lift.filter", at::kFloat, 4, kMaxLiftValues);
  return finish_lift(lift, channels, scale);
}

// The network's tensors as a map file names them: "weights.<parameter or buffer name>". A
// stochastic map's file holds its network alone: load_map() wraps it again.
std::vector<std::pair<std::string, at::Tensor>> weight_tensors(Module& module) {
  Module* net = &module;
  if (auto* stochastic = dynamic_cast<StochasticMap*>(&module)) net = stochastic->network().get();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : net->named_parameters(/*recurse=*/true)) out.emplace_back("weights." + p.key(), p.value());
  for (const auto& b : net->named_buffers(/*recurse=*/true)) out.emplace_back("weights." + b.key(), b.value());
  return out;
}

}  // namespace

std::string encode_map(Module& module, const MapInfo& info) {
  json header = {{"monge_map_format", kMapFormat},
                 {"monge_version", std::string(kVersion)},
                 {"network", spec_json(info.network)},
                 {"shape", {info.shape.in_channels, info.shape.out_channels, info.shape.scale, info.shape.height, info.shape.width}}};
  if (info.op) header["operator"] = spec_json(*info.op);
  auto tensors = weight_tensors(module);
  if (info.lift) {
    const wiener::Lift& l = *info.lift;
    const bool fitted = l.kind == wiener::LiftKind::Fitted;
    header["lift"] = {{"kind", fitted ? "fitted" : "wiener"},
                      {"scale", l.filter.scale},
                      {"noise_variance", l.noise_variance},
                      {"filter_radius", l.filter.radius}};
    if (fitted) {
      tensors.emplace_back("lift.mean", l.filter.mean);
    } else {
      tensors.emplace_back("lift.response", l.response.taps);
      tensors.emplace_back("lift.mean", l.prior.mean);
      tensors.emplace_back("lift.autocov", l.prior.autocov);
    }
    tensors.emplace_back("lift.filter", l.filter.weight);
  }
  if (info.noise) header["noise"] = spec_json(*info.noise);
  if (info.latent_channels > 0) header["latent_channels"] = info.latent_channels;
  if (info.input_noise > 0) header["input_noise"] = info.input_noise;
  header["notes"] = info.notes;
  json metrics = json::object();
  // JSON has no NaN: a metric that is not a number is written as null and read back as NaN.
  for (const auto& [k, v] : info.metrics) metrics[k] = std::isfinite(v) ? json(v) : json(nullptr);
  header["metrics"] = std::move(metrics);
  return tensor_file::encode(std::move(header), tensors);
}

void save_map(const fs::path& file, Module& module, const MapInfo& info) {
  const std::string bytes = encode_map(module, info);
  write_atomically(file, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw Error("write failed");
  });
}

void save_map_legacy(const fs::path& file, Module& module, const MapInfo& info) {
  if (info.lift && info.lift->kind != wiener::LiftKind::Wiener)
    throw Error("map format 2 records only Wiener lifts; a fitted lift needs format 3 (save_map)");
  torch::serialize::OutputArchive archive;
  archive.write("monge_map_format", c10::IValue(info.lift ? int64_t{2} : int64_t{1}));
  archive.write("monge_version", c10::IValue(std::string(kVersion)));
  archive.write("network", c10::IValue(info.network.name));
  archive.write("network_params", to_ivalue(info.network.params, info.network.name));
  archive.write("shape", c10::IValue(std::vector<int64_t>{info.shape.in_channels, info.shape.out_channels,
                                                          info.shape.scale, info.shape.height, info.shape.width}));
  if (info.op) {
    archive.write("operator", c10::IValue(info.op->name));
    archive.write("operator_params", to_ivalue(info.op->params, info.op->name));
  }
  if (info.lift) {
    const wiener::Lift& lift = *info.lift;
    archive.write("lift", c10::IValue(std::string("wiener")));
    archive.write("lift_response", lift.response.taps);
    archive.write("lift_scale", c10::IValue(lift.response.scale));
    archive.write("lift_mean", lift.prior.mean);
    archive.write("lift_autocov", lift.prior.autocov);
    archive.write("lift_noise_variance", c10::IValue(lift.noise_variance));
    archive.write("lift_filter", lift.filter.weight);
    archive.write("lift_filter_radius", c10::IValue(lift.filter.radius));
  }
  if (info.noise) {
    archive.write("noise", c10::IValue(info.noise->name));
    archive.write("noise_params", to_ivalue(info.noise->params, info.noise->name));
  }
  if (info.latent_channels > 0) archive.write("latent_channels", c10::IValue(info.latent_channels));
  if (info.input_noise > 0) archive.write("input_noise", c10::IValue(info.input_noise));
  archive.write("notes", string_map(info.notes));
  c10::Dict<std::string, double> metrics;
  for (const auto& [k, v] : info.metrics) metrics.insert(k, v);
  archive.write("metrics", c10::IValue(metrics));
  torch::serialize::OutputArchive weights;
  if (auto* stochastic = dynamic_cast<StochasticMap*>(&module)) stochastic->network()->save(weights);
  else module.save(weights);
  archive.write("weights", weights);
  write_atomically(file, [&](const std::string& tmp) { archive.save_to(tmp); });
}

std::string plugin_spec_text(const PluginSpec& spec) {
  std::string out = spec.name;
  char sep = ':';
  for (const auto& [key, value] : spec.params.values()) {
    std::string text;
    if (auto b = std::get_if<bool>(&value)) text = *b ? "true" : "false";
    else if (auto i = std::get_if<int64_t>(&value)) text = std::to_string(*i);
    else if (auto d = std::get_if<double>(&value)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", *d);
      text = buf;
      // The shortest text that reads back as the same double.
      for (int digits = 1; digits < 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, *d);
        if (std::strtod(buf, nullptr) == *d) {
          text = buf;
          break;
        }
      }
    } else if (auto s = std::get_if<std::string>(&value)) text = *s;
    else continue;
    out += sep + key + "=" + text;
    sep = ',';
  }
  return out;
}

void describe_tiling(LoadedMap& map, std::shared_ptr<const Network> network) {
  map.receptive_radius = network->tileable() ? network->receptive_radius() : -1;
  map.tile_alignment = std::max<int64_t>(1, network->tile_alignment());
  map.padded_input = capability<PaddedInput>(*network);
  if (map.padded_input != nullptr && map.padded_input->forward == nullptr) map.padded_input = nullptr;
  map.network = std::move(network);
}

namespace {

// Plugins that run code named by their parameters (a TorchScript file): a map file that names one
// is a program, so it is built only when the user trusts the file.
bool runs_code(const std::string& plugin) { return plugin == "torchscript"; }

// A recorded plugin as the loaded one takes it: parameters migrated from the saved version and
// resolved; the version is the loaded plugin's, whose parameters they now are.
PluginSpec resolve_spec(const SavedSpec& saved, const Registry& registry, Kind kind) {
  PluginSpec spec{saved.name, registry.resolve_saved(saved.name, saved.version, saved.params, kind)};
  spec.version = registry.find(saved.name).version;
  return spec;
}

// The network (built from the recorded plugin and shape) with the file's weights, the operator
// with its lift, and the wrapping for a stochastic map: the steps common to every format.
// A data file's weights bound what building its network may allocate (`weight_bytes`, twice over
// plus room for the build's own small tensors): a header declaring a network far wider than the
// weights the file holds is refused at its first large allocation, not after a gigabyte.
void build_map(LoadedMap& out, const SavedSpec& saved, const Registry& registry, std::optional<uint64_t> weight_bytes,
               const std::function<void(Module& network)>& load_weights) {
  out.info.network = resolve_spec(saved, registry, Kind::Network);
  auto net = std::dynamic_pointer_cast<Network>(registry.instantiate(out.info.network.name, out.info.network.params));
  if (!net) throw Error("'" + out.info.network.name + "' is not a network plugin");
  NetworkShape built = out.info.shape;
  built.in_channels += out.info.latent_channels;
  std::optional<AllocationBudget> budget;
  if (weight_bytes)
    budget.emplace(2 * *weight_bytes + (uint64_t{64} << 20), "the " + out.info.network.name +
                   " network its header declares is larger than the " + std::to_string(*weight_bytes) +
                   " bytes of weights the file holds");
  auto network = build_module(net, built);
  budget.reset();
  describe_tiling(out, net);
  load_weights(*network);
  out.module = stochastic_map(network, out.info.latent_channels, out.info.input_noise);
}

// The operator a map records, built from the registry (a code-running plugin only when trusted).
void build_operator(LoadedMap& out, const SavedSpec& saved, const Registry& registry, bool trust_code) {
  if (runs_code(saved.name) && !trust_code)
    throw Error("its operator '" + saved.name + "' loads and runs a program named in the file; pass --trust-code "
                "(Lua: trust_code = true) only if you trust where the file came from");
  PluginSpec op = resolve_spec(saved, registry, Kind::Operator);
  out.op = std::dynamic_pointer_cast<ForwardOperator>(registry.instantiate(op.name, op.params));
  if (!out.op) throw Error("'" + saved.name + "' is not an operator plugin");
  out.info.op = op;
}

// The noise record: metadata for `monge eval`. A noise plugin that is not installed here loses the
// record, not the map.
void keep_noise(LoadedMap& out, const SavedSpec& saved, const Registry& registry) {
  if (saved.name == "none") {
    out.info.noise = PluginSpec{saved.name, Params{}};
    return;
  }
  try {
    out.info.noise = resolve_spec(saved, registry, Kind::Noise);
  } catch (const PluginError&) {
  }
}

void check_shape(const NetworkShape& s) {
  const bool ok = s.in_channels >= 1 && s.in_channels <= kMaxChannels && s.out_channels >= 1 &&
                  s.out_channels <= kMaxChannels && s.scale >= 1 && s.scale <= kMaxScale && s.height >= 0 &&
                  s.height <= kMaxSide && s.width >= 0 && s.width <= kMaxSide;
  if (!ok)
    throw Error("its shape record (in " + std::to_string(s.in_channels) + ", out " + std::to_string(s.out_channels) +
                ", scale " + std::to_string(s.scale) + ", " + std::to_string(s.height) + " x " + std::to_string(s.width) +
                ") is out of range (channels 1.." + std::to_string(kMaxChannels) + ", scale 1.." +
                std::to_string(kMaxScale) + ")");
}

void check_stochastic(const MapInfo& info) {
  if (info.latent_channels < 0 || info.latent_channels > kMaxChannels) throw Error("bad latent_channels record");
  if (!(info.input_noise >= 0 && info.input_noise <= 100)) throw Error("bad input_noise record");
}

// Format 3: a tensor file. Nothing in it is executed; every record is type-checked and bounded,
// every weight's dtype and shape checked against the network the header declares.
LoadedMap load_data_map(const fs::path& file, const Registry& registry, const LoadOptions& options) {
  const auto tf = tensor_file::TensorFile::read(file);
  const json& h = tf.header();
  LoadedMap out;
  const int64_t format = member<int64_t>(h, "monge_map_format", &json::is_number_integer, "an integer");
  if (format > kMapFormat)
    throw Error("map format " + std::to_string(format) + " is newer than this monge understands (" +
                std::to_string(kMapFormat) + "); update monge");
  if (format != 3) throw Error("map format " + std::to_string(format) + " in a tensor file (only format 3 is)");
  out.info.format = format;
  out.info.monge_version = member<std::string>(h, "monge_version", &json::is_string, "a string");
  const SavedSpec net = read_spec(h.contains("network") ? h["network"] : json(), "network");
  out.info.network.name = net.name;
  const auto shape = h.find("shape");
  if (shape == h.end() || !shape->is_array() || shape->size() != 5) throw Error("'shape' must be a list of 5 integers");
  std::vector<int64_t> sv;
  for (const auto& v : *shape) {
    if (!v.is_number_integer()) throw Error("'shape' must be a list of 5 integers");
    sv.push_back(v.get<int64_t>());
  }
  out.info.shape = NetworkShape{sv[0], sv[1], sv[2], sv[3], sv[4]};
  check_shape(out.info.shape);
  if (h.contains("latent_channels"))
    out.info.latent_channels = member<int64_t>(h, "latent_channels", &json::is_number_integer, "an integer");
  if (h.contains("input_noise")) out.info.input_noise = member<double>(h, "input_noise", &json::is_number, "a number");
  check_stochastic(out.info);
  if (out.info.shape.in_channels + out.info.latent_channels > kMaxChannels) throw Error("bad latent_channels record");
  if (h.contains("operator")) build_operator(out, read_spec(h["operator"], "operator"), registry, options.trust_code);
  if (h.contains("lift")) {
    if (!out.op) throw Error("a lift record without an operator");
    out.info.lift = read_lift(h["lift"], tf, out.info.shape.in_channels, out.op->scale_factor());
    out.op = std::make_shared<wiener::WienerLift>(out.op, out.info.lift);
  }
  if (h.contains("noise")) keep_noise(out, read_spec(h["noise"], "noise"), registry);
  if (h.contains("notes")) {
    if (!h["notes"].is_object()) throw Error("'notes' must be an object of strings");
    for (const auto& [k, v] : h["notes"].items()) {
      if (!v.is_string()) throw Error("'notes' must be an object of strings");
      out.info.notes[k] = v.get<std::string>();
    }
  }
  if (h.contains("metrics")) {
    if (!h["metrics"].is_object()) throw Error("'metrics' must be an object of numbers");
    for (const auto& [k, v] : h["metrics"].items()) {
      if (!v.is_number() && !v.is_null()) throw Error("'metrics' must be an object of numbers");
      out.info.metrics[k] = v.is_null() ? std::nan("") : v.get<double>();
    }
  }
  if (runs_code(out.info.network.name) && !options.trust_code)
    throw Error("its network '" + out.info.network.name + "' runs a program named in the file; pass --trust-code only if you trust it");
  build_map(out, net, registry, tf.bytes_under("weights."), [&](Module& network) {
    torch::NoGradGuard no_grad;
    std::set<std::string> used;
    auto load = [&](const std::string& key, at::Tensor& target) {
      const std::string name = "weights." + key;
      const at::Tensor t = tf.take(name, target.scalar_type(), target.sizes());
      if (at::isFloatingType(t.scalar_type()) && !at::isfinite(t).all().item<bool>())
        throw Error("tensor '" + name + "' holds NaN or infinite values");
      target.copy_(t);
      used.insert(name);
    };
    for (auto& p : network.named_parameters(/*recurse=*/true)) load(p.key(), p.value());
    for (auto& b : network.named_buffers(/*recurse=*/true)) load(b.key(), b.value());
    for (const auto& name : tf.names())
      if (name.rfind("weights.", 0) == 0 && !used.count(name))
        throw Error("tensor '" + name + "' is not a weight of the " + out.info.network.name + " network the file declares");
  });
  return out;
}

// Formats 1 and 2 (and TorchScript modules): PyTorch archives, which LibTorch reads by running the
// pickled program inside; only for files the user trusts.
LoadedMap load_archive_map(const fs::path& file, const Registry& registry, const LoadOptions& options) {
  const std::string where = file.string();
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const std::exception&) {
    throw Error(where + ": not a monge map file, or it is truncated or corrupt");
  }
  LoadedMap out;
  c10::IValue v;
  if (!archive.try_read("monge_map_format", v) || !v.isInt()) {
    // Not written by monge: a TorchScript module with a forward(Tensor) -> Tensor is a map too.
    torch::jit::Module scripted;
    try {
      scripted = torch::jit::load(file.string(), c10::Device(c10::kCPU));
    } catch (const std::exception&) {
      throw Error(where + ": not a monge map file (no format version) and not a TorchScript module");
    }
    if (!scripted.find_method("forward"))
      throw Error(where + ": a TorchScript file without a forward() method cannot be used as a map");
    out.module = std::make_shared<ScriptedMap>(std::move(scripted));
    out.info.network.name = "torchscript";
    out.info.format = 0;
    out.info.shape = NetworkShape{0, 0, 1, 0, 0};  // channels not known: the input is passed as it is
    out.info.notes["source"] = "TorchScript module (no monge metadata: the input is used as it is, no lift)";
    out.module->eval();
    return out;
  }
  if (v.toInt() > 2)
    throw Error(where + ": map format " + std::to_string(v.toInt()) + " in a PyTorch archive (formats 1 and 2 are)");
  out.info.format = v.toInt();
  try {
    archive.read("monge_version", v);
    out.info.monge_version = v.toStringRef();
    archive.read("network", v);
    out.info.network.name = v.toStringRef();
    archive.read("network_params", v);
    const SavedSpec net{out.info.network.name, "", to_param_map(v)};
    archive.read("shape", v);
    const auto shape = v.toIntVector();
    if (shape.size() != 5) throw Error("bad shape record");
    out.info.shape = NetworkShape{shape[0], shape[1], shape[2], shape[3], shape[4]};
    check_shape(out.info.shape);
    if (archive.try_read("operator", v)) {
      const std::string name = v.toStringRef();
      archive.read("operator_params", v);
      build_operator(out, SavedSpec{name, "", to_param_map(v)}, registry, options.trust_code);
    }
    if (archive.try_read("lift", v)) {
      if (!v.isString() || v.toStringRef() != "wiener") throw Error("unknown lift record");
      if (!out.op) throw Error("a lift record without an operator");
      out.info.lift = read_lift(archive, out.info.shape.in_channels, out.op->scale_factor());
      out.op = std::make_shared<wiener::WienerLift>(out.op, out.info.lift);
    }
    if (archive.try_read("noise", v)) {
      const std::string name = v.toStringRef();
      archive.read("noise_params", v);
      keep_noise(out, SavedSpec{name, "", to_param_map(v)}, registry);
    }
    if (archive.try_read("latent_channels", v)) out.info.latent_channels = v.toInt();
    if (archive.try_read("input_noise", v)) out.info.input_noise = v.toDouble();
    check_stochastic(out.info);
    archive.read("notes", v);
    for (const auto& e : v.toGenericDict()) out.info.notes[e.key().toStringRef()] = e.value().toStringRef();
    archive.read("metrics", v);
    for (const auto& e : v.toGenericDict()) out.info.metrics[e.key().toStringRef()] = e.value().toDouble();
    build_map(out, net, registry, std::nullopt, [&](Module& network) {
      torch::serialize::InputArchive weights;
      archive.read("weights", weights);
      network.load(weights);
    });
  } catch (const PluginError&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(where + ": cannot read map (" + without_trace(e) + ")");
  }
  return out;
}

// Whether `file` starts as a zip archive does (PyTorch archives are zip files).
bool is_zip(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[4] = {};
  return in.read(head, 4) && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
}

}  // namespace

LoadedMap load_map(const fs::path& file, const Registry& registry, const LoadOptions& options) {
  const std::string where = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(where + ": no such map file");
  LoadedMap out;
  if (tensor_file::has_magic(file)) {
    try {
      out = load_data_map(file, registry, options);
    } catch (const PluginError&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(where + ": cannot read map (" + without_trace(e) + ")");
    }
  } else {
    if (!is_zip(file)) throw Error(where + ": not a monge map file (neither the data-only format 3 nor a PyTorch archive)");
    if (!options.trust_code)
      throw Error(where + ": not a data-only monge map (format 3). It may be a map of format 1 or 2 (monge 0.1) or a "
                  "TorchScript module: both are PyTorch archives, which are read by running the program stored in "
                  "them, so a file from someone else can write or read your files. If you trust where it came from, "
                  "convert it once with `monge map upgrade " + where + " --trust-code` (a TorchScript module cannot be "
                  "converted: pass --trust-code, or trust_code = true in Lua, to use it as it is)");
    out = load_archive_map(file, registry, options);
  }
  out.module->eval();
  return out;
}

}  // namespace monge::host
