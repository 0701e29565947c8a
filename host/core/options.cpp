#include "host/core/options.hpp"

#include "host/core/spelling.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace monge::host {

OptionCli with(std::string value, std::string default_text, std::vector<std::string> aliases) {
  OptionCli c;
  c.value = std::move(value);
  c.default_text = std::move(default_text);
  c.aliases = std::move(aliases);
  return c;
}

OptionCli cli_only(std::string value, std::string default_text) {
  OptionCli c = with(std::move(value), std::move(default_text));
  c.cli_only = true;
  return c;
}

OptionCli lua_only(std::string default_text) {
  OptionCli c;
  c.lua_only = true;
  c.default_text = std::move(default_text);
  return c;
}

namespace {

constexpr size_t kHelpWidth = 100, kHelpIndent = 20;

std::string placeholder(const ParamSpec& spec) {
  switch (spec.type) {
    case ParamType::Bool: return "";
    case ParamType::Int: return "N";
    case ParamType::Real: return "X";
    case ParamType::RealList: return "X,Y,...";
    default: return "TEXT";
  }
}

// A value as help and docs show it: strings bare, lists comma-separated.
std::string plain(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return "required";
  if (auto s = std::get_if<std::string>(&v)) return s->empty() ? "none" : *s;
  if (auto l = std::get_if<std::vector<std::string>>(&v)) {
    std::string out;
    for (const auto& x : *l) out += (out.empty() ? "" : ",") + x;
    return out.empty() ? "none" : out;
  }
  return detail::value_text(v);
}

// What a value must be, for errors: "an integer in [1, 65536]", "one of auto|cpu|cuda".
std::string expected(const ParamSpec& spec) {
  if (spec.type == ParamType::Choice) return "one of " + range_text(spec);
  const std::string r = range_text(spec);
  return std::string(spec.type == ParamType::Int ? "an " : "a ") + type_name(spec) + (r.empty() ? "" : " in " + r);
}

// Words wrapped to `width` columns, every line but the first starting at `indent`.
std::string wrap(const std::string& text, size_t first_column, size_t indent, size_t width) {
  std::istringstream words(text);
  std::string word, out;
  size_t column = first_column;
  bool line_start = true;
  while (words >> word) {
    if (!line_start && column + 1 + word.size() > width) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
      line_start = true;
    }
    if (!line_start) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    line_start = false;
  }
  return out;
}

std::string markdown_cell(std::string text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// A typed value from the text of a flag's argument; throws ParamError naming the flag.
Value parse_value(const ParamSpec& spec, const std::string& text, const std::string& who) {
  auto bad = [&]() { return ParamError(who + " expects " + expected(spec) + ", got '" + text + "'"); };
  switch (spec.type) {
    case ParamType::Int: {
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) throw bad();
      return static_cast<int64_t>(n);
    }
    case ParamType::Real: {
      char* end = nullptr;
      const double d = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') throw bad();
      return d;
    }
    case ParamType::RealList: {
      std::vector<double> list;
      std::stringstream items(text);
      std::string item;
      while (std::getline(items, item, ',')) {
        char* end = nullptr;
        const double d = std::strtod(item.c_str(), &end);
        if (item.empty() || *end != '\0') throw bad();
        list.push_back(d);
      }
      return list;
    }
    default: return text;  // String, Choice (checked by the schema), StringList (appended by the caller)
  }
}

}  // namespace

OptionSet& OptionSet::add(const Schema& schema, const std::vector<std::pair<std::string, OptionCli>>& cli) {
  for (const auto& spec : schema.specs()) {
    schema_.add(spec);
    OptionCli extra;
    for (const auto& [name, c] : cli)
      if (name == spec.name) extra = c;
    if (extra.value.empty() && spec.type != ParamType::Bool) extra.value = placeholder(spec);
    cli_.emplace_back(spec.name, std::move(extra));
  }
  for (const auto& [name, c] : cli)
    if (!schema.find(name)) throw Error("internal: option set " + owner_ + " describes an undeclared option '" + name + "'");
  return *this;
}

OptionSet& OptionSet::add(const OptionSet& other) {
  for (const auto& spec : other.schema_.specs()) {
    schema_.add(spec);
    cli_.emplace_back(spec.name, other.cli(spec.name));
  }
  return *this;
}

OptionSet& OptionSet::add(const OptionSet& other, const std::vector<std::string>& names, Use use) {
  for (const auto& name : names) {
    const ParamSpec* spec = other.schema_.find(name);
    if (!spec) throw Error("internal: option set " + other.owner_ + " has no option '" + name + "' for " + owner_);
    schema_.add(*spec);
    OptionCli c = other.cli(name);
    if (use == Use::LuaOnly) c = OptionCli{"", c.default_text, {}, false, false, true, std::nullopt};
    if (use == Use::CliOnly) c.cli_only = true;
    cli_.emplace_back(name, std::move(c));
  }
  return *this;
}

OptionSet& OptionSet::opaque(std::string name, std::string values, std::string default_text, std::string doc) {
  if (schema_.find(name)) throw Error("internal: option set " + owner_ + " declares '" + name + "' twice");
  opaque_.push_back({schema_.specs().size(), std::move(name), std::move(values), std::move(default_text), std::move(doc)});
  return *this;
}

std::vector<std::string> OptionSet::lua_keys() const {
  std::vector<std::string> keys;
  for (const auto& spec : schema_.specs())
    if (!cli(spec.name).cli_only) keys.push_back(spec.name);
  for (const auto& o : opaque_) keys.push_back(o.name);
  return keys;
}

const OptionCli& OptionSet::cli(const std::string& name) const {
  for (const auto& [n, c] : cli_)
    if (n == name) return c;
  throw Error("internal: option set " + owner_ + " has no option '" + name + "'");
}

std::string OptionSet::flag(const ParamSpec& spec) const {
  const std::string flag = OptionSpelling{true}.name(spec.name);  // "--max-pixels": one spelling of flags
  return cli(spec.name).negated ? "--no-" + flag.substr(2) : flag;
}

Params OptionSet::resolve(const ParamMap& given, const std::string& who) const {
  for (const auto& [key, value] : given)
    if (schema_.find(key) && cli(key).cli_only)
      throw ParamError(who + ": unknown parameter '" + key + "' (a command-line option only)");
  return schema_.resolve(given, who);
}

OptionSet::Parsed OptionSet::parse(const std::vector<std::string>& args) const {
  Parsed out;
  std::vector<std::string> flags;
  for (const auto& spec : schema_.specs())
    if (!cli(spec.name).lua_only) flags.push_back(flag(spec));
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return out;
    }
    if (a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const ParamSpec* spec = nullptr;
    for (const auto& s : schema_.specs()) {
      const OptionCli& c = cli(s.name);
      if (!c.lua_only && (flag(s) == name || std::find(c.aliases.begin(), c.aliases.end(), name) != c.aliases.end()))
        spec = &s;
    }
    if (!spec) {
      const std::string hint = did_you_mean(name, flags);
      throw ParamError(owner_ + ": unknown option '" + name + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                       "; see monge " + owner_ + " --help");
    }
    const std::string who = owner_ + ": " + name;
    if (spec->type == ParamType::Bool) {
      if (eq != std::string::npos) throw ParamError(who + " takes no value");
      out.given[spec->name] = !cli(spec->name).negated;
      continue;
    }
    std::string text;
    if (eq != std::string::npos) text = a.substr(eq + 1);
    else if (i + 1 < args.size()) text = args[++i];
    else throw ParamError(who + " needs a value: " + expected(*spec));
    Value v = parse_value(*spec, text, who);
    if (spec->type == ParamType::StringList) {
      auto& list = out.given[spec->name];
      if (!std::holds_alternative<std::vector<std::string>>(list)) list = std::vector<std::string>{};
      std::get<std::vector<std::string>>(list).push_back(text);
    } else {
      out.given[spec->name] = std::move(v);
    }
  }
  return out;
}

Params OptionSet::resolve_cli(const ParamMap& given) const {
  ParamMap all = given;
  for (const auto& [name, c] : cli_)
    if (c.cli_default && !all.count(name)) all[name] = *c.cli_default;
  return schema_.resolve(all, owner_, [this](const std::string& name) { return flag(*schema_.find(name)); }, "");
}

std::string default_text(const ParamSpec& spec, const OptionCli& cli, bool for_cli) {
  if (!cli.default_text.empty()) return cli.default_text;
  if (for_cli && cli.cli_default) return plain(*cli.cli_default);
  return plain(spec.default_value);
}

std::string OptionSet::help() const {
  std::string out;
  for (const auto& spec : schema_.specs()) {
    const OptionCli& c = cli(spec.name);
    if (c.lua_only) continue;
    std::string left = "  " + flag(spec) + (c.value.empty() ? "" : " " + c.value);
    for (const auto& alias : c.aliases) left += ", " + alias + (c.value.empty() ? "" : " " + c.value);
    std::string doc = c.negated ? "no " + spec.doc : spec.doc;
    if (std::holds_alternative<std::monostate>(spec.default_value)) doc += " (required)";
    else if (spec.type != ParamType::Bool) doc += " (default: " + default_text(spec, c, true) + ")";
    if (left.size() + 1 >= kHelpIndent) {
      out += left + "\n" + std::string(kHelpIndent, ' ');
    } else {
      out += left + std::string(kHelpIndent - left.size(), ' ');
    }
    out += wrap(doc, kHelpIndent, kHelpIndent, kHelpWidth) + "\n";
  }
  return out;
}

std::string OptionSet::markdown() const {
  const auto& specs = schema_.specs();
  const bool flags = std::any_of(specs.begin(), specs.end(), [this](const ParamSpec& s) { return !cli(s.name).lua_only; });
  std::string out = flags ? "| option | Lua key | values | default | meaning |\n|---|---|---|---|---|\n"
                          : "| Lua key | values | default | meaning |\n|---|---|---|---|\n";
  auto row = [&](const std::string& option, const std::string& key, const std::string& values, const std::string& def,
                 const std::string& doc) {
    out += "| " + (flags ? option + " | " : std::string()) + key + " | " + markdown_cell(values) + " | " + markdown_cell(def) +
           " | " + markdown_cell(doc) + " |\n";
  };
  auto opaque_rows = [&](size_t position) {
    for (const auto& o : opaque_)
      if (o.position == position) row("—", "`" + o.name + "`", o.values, o.default_text, o.doc);
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    opaque_rows(i);
    const ParamSpec& spec = specs[i];
    const OptionCli& c = cli(spec.name);
    std::string option = "—";
    if (!c.lua_only) {
      option = "`" + flag(spec) + (c.value.empty() ? "" : " " + c.value) + "`";
      for (const auto& alias : c.aliases) option += ", `" + alias + "`";
    }
    const std::string key = c.cli_only ? "—" : "`" + spec.name + "`";
    std::string values = spec.type == ParamType::Choice ? range_text(spec) : type_name(spec);
    if (spec.type != ParamType::Choice && !range_text(spec).empty()) values += " in " + range_text(spec);
    std::string def = default_text(spec, c, false);
    if (c.cli_default && c.default_text.empty()) def += " (command line: " + plain(*c.cli_default) + ")";
    row(option, key, values, def, spec.doc);
  }
  opaque_rows(specs.size());
  return out;
}

}  // namespace monge::host
