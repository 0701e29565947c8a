// Every plugin the tree builds, whatever its kind, built from its schema's defaults and run on a
// small input (GEGL's rule: an operation that is registered is tested). No plugin is named here:
// a new plugin is covered by being built (cmake: MONGE_PLUGIN_TARGETS).
//
// Object parameters a schema requires are given the simplest plugin of their kind (identity
// operator, gaussian noise, ...). A plugin whose defaults are not enough (a file it must be given)
// must refuse them with monge::Error naming what is missing; every other one must run:
//   operators  forward and lift have the declared shapes, finite values, and autograd's gradient
//              matches finite differences
//   noise      samples of ax's shape, a finite per-sample nll, a variance >= 0
//   costs      a finite per-sample cost with a checked gradient in the signal
//   metrics    a finite score per image (or per set)
//   networks   a module of the declared output shape with finite values, and gradients
//   solvers    constructed, and of the solver interface
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "monge/network.hpp"
#include "monge/solver.hpp"
#include "tests/plugins/plugin_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using monge::Kind;
using monge::ParamMap;
using monge::test::registry;

// The simplest plugin of each kind, given to schemas that require an object of that kind.
const std::map<Kind, std::string> kSimplest = {{Kind::Operator, "identity"}, {Kind::Noise, "gaussian"},
                                                {Kind::Network, "unet"}};

// The schema's required objects filled in (optional ones left out); everything else defaulted.
ParamMap defaults_with_objects(const monge::Schema& schema) {
  ParamMap given;
  for (const auto& spec : schema.specs()) {
    if (spec.type != monge::ParamType::Object || spec.optional_object) continue;
    const auto it = kSimplest.find(spec.object_kind);
    if (it != kSimplest.end()) given[spec.name] = registry().create(it->second, {}, spec.object_kind);
  }
  return given;
}

// The plugin built from its defaults, or null when it refused them with monge::Error (recorded).
std::shared_ptr<monge::Plugin> build(const monge::host::PluginRecord& r, std::string& refused) {
  try {
    return registry().create(r.name, defaults_with_objects(*r.schema), r.kind);
  } catch (const monge::Error& e) {
    refused = e.what();
    return nullptr;
  }
}

void check_operator(monge::ForwardOperator& op, const std::string& name) {
  torch::manual_seed(1);
  const torch::Tensor x = 0.4 * torch::randn({2, 1, 16, 16}, torch::kDouble);
  const torch::Tensor y = op.forward(x);
  const auto expected = op.measurement_shape({2, 1, 16, 16});
  EXPECT_EQ(y.sizes().vec(), expected) << name << ": forward's shape is not measurement_shape()";
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << name << ": forward gave non-finite values";
  const torch::Tensor lifted = op.lift(y);
  EXPECT_EQ(lifted.sizes(), x.sizes()) << name << ": lift does not return the signal's shape";
  EXPECT_TRUE(torch::isfinite(lifted).all().item<bool>()) << name << ": lift gave non-finite values";
  if (const auto l = op.lipschitz()) EXPECT_GE(*l, 0.0) << name;
  monge::test::expect_gradients([&](const torch::Tensor& t) { return op.forward(t); }, x, name + " forward");
}

void check_noise(monge::NoiseModel& noise, const std::string& name) {
  torch::manual_seed(2);
  const torch::Tensor ax = 0.9 * torch::tanh(torch::randn({3, 1, 8, 8}));
  const torch::Tensor y = noise.sample(ax, monge::test::seeded(5));
  EXPECT_EQ(y.sizes(), ax.sizes()) << name;
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << name << ": non-finite samples";
  const torch::Tensor nll = noise.nll(y, ax);
  EXPECT_EQ(nll.sizes(), torch::IntArrayRef({3})) << name << ": nll is not per sample";
  EXPECT_TRUE(torch::isfinite(nll).all().item<bool>()) << name << ": non-finite nll";
  EXPECT_GE(noise.variance(), 0.0) << name;
}

void check_cost(monge::Cost& cost, const std::string& name) {
  torch::manual_seed(3);
  const torch::Tensor x = 0.5 * torch::tanh(torch::randn({2, 1, 8, 8}, torch::kDouble));
  const torch::Tensor y = 0.5 * torch::tanh(torch::randn({2, 1, 8, 8}, torch::kDouble));
  const torch::Tensor c = cost.evaluate(y, x);
  EXPECT_EQ(c.size(0), 2) << name << ": the cost is not per sample";
  EXPECT_TRUE(torch::isfinite(c).all().item<bool>()) << name << ": non-finite cost";
  monge::test::expect_gradients([&](const torch::Tensor& t) { return cost.evaluate(y, t); }, x, name + " cost");
}

void check_metric(monge::Metric& metric, const std::string& name) {
  torch::manual_seed(4);
  const torch::Tensor reference = torch::rand({4, 1, 16, 16}) * 2 - 1;
  const torch::Tensor restored = (reference + 0.1 * torch::randn_like(reference)).clamp(-1, 1);
  if (metric.set_level()) {
    EXPECT_TRUE(std::isfinite(metric.score_set(restored, reference))) << name;
    return;
  }
  const torch::Tensor per = metric.per_image(restored, reference);
  EXPECT_EQ(per.size(0), 4) << name << ": not one score per image";
  EXPECT_TRUE(torch::isfinite(per).all().item<bool>()) << name << ": non-finite score";
  EXPECT_TRUE(std::isfinite(metric.aggregate(per))) << name;
}

void check_network(monge::Network& net, const std::string& name) {
  torch::manual_seed(5);
  const monge::NetworkShape shape{1, 1, 1, 16, 16};
  auto module = net.build(shape);
  const torch::Tensor x = torch::rand({2, 1, 16, 16}) * 2 - 1;
  const torch::Tensor out = module->forward(x);
  EXPECT_EQ(out.size(0), 2) << name;
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << name << ": non-finite output";
  out.square().sum().backward();
  int64_t with_grad = 0;
  for (const auto& p : module->parameters()) with_grad += p.grad().defined();
  EXPECT_GT(with_grad, 0) << name << ": no parameter received a gradient";
}

TEST(RegistryGolden, EveryBuiltPluginLoadsAndRunsFromItsDefaults) {
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(MONGE_PLUGIN_BUILD_DIR)) {
    const std::string f = e.path().filename().string();
    const std::string suffix = ".monge.so";
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      files.insert(f.substr(0, f.size() - suffix.size()));
  }
  ASSERT_GE(files.size(), 10u) << "the build's plugin folder " << MONGE_PLUGIN_BUILD_DIR << " is (nearly) empty";
  for (const auto& w : registry().warnings()) ADD_FAILURE() << "plugin scan: " << w;

  std::map<Kind, int> ran;
  std::set<std::string> seen;
  for (const auto* r : registry().list()) {
    seen.insert(r->name);
    SCOPED_TRACE(std::string(monge::kind_name(r->kind)) + " " + r->name);
    ASSERT_NE(r->schema, nullptr);
    std::string refused;
    auto plugin = build(*r, refused);
    if (!plugin) {
      // Defaults that cannot work (a file to be given) must say what is missing.
      EXPECT_FALSE(refused.empty());
      std::cout << "  " << r->name << ": needs parameters: " << refused << "\n";
      continue;
    }
    EXPECT_EQ(plugin->kind(), r->kind);
    switch (r->kind) {
      case Kind::Operator: check_operator(dynamic_cast<monge::ForwardOperator&>(*plugin), r->name); break;
      case Kind::Noise: check_noise(dynamic_cast<monge::NoiseModel&>(*plugin), r->name); break;
      case Kind::Cost: check_cost(dynamic_cast<monge::Cost&>(*plugin), r->name); break;
      case Kind::Metric: check_metric(dynamic_cast<monge::Metric&>(*plugin), r->name); break;
      case Kind::Network: check_network(dynamic_cast<monge::Network&>(*plugin), r->name); break;
      case Kind::Solver: EXPECT_NE(dynamic_cast<monge::Solver*>(plugin.get()), nullptr); break;
    }
    ++ran[r->kind];
    std::cout << "  " << monge::kind_name(r->kind) << " " << r->name << ": ran\n";
  }
  // Every plugin file of the build registered a plugin of its own name.
  for (const auto& f : files) EXPECT_TRUE(seen.count(f)) << f << ".monge.so did not register a plugin named " << f;
  for (Kind k : {Kind::Operator, Kind::Noise, Kind::Cost, Kind::Metric, Kind::Network, Kind::Solver})
    EXPECT_GT(ran[k], 0) << "no " << monge::kind_name(k) << " plugin ran from its defaults";
}

}  // namespace
