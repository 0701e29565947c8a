#include "host/train/map_file.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <torch/script.h>
#include <torch/torch.h>

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

// The Wiener lift's records: the operator's measured response, the prior, the noise variance and
// the finite filter itself (applied as stored, so a map restores the same whatever a later
// monge's filter design would give).
void write_lift(torch::serialize::OutputArchive& archive, const wiener::Lift& lift) {
  archive.write("lift", c10::IValue(std::string("wiener")));
  archive.write("lift_response", lift.response.taps);
  archive.write("lift_scale", c10::IValue(lift.response.scale));
  archive.write("lift_mean", lift.prior.mean);
  archive.write("lift_autocov", lift.prior.autocov);
  archive.write("lift_noise_variance", c10::IValue(lift.noise_variance));
  archive.write("lift_filter", lift.filter.weight);
  archive.write("lift_filter_radius", c10::IValue(lift.filter.radius));
}

std::shared_ptr<const wiener::Lift> read_lift(torch::serialize::InputArchive& archive, int64_t channels, int64_t scale) {
  auto lift = std::make_shared<wiener::Lift>();
  c10::IValue v;
  auto tensor = [&](const char* key, at::ScalarType dtype, int64_t dims) {
    at::Tensor t;
    archive.read(key, t);
    if (t.scalar_type() != dtype || t.dim() != dims) throw Error(std::string("bad ") + key + " record");
    if (!at::isfinite(t).all().item<bool>()) throw Error(std::string(key) + " holds NaN or infinite values");
    return t.contiguous();
  };
  lift->response.taps = tensor("lift_response", at::kDouble, 2);
  lift->response.radius = (lift->response.taps.size(0) - 1) / 2;
  archive.read("lift_scale", v);
  lift->response.scale = v.toInt();
  lift->prior.mean = tensor("lift_mean", at::kDouble, 1);
  lift->prior.autocov = tensor("lift_autocov", at::kDouble, 3);
  lift->prior.lag = (lift->prior.autocov.size(1) - 1) / 2;
  archive.read("lift_noise_variance", v);
  lift->noise_variance = v.toDouble();
  lift->filter.weight = tensor("lift_filter", at::kFloat, 4);
  archive.read("lift_filter_radius", v);
  lift->filter.radius = v.toInt();
  lift->filter.scale = lift->response.scale;
  lift->filter.mean = lift->prior.mean;
  lift->filter.gain = lift->response.gain();
  const auto& r = lift->response;
  const auto& f = lift->filter;
  const int64_t s = r.scale, k = 2 * f.radius + 1;
  const bool ok = r.taps.size(0) == r.taps.size(1) && r.taps.size(0) % 2 == 1 && s == std::max<int64_t>(1, scale) &&
                  lift->prior.mean.size(0) == channels &&
                  lift->prior.autocov.sizes() == at::IntArrayRef{channels, 2 * lift->prior.lag + 1, 2 * lift->prior.lag + 1} &&
                  f.radius >= 0 && f.radius <= 4096 && f.weight.sizes() == at::IntArrayRef{channels * s * s, 1, k, k} &&
                  lift->noise_variance >= 0;
  if (!ok) throw Error("the lift records do not fit the map (channels, scale factor or filter size)");
  return lift;
}

}  // namespace

void write_atomically(const fs::path& file, const std::function<void(const std::string& tmp)>& write) {
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(file.string() + ": directory " + dir.string() + " does not exist");
  const fs::path tmp = dir / ("." + file.filename().string() + ".tmp" + std::to_string(getpid()));
  try {
    write(tmp.string());
  } catch (const std::exception& e) {
    fs::remove(tmp, ec);
    std::string msg = e.what();
    if (auto cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
    throw Error(file.string() + ": cannot write (" + msg + ")");
  }
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(file.string() + ": cannot move the finished file into place (" + ec.message() + ")");
  }
}

void save_map(const fs::path& file, Module& module, const MapInfo& info) {
  torch::serialize::OutputArchive archive;
  archive.write("monge_map_format", c10::IValue(info.lift ? kMapFormat : int64_t{1}));
  archive.write("monge_version", c10::IValue(std::string(kVersion)));
  archive.write("network", c10::IValue(info.network.name));
  archive.write("network_params", to_ivalue(info.network.params, info.network.name));
  archive.write("shape", c10::IValue(std::vector<int64_t>{info.shape.in_channels, info.shape.out_channels,
                                                          info.shape.scale, info.shape.height, info.shape.width}));
  if (info.op) {
    archive.write("operator", c10::IValue(info.op->name));
    archive.write("operator_params", to_ivalue(info.op->params, info.op->name));
  }
  if (info.lift) write_lift(archive, *info.lift);
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
  // A stochastic map's file holds the network alone: load_map() wraps it again.
  if (auto* stochastic = dynamic_cast<StochasticMap*>(&module)) stochastic->network()->save(weights);
  else module.save(weights);
  archive.write("weights", weights);
  write_atomically(file, [&](const std::string& tmp) { archive.save_to(tmp); });
}

StochasticMap::StochasticMap(std::shared_ptr<Module> network, int64_t latent, double input_noise, uint64_t seed)
    : network_(std::move(network)),
      latent_(latent),
      input_noise_(input_noise),
      seed_(seed),
      gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  if (latent_ < 0 || !(input_noise_ >= 0) || (latent_ == 0 && input_noise_ == 0))
    throw Error("StochasticMap: needs latent channels or a positive input noise");
  register_module("network", network_);
}

void StochasticMap::reseed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  gen_ = at::make_generator<at::CPUGeneratorImpl>(seed);
  seed_ = seed;
  next_draw_ = 0;
}

uint64_t StochasticMap::reserve_draws(uint64_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t first = next_draw_;
  next_draw_ += count;
  return first;
}

namespace {
// splitmix64's finaliser: a well-mixed 64-bit value of a 64-bit key.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
constexpr int64_t kBlock = 256;  // side of the noise blocks of positional draws
int64_t floor_block(int64_t v) { return (v >= 0 ? v : v - kBlock + 1) / kBlock; }
}  // namespace

at::Tensor StochasticMap::field(uint64_t draw, uint64_t stream, int64_t n, int64_t c, int64_t h, int64_t w,
                                int64_t row0, int64_t col0) const {
  at::Tensor out = at::empty({n, c, h, w}, at::TensorOptions().dtype(at::kFloat));
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    seed = seed_;
  }
  for (int64_t by = floor_block(row0); by <= floor_block(row0 + h - 1); ++by) {
    for (int64_t bx = floor_block(col0); bx <= floor_block(col0 + w - 1); ++bx) {
      uint64_t key = mix64(seed ^ 0x6D6F6E6765ull);  // "monge"
      for (uint64_t part : {draw, stream, static_cast<uint64_t>(by), static_cast<uint64_t>(bx)}) key = mix64(key ^ part);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(key);
      const at::Tensor block = at::randn({n, c, kBlock, kBlock}, gen, at::TensorOptions().dtype(at::kFloat));
      // The part of this block inside the requested region.
      const int64_t y0 = std::max(row0, by * kBlock), y1 = std::min(row0 + h, (by + 1) * kBlock);
      const int64_t x0 = std::max(col0, bx * kBlock), x1 = std::min(col0 + w, (bx + 1) * kBlock);
      out.narrow(2, y0 - row0, y1 - y0)
          .narrow(3, x0 - col0, x1 - x0)
          .copy_(block.narrow(2, y0 - by * kBlock, y1 - y0).narrow(3, x0 - bx * kBlock, x1 - x0));
    }
  }
  return out;
}

at::Tensor StochasticMap::perturb_at(const at::Tensor& y, uint64_t draw, int64_t row0, int64_t col0) const {
  if (input_noise_ == 0) return y;
  if (y.dim() != 4) throw Error("stochastic map: expected an N x C x H x W measurement");
  const at::Tensor n = field(draw, 0, y.size(0), y.size(1), y.size(2), y.size(3), row0, col0);
  return y + input_noise_ * n.to(y.device(), y.scalar_type());
}

at::Tensor StochasticMap::input_at(const at::Tensor& q, uint64_t draw, int64_t row0, int64_t col0) const {
  if (latent_ == 0) return q;
  const at::Tensor z = field(draw, 1, q.size(0), latent_, q.size(2), q.size(3), row0, col0);
  return at::cat({q, z.to(q.device(), q.scalar_type())}, 1);
}

at::Tensor StochasticMap::draw(at::IntArrayRef shape) {
  std::lock_guard<std::mutex> lock(mutex_);
  return at::randn(shape, gen_, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor StochasticMap::perturb(const at::Tensor& y) {
  if (input_noise_ == 0) return y;
  return y + input_noise_ * draw(y.sizes()).to(y.device(), y.scalar_type());
}

at::Tensor StochasticMap::forward(const at::Tensor& q) {
  if (latent_ == 0) return network_->forward(q);
  if (q.dim() != 4) throw Error("stochastic map: expected an N x C x H x W input");
  const at::Tensor z = draw({q.size(0), latent_, q.size(2), q.size(3)});
  return network_->forward(at::cat({q, z.to(q.device(), q.scalar_type())}, 1));
}

std::shared_ptr<Module> stochastic_map(std::shared_ptr<Module> network, int64_t latent, double input_noise,
                                       uint64_t seed) {
  if (latent <= 0 && input_noise <= 0) return network;
  return std::make_shared<StochasticMap>(std::move(network), latent, input_noise, seed);
}

at::Tensor map_input(Module& map, const ForwardOperator* op, const at::Tensor& y) {
  auto* stochastic = dynamic_cast<StochasticMap*>(&map);
  const at::Tensor smoothed = stochastic ? stochastic->perturb(y) : y;
  return op ? op->lift(smoothed) : smoothed;
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

void describe_tiling(LoadedMap& map, const Network& network) {
  map.receptive_radius = network.tileable() ? network.receptive_radius() : -1;
  map.tile_alignment = std::max<int64_t>(1, network.tile_alignment());
}

LoadedMap load_map(const fs::path& file, const Registry& registry) {
  const std::string where = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(where + ": no such map file");
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
    out.info.shape = NetworkShape{0, 0, 1, 0, 0};  // channels not known: the input is passed as it is
    out.info.notes["source"] = "TorchScript module (no monge metadata: the input is used as it is, no lift)";
    out.module->eval();
    return out;
  }
  if (v.toInt() > kMapFormat)
    throw Error(where + ": map format " + std::to_string(v.toInt()) + " is newer than this monge understands (" +
                std::to_string(kMapFormat) + "); update monge");
  try {
    archive.read("monge_version", v);
    out.info.monge_version = v.toStringRef();
    archive.read("network", v);
    out.info.network.name = v.toStringRef();
    archive.read("network_params", v);
    const ParamMap net_params = to_param_map(v);
    archive.read("shape", v);
    const auto shape = v.toIntVector();
    if (shape.size() != 5) throw Error("bad shape record");
    out.info.shape = NetworkShape{shape[0], shape[1], shape[2], shape[3], shape[4]};
    if (archive.try_read("operator", v)) {
      PluginSpec op;
      op.name = v.toStringRef();
      archive.read("operator_params", v);
      const ParamMap op_params = to_param_map(v);
      op.params = registry.resolve(op.name, op_params, Kind::Operator);
      out.op = std::dynamic_pointer_cast<ForwardOperator>(registry.instantiate(op.name, op.params));
      out.info.op = op;
    }
    if (archive.try_read("lift", v)) {
      if (!v.isString() || v.toStringRef() != "wiener") throw Error("unknown lift record");
      if (!out.op) throw Error("a lift record without an operator");
      out.info.lift = read_lift(archive, out.info.shape.in_channels, out.op->scale_factor());
      out.op = std::make_shared<wiener::WienerLift>(out.op, out.info.lift);
    }
    if (archive.try_read("noise", v)) {
      // Metadata for `monge eval`: a noise plugin that is not installed here loses the record, not
      // the map.
      PluginSpec noise;
      noise.name = v.toStringRef();
      archive.read("noise_params", v);
      const ParamMap noise_params = to_param_map(v);
      if (noise.name == "none") {
        out.info.noise = noise;
      } else {
        try {
          noise.params = registry.resolve(noise.name, noise_params, Kind::Noise);
          out.info.noise = noise;
        } catch (const PluginError&) {
        }
      }
    }
    if (archive.try_read("latent_channels", v)) {
      out.info.latent_channels = v.toInt();
      if (out.info.latent_channels < 0 || out.info.latent_channels > 4096) throw Error("bad latent_channels record");
    }
    if (archive.try_read("input_noise", v)) {
      out.info.input_noise = v.toDouble();
      if (!(out.info.input_noise >= 0 && out.info.input_noise <= 100)) throw Error("bad input_noise record");
    }
    archive.read("notes", v);
    for (const auto& e : v.toGenericDict()) out.info.notes[e.key().toStringRef()] = e.value().toStringRef();
    archive.read("metrics", v);
    for (const auto& e : v.toGenericDict()) out.info.metrics[e.key().toStringRef()] = e.value().toDouble();
    out.info.network.params = registry.resolve(out.info.network.name, net_params, Kind::Network);
    auto net = std::dynamic_pointer_cast<Network>(registry.instantiate(out.info.network.name, out.info.network.params));
    NetworkShape built = out.info.shape;
    built.in_channels += out.info.latent_channels;
    auto network = net->build(built);
    describe_tiling(out, *net);
    torch::serialize::InputArchive weights;
    archive.read("weights", weights);
    network->load(weights);
    out.module = stochastic_map(network, out.info.latent_channels, out.info.input_noise);
  } catch (const PluginError&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
    throw Error(where + ": cannot read map (" + msg + ")");
  }
  out.module->eval();
  return out;
}

}  // namespace monge::host
