// Lua bindings for monge's image classifier: monge.train_classifier{...} and monge.classifier(file),
// classifier objects (predict, features, logits, accuracy).

#include <algorithm>
#include <map>

#include <torch/torch.h>

#include "host/core/temp_files.hpp"
#include "host/lua/bindings.hpp"
#include "host/lua/lua_util.hpp"
#include "host/lua/tensor.hpp"
#include "host/train/classifier.hpp"

namespace monge::lua {

namespace {

constexpr const char* kClassifierMeta = "monge.Classifier";

struct ClassifierBox {
  ClassifierNet net{nullptr};
  std::string path;
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> notes;
};

ClassifierBox& check_classifier(lua_State* L, int index) {
  auto* box = test_box_alive<ClassifierBox>(L, index, kClassifierMeta, "classifier",
                                            [](const ClassifierBox& b) { return !b.net.is_empty(); });
  if (!box)
    throw std::runtime_error("expected a classifier (from monge.classifier or monge.train_classifier), got " +
                             std::string(luaL_typename(L, index)));
  return *box;
}

void push_classifier(lua_State* L, ClassifierBox box) {
  new (lua_newuserdata(L, sizeof(ClassifierBox))) ClassifierBox(std::move(box));
  luaL_getmetatable(L, kClassifierMeta);
  lua_setmetatable(L, -2);
}

std::vector<int64_t> widths_option(lua_State* L, std::vector<int64_t> def) {
  lua_getfield(L, 1, "widths");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  std::vector<int64_t> out;
  if (lua_istable(L, -1)) {
    for (int i = 1;; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      if (lua_type(L, -1) != LUA_TNUMBER) out.push_back(-1);
      else out.push_back(static_cast<int64_t>(lua_tonumber(L, -1)));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (out.size() != 3 || *std::min_element(out.begin(), out.end()) < 1)
    throw std::runtime_error("monge.train_classifier: 'widths' must be a table of three positive channel counts, e.g. {32, 64, 128}");
  return out;
}

bool bool_option(lua_State* L, const char* key, bool def) {
  lua_getfield(L, 1, key);
  const bool v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return v;
}

void set_number(lua_State* L, const char* key, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

// monge.train_classifier{ images =, labels =, test_images =, test_labels =, widths = {32, 64, 128},
//   features = 128, epochs = 3, batch = 128, lr = 2e-3, weight_decay = 0, flip = false, seed = 0, threads = n,
//   out = FILE, progress = true } -> { classifier, accuracy, file, seconds, iterations, epochs, ... }
int l_train_classifier(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "monge.train_classifier",
             {"images", "labels", "test_images", "test_labels", "widths", "features", "classes", "epochs", "batch", "lr",
              "weight_decay", "flip", "seed", "threads", "out", "progress"});
  host::ClassifierTrainConfig c;
  c.images = tensor_field(L, 1, "images", "monge.train_classifier", true);
  c.labels = tensor_field(L, 1, "labels", "monge.train_classifier", true);
  c.test_images = tensor_field(L, 1, "test_images", "monge.train_classifier", false);
  c.test_labels = tensor_field(L, 1, "test_labels", "monge.train_classifier", false);
  if (c.test_images.defined() != c.test_labels.defined())
    throw std::runtime_error("monge.train_classifier: give both 'test_images' and 'test_labels', or neither");
  c.widths = widths_option(L, c.widths);
  c.features = static_cast<int64_t>(opt_number_field(L, 1, "features", static_cast<double>(c.features)));
  c.classes = static_cast<int64_t>(opt_number_field(L, 1, "classes", 0));
  c.epochs = static_cast<int64_t>(opt_number_field(L, 1, "epochs", static_cast<double>(c.epochs)));
  c.batch = static_cast<int64_t>(opt_number_field(L, 1, "batch", static_cast<double>(c.batch)));
  c.lr = opt_number_field(L, 1, "lr", c.lr);
  c.weight_decay = opt_number_field(L, 1, "weight_decay", c.weight_decay);
  c.flip = bool_option(L, "flip", c.flip);
  c.seed = static_cast<uint64_t>(opt_number_field(L, 1, "seed", 0));
  c.threads = static_cast<int>(opt_number_field(L, 1, "threads", 0));
  c.out = opt_string_field(L, 1, "out", "");
  c.progress = bool_option(L, "progress", true);

  host::ClassifierTrainResult r = host::train_classifier(c);

  lua_createtable(L, 0, 9);
  std::map<std::string, double> metrics{{"seconds", r.seconds}};
  if (r.accuracy >= 0) metrics["test_accuracy"] = r.accuracy;
  push_classifier(L, ClassifierBox{r.net, c.out.string(), metrics, {}});
  lua_setfield(L, -2, "classifier");
  if (r.accuracy >= 0) set_number(L, "accuracy", r.accuracy);
  if (!c.out.empty()) {
    lua_pushstring(L, c.out.string().c_str());
    lua_setfield(L, -2, "file");
  }
  set_number(L, "seconds", r.seconds);
  set_number(L, "iterations", static_cast<double>(r.iterations));
  set_number(L, "parameters", static_cast<double>(r.parameters));
  set_number(L, "images_per_second", r.seconds > 0 ? r.iterations * static_cast<double>(c.batch) / r.seconds : 0);
  set_number(L, "train_accuracy", r.epochs.back().train_accuracy);
  set_number(L, "train_loss", r.epochs.back().train_loss);
  lua_createtable(L, static_cast<int>(r.epochs.size()), 0);
  for (size_t i = 0; i < r.epochs.size(); ++i) {
    const auto& e = r.epochs[i];
    lua_createtable(L, 0, 5);
    set_number(L, "epoch", static_cast<double>(e.epoch));
    set_number(L, "train_loss", e.train_loss);
    set_number(L, "train_accuracy", e.train_accuracy);
    if (e.test_accuracy >= 0) set_number(L, "test_accuracy", e.test_accuracy);
    set_number(L, "seconds", e.seconds);
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_setfield(L, -2, "epochs");
  return 1;
}

// monge.classifier(file): a classifier file written by monge.train_classifier.
int l_classifier(lua_State* L) {
  const std::string path = luaL_checkstring(L, 1);
  LoadedClassifier loaded = load_classifier(path, "monge.classifier");
  push_classifier(L, ClassifierBox{loaded.net, path, loaded.metrics, loaded.notes});
  return 1;
}

int64_t batch_arg(lua_State* L, int index) {
  return lua_isnoneornil(L, index) ? 512 : static_cast<int64_t>(luaL_checknumber(L, index));
}

template <class Fn>
at::Tensor run(lua_State* L, const char* who, Fn&& fn) {
  ClassifierBox& box = check_classifier(L, 1);
  const at::Tensor x = to_tensor(L, 2);
  check_classifier_input(box.net->config(), x, who);
  if (x.size(0) == 0) throw std::runtime_error(std::string(who) + ": the batch is empty");
  box.net->eval();
  return classifier_batched(x.detach().cpu(), batch_arg(L, 3), [&](const at::Tensor& b) { return fn(box.net, b); });
}

// c:predict(x [, batch]): 0-based class labels, int64 [N].
int c_predict(lua_State* L) {
  push_tensor(L, run(L, "classifier:predict", [](ClassifierNet& net, const at::Tensor& b) { return net->forward(b).argmax(1); }));
  return 1;
}
// c:logits(x [, batch]): class scores [N, classes].
int c_logits(lua_State* L) {
  push_tensor(L, run(L, "classifier:logits", [](ClassifierNet& net, const at::Tensor& b) { return net->forward(b); }));
  return 1;
}
// c:features(x [, batch]): penultimate-layer features [N, D] (the space of the fid metric).
int c_features(lua_State* L) {
  push_tensor(L, run(L, "classifier:features", [](ClassifierNet& net, const at::Tensor& b) { return net->features(b); }));
  return 1;
}
// c:accuracy(x, labels [, batch]): the fraction of images whose prediction equals its label.
int c_accuracy(lua_State* L) {
  ClassifierBox& box = check_classifier(L, 1);
  const at::Tensor x = to_tensor(L, 2), labels = to_tensor(L, 3);
  check_classifier_input(box.net->config(), x, "classifier:accuracy");
  if (labels.dim() != 1 || labels.size(0) != x.size(0) || x.size(0) == 0)
    throw std::runtime_error("classifier:accuracy: expected one label per image (" + std::to_string(x.size(0)) +
                             " images), got a tensor of shape " + monge::shape_text(labels));
  lua_pushnumber(L, host::classifier_accuracy(box.net, x.detach().cpu(), labels.cpu(), batch_arg(L, 4)));
  return 1;
}
// c:save(file): writes the classifier file (atomically).
int c_save(lua_State* L) {
  ClassifierBox& box = check_classifier(L, 1);
  const std::string path = luaL_checkstring(L, 2);
  host::write_atomically(path, [&](const std::string& tmp) { save_classifier(tmp, box.net, box.metrics, box.notes); });
  box.path = path;
  return 0;
}

// The fields of a classifier, in the order its "no field" error lists them.
const Field<ClassifierBox> kClassifierFields[] = {
    {"predict", [](lua_State* L, ClassifierBox&) { lua_pushcfunction(L, &guard<c_predict>); }},
    {"logits", [](lua_State* L, ClassifierBox&) { lua_pushcfunction(L, &guard<c_logits>); }},
    {"features", [](lua_State* L, ClassifierBox&) { lua_pushcfunction(L, &guard<c_features>); }},
    {"accuracy", [](lua_State* L, ClassifierBox&) { lua_pushcfunction(L, &guard<c_accuracy>); }},
    {"save", [](lua_State* L, ClassifierBox&) { lua_pushcfunction(L, &guard<c_save>); }},
    {"path", [](lua_State* L, ClassifierBox& box) { lua_pushstring(L, box.path.c_str()); }},
    {"classes",
     [](lua_State* L, ClassifierBox& box) { lua_pushinteger(L, static_cast<lua_Integer>(box.net->config().classes)); }},
    {"channels",
     [](lua_State* L, ClassifierBox& box) { lua_pushinteger(L, static_cast<lua_Integer>(box.net->config().in_channels)); }},
    {"size",
     [](lua_State* L, ClassifierBox& box) {
       const ClassifierConfig& c = box.net->config();
       lua_createtable(L, 2, 0);
       lua_pushinteger(L, static_cast<lua_Integer>(c.height));
       lua_rawseti(L, -2, 1);
       lua_pushinteger(L, static_cast<lua_Integer>(c.width));
       lua_rawseti(L, -2, 2);
     }},
    {"widths",
     [](lua_State* L, ClassifierBox& box) {
       const auto& widths = box.net->config().widths;
       lua_createtable(L, 3, 0);
       for (int i = 0; i < 3; ++i) {
         lua_pushinteger(L, static_cast<lua_Integer>(widths[static_cast<size_t>(i)]));
         lua_rawseti(L, -2, i + 1);
       }
     }},
    {"feature_dim",
     [](lua_State* L, ClassifierBox& box) { lua_pushinteger(L, static_cast<lua_Integer>(box.net->feature_dim())); }},
    {"metrics", [](lua_State* L, ClassifierBox& box) { push_table(L, box.metrics); }},
    {"notes", [](lua_State* L, ClassifierBox& box) { push_table(L, box.notes); }},
};

int ct_index(lua_State* L) {
  return push_field(L, check_classifier(L, 1), "classifier", luaL_checkstring(L, 2), kClassifierFields);
}

int ct_gc(lua_State* L) {
  return gc_box<ClassifierBox>(L, kClassifierMeta);
}

int ct_tostring(lua_State* L) {
  ClassifierBox& box = check_classifier(L, 1);
  const auto& w = box.net->config().widths;
  const std::string s = "classifier " + std::to_string(w[0]) + "/" + std::to_string(w[1]) + "/" + std::to_string(w[2]) +
                        " (" + (box.path.empty() ? std::string("not saved") : box.path) + ")";
  lua_pushstring(L, s.c_str());
  return 1;
}

}  // namespace

void open_classifier(lua_State* L) {
  new_object_metatable<ct_index, ct_tostring, ct_gc>(L, kClassifierMeta);
  lua_pop(L, 1);
  set_function<l_train_classifier>(L, "train_classifier");
  set_function<l_classifier>(L, "classifier");
}

}  // namespace monge::lua
