#pragma once
/// Parameters: each plugin declares its parameters once in a Schema (name, type, default, range,
/// doc). The host uses that one declaration to validate what a user passed (from Lua or a saved
/// config), fill in defaults, and print `monge plugins --describe NAME`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "monge/plugin.hpp"

namespace monge {

/// A parameter value as given by a user or filled in from a default.
using Value = std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<double>,
                           std::shared_ptr<Plugin>, std::vector<std::string>>;

/// Parameters as given, before validation (name -> value).
using ParamMap = std::map<std::string, Value>;

/// The declared type of a parameter.
enum class ParamType { Bool, Int, Real, String, Choice, RealList, Object, StringList };

/// A bad parameter: unknown name, wrong type, out of range. The message names the plugin, the
/// parameter, what was expected and what was given.
class MONGE_SDK_API ParamError : public Error {
 public:
  using Error::Error;
};

/// One declared parameter.
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Real;
  Value default_value;                 ///< std::monostate: the parameter is required
  std::optional<double> min, max;      ///< inclusive range for Int, Real and RealList items
  std::vector<std::string> choices;    ///< allowed values of a Choice
  Kind object_kind = Kind::Operator;   ///< kind an Object parameter must have
  bool optional_object = false;        ///< an Object parameter that may be left out
  std::string doc;
};

namespace detail {

inline std::string format_number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

inline std::string describe_value(const Value& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "nothing"; }
    std::string operator()(bool b) const { return std::string("boolean ") + (b ? "true" : "false"); }
    std::string operator()(int64_t i) const { return "number " + std::to_string(i); }
    std::string operator()(double d) const { return "number " + format_number(d); }
    std::string operator()(const std::string& s) const { return "string \"" + s + "\""; }
    std::string operator()(const std::vector<double>& l) const {
      return "list of " + std::to_string(l.size()) + " numbers";
    }
    std::string operator()(const std::shared_ptr<Plugin>& p) const {
      return p ? std::string(kind_name(p->kind())) + " object" : "nil object";
    }
    std::string operator()(const std::vector<std::string>& l) const {
      return "list of " + std::to_string(l.size()) + " strings";
    }
  };
  return std::visit(Visitor{}, v);
}

/// Plain value text for defaults in help output.
inline std::string value_text(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return "(required)";
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) return format_number(*d);
  if (auto s = std::get_if<std::string>(&v)) return "\"" + *s + "\"";
  if (auto l = std::get_if<std::vector<double>>(&v)) {
    std::string out = "{";
    for (size_t i = 0; i < l->size(); ++i) out += (i ? ", " : "") + format_number((*l)[i]);
    return out + "}";
  }
  if (auto l = std::get_if<std::vector<std::string>>(&v)) {
    std::string out = "{";
    for (size_t i = 0; i < l->size(); ++i) out += (i ? ", \"" : "\"") + (*l)[i] + "\"";
    return out + "}";
  }
  return "(object)";
}

/// Edit distance (insertions, deletions, substitutions, adjacent transpositions).
inline size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

}  // namespace detail

/// The closest candidate to `word` if it is plausibly a misspelling of it, else "".
inline std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = detail::edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

/// Human name of a parameter type, as used in errors and help.
inline std::string type_name(const ParamSpec& s) {
  switch (s.type) {
    case ParamType::Bool: return "boolean";
    case ParamType::Int: return "integer";
    case ParamType::Real: return "number";
    case ParamType::String: return "string";
    case ParamType::Choice: return "choice";
    case ParamType::RealList: return "list of numbers";
    case ParamType::Object: return std::string(kind_name(s.object_kind)) + " object";
    case ParamType::StringList: return "list of strings";
  }
  return "?";
}

/// Range or choices of a parameter as text ("[0.01, 100]", "reflect|zeros"), or "".
inline std::string range_text(const ParamSpec& s) {
  if (s.type == ParamType::Choice) {
    std::string out;
    for (size_t i = 0; i < s.choices.size(); ++i) out += (i ? "|" : "") + s.choices[i];
    return out;
  }
  if (!s.min && !s.max) return "";
  auto fmt = [&](const std::optional<double>& v, const char* inf) {
    if (!v) return std::string(inf);
    return s.type == ParamType::Int ? std::to_string(static_cast<int64_t>(*v)) : detail::format_number(*v);
  };
  return "[" + fmt(s.min, "-inf") + ", " + fmt(s.max, "inf") + "]";
}

/// Validated parameters with every default filled in.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, Value> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const {
    auto it = values_.find(name);
    return it != values_.end() && !std::holds_alternative<std::monostate>(it->second);
  }
  const Value& get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) throw Error("internal: parameter '" + name + "' was not declared");
    return it->second;
  }
  bool boolean(const std::string& name) const { return as<bool>(name); }
  int64_t integer(const std::string& name) const { return as<int64_t>(name); }
  double real(const std::string& name) const { return as<double>(name); }
  const std::string& string(const std::string& name) const { return as<std::string>(name); }
  const std::vector<double>& reals(const std::string& name) const { return as<std::vector<double>>(name); }
  const std::vector<std::string>& strings(const std::string& name) const { return as<std::vector<std::string>>(name); }
  /// An Object parameter cast to its interface; nullptr when an optional object was left out.
  template <class T>
  std::shared_ptr<T> object(const std::string& name) const {
    if (!has(name)) return nullptr;
    auto p = std::dynamic_pointer_cast<T>(as<std::shared_ptr<Plugin>>(name));
    if (!p) throw Error("parameter '" + name + "' holds an object of the wrong interface");
    return p;
  }
  const std::map<std::string, Value>& values() const { return values_; }

 private:
  template <class T>
  const T& as(const std::string& name) const {
    const Value& v = get(name);
    if (auto p = std::get_if<T>(&v)) return *p;
    throw Error("internal: parameter '" + name + "' read with the wrong type (holds " +
                detail::describe_value(v) + ")");
  }
  std::map<std::string, Value> values_;
};

/// The declared parameters of one plugin. Built with the fluent helpers:
///
///     Schema{}.integer("size", 13, 1, 101, "kernel size in pixels (odd)")
///             .real("sigma", 1.5, 0.01, 100, "standard deviation in pixels")
///             .choice("padding", "reflect", {"reflect", "zeros"}, "border handling")
class Schema {
 public:
  Schema& boolean(std::string name, bool def, std::string doc) {
    return add({std::move(name), ParamType::Bool, def, {}, {}, {}, Kind::Operator, false, std::move(doc)});
  }
  Schema& integer(std::string name, int64_t def, int64_t min, int64_t max, std::string doc) {
    return add({std::move(name), ParamType::Int, def, double(min), double(max), {}, Kind::Operator, false,
                std::move(doc)});
  }
  Schema& real(std::string name, double def, double min, double max, std::string doc) {
    return add({std::move(name), ParamType::Real, def, min, max, {}, Kind::Operator, false, std::move(doc)});
  }
  Schema& string(std::string name, std::string def, std::string doc) {
    return add({std::move(name), ParamType::String, std::move(def), {}, {}, {}, Kind::Operator, false,
                std::move(doc)});
  }
  Schema& choice(std::string name, std::string def, std::vector<std::string> choices, std::string doc) {
    return add({std::move(name), ParamType::Choice, std::move(def), {}, {}, std::move(choices), Kind::Operator,
                false, std::move(doc)});
  }
  Schema& reals(std::string name, std::vector<double> def, double min, double max, std::string doc) {
    return add({std::move(name), ParamType::RealList, std::move(def), min, max, {}, Kind::Operator, false,
                std::move(doc)});
  }
  /// A list of strings (e.g. the host's repeatable options); the default is the empty list.
  Schema& strings(std::string name, std::string doc) {
    return add({std::move(name), ParamType::StringList, std::vector<std::string>{}, {}, {}, {}, Kind::Operator, false,
                std::move(doc)});
  }
  /// A parameter holding another plugin object (e.g. the operator a cost uses).
  Schema& object(std::string name, Kind kind, std::string doc, bool optional = false) {
    return add({std::move(name), ParamType::Object, std::monostate{}, {}, {}, {}, kind, optional, std::move(doc)});
  }

  /// Declares one parameter as given (the helpers above fill a ParamSpec each).
  Schema& add(ParamSpec spec) {
    if (find(spec.name)) throw Error("schema declares parameter '" + spec.name + "' twice");
    specs_.push_back(std::move(spec));
    return *this;
  }

  const std::vector<ParamSpec>& specs() const { return specs_; }
  const ParamSpec* find(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& s : specs_) out.push_back(s.name);
    return out;
  }

  /// How an error names a parameter: `noun` then `spell(name)`, "parameter 'sigma'" for plugins;
  /// the host's command line names its flags instead (noun "", spelling "--max-pixels").
  using Spelling = std::function<std::string(const std::string& name)>;
  static std::string quoted(const std::string& name) { return "'" + name + "'"; }

  /// Validates `given` against the declaration and fills defaults. `owner` (the plugin name) starts
  /// every error message. Throws ParamError.
  Params resolve(const ParamMap& given, const std::string& owner, Spelling spell = {},
                 const std::string& noun = "parameter ") const {
    if (!spell) spell = &quoted;
    for (const auto& [key, value] : given) {
      if (find(key)) continue;
      std::string msg = owner + ": unknown " + noun + spell(key);
      const std::string hint = did_you_mean(key, names());
      if (!hint.empty()) msg += " (did you mean " + spell(hint) + "?)";
      msg += specs_.empty() ? "; it takes no parameters" : "; valid parameters: " + join_names();
      throw ParamError(msg);
    }
    std::map<std::string, Value> out;
    for (const auto& spec : specs_) {
      auto it = given.find(spec.name);
      if (it == given.end() || std::holds_alternative<std::monostate>(it->second)) {
        if (std::holds_alternative<std::monostate>(spec.default_value) && !spec.optional_object)
          throw ParamError(owner + ": " + noun + spell(spec.name) + " is required (" + type_name(spec) + ": " + spec.doc + ")");
        out[spec.name] = spec.default_value;
        continue;
      }
      out[spec.name] = convert(spec, it->second, owner + ": " + noun + spell(spec.name));
    }
    return Params(std::move(out));
  }

  /// Help text: one block per parameter with type, default, range and doc.
  std::string describe() const {
    std::ostringstream s;
    for (const auto& spec : specs_) {
      s << "  " << spec.name << "  (" << type_name(spec);
      const std::string r = range_text(spec);
      if (!r.empty()) s << (spec.type == ParamType::Choice ? ": " : " in ") << r;
      s << ", default " << (spec.optional_object ? std::string("none") : detail::value_text(spec.default_value))
        << ")\n      " << spec.doc << "\n";
    }
    return s.str();
  }

 private:
  std::string join_names() const {
    std::string out;
    for (size_t i = 0; i < specs_.size(); ++i) out += (i ? ", " : "") + specs_[i].name;
    return out;
  }
  // `who` is "owner: parameter 'name'" (or the spelling the caller chose).
  static void check_range(const ParamSpec& spec, double v, const std::string& who, const std::string& what) {
    if (std::isnan(v) || (spec.min && v < *spec.min) || (spec.max && v > *spec.max))
      throw ParamError(who + " expects " + what + " in " + range_text(spec) + ", got " + detail::format_number(v));
  }
  static Value convert(const ParamSpec& spec, const Value& v, const std::string& who) {
    auto wrong = [&]() {
      std::string expected = type_name(spec);
      if (spec.type == ParamType::Choice) expected = "one of " + range_text(spec);
      return ParamError(who + " expects " + (spec.type == ParamType::Int ? "an " : "a ") + expected + ", got " +
                        detail::describe_value(v));
    };
    switch (spec.type) {
      case ParamType::Bool:
        if (std::holds_alternative<bool>(v)) return v;
        throw wrong();
      case ParamType::Int: {
        int64_t i;
        if (auto p = std::get_if<int64_t>(&v)) i = *p;
        else if (auto d = std::get_if<double>(&v); d && std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9e15)
          i = static_cast<int64_t>(*d);
        else throw wrong();
        check_range(spec, double(i), who, "an integer");
        return i;
      }
      case ParamType::Real: {
        double d;
        if (auto p = std::get_if<double>(&v)) d = *p;
        else if (auto i = std::get_if<int64_t>(&v)) d = double(*i);
        else throw wrong();
        check_range(spec, d, who, "a number");
        return d;
      }
      case ParamType::String:
        if (std::holds_alternative<std::string>(v)) return v;
        throw wrong();
      case ParamType::Choice: {
        auto s = std::get_if<std::string>(&v);
        if (!s) throw wrong();
        if (std::find(spec.choices.begin(), spec.choices.end(), *s) != spec.choices.end()) return v;
        std::string msg = who + " expects one of " + range_text(spec) + ", got \"" + *s + "\"";
        const std::string hint = did_you_mean(*s, spec.choices);
        if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
        throw ParamError(msg);
      }
      case ParamType::RealList: {
        auto l = std::get_if<std::vector<double>>(&v);
        if (!l) throw wrong();
        for (double d : *l) check_range(spec, d, who, "numbers");
        return v;
      }
      case ParamType::StringList:
        if (std::holds_alternative<std::vector<std::string>>(v)) return v;
        if (auto one = std::get_if<std::string>(&v)) return std::vector<std::string>{*one};
        throw wrong();
      case ParamType::Object: {
        auto p = std::get_if<std::shared_ptr<Plugin>>(&v);
        if (!p || !*p) throw wrong();
        if ((*p)->kind() != spec.object_kind) throw wrong();
        return v;
      }
    }
    throw wrong();
  }

  std::vector<ParamSpec> specs_;
};

}  // namespace monge
