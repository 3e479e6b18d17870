#include "config/environment.h"

#include <cstdio>
#include <optional>
#include <set>
#include <vector>

namespace sidecar {

namespace {

constexpr const char* kPrefix = "OTP_SIDECAR_";

}  // namespace

std::string VariableForKey(const std::string& key) {
  std::string name = kPrefix;
  for (char c : key) {
    name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

namespace config_internal {
namespace {

// A TOML basic string holding `text` exactly.
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool IsQuoted(const std::string& value) {
  return !value.empty() && (value.front() == '"' || value.front() == '\'');
}

// Parses the variable's value as the one value of a TOML document whose source is named
// after the variable, so that later problems with it name the variable.
std::optional<toml::table> ParseValue(const std::string& variable, const std::string& value,
                                      KeyKind kind, Problems& problems) {
  bool bare_text = kind == KeyKind::kText ||
                   (kind == KeyKind::kTextOrArray && (value.empty() || value.front() != '['));
  std::string text = bare_text && !IsQuoted(value) ? Quoted(value) : value;
  try {
    toml::table parsed = toml::parse("value = " + text, variable);
    if (parsed.size() != 1) {
      problems.AddRaw("environment " + variable + ": must hold one TOML value");
      return std::nullopt;
    }
    return parsed;
  } catch (const toml::parse_error& e) {
    problems.AddRaw("environment " + variable + ": is not a TOML value (" +
                    std::string(e.description()) + ")");
    return std::nullopt;
  }
}

// The table at `path` ("limits.pumping"), made when missing; nullptr when something that is
// not a table is in the way (the file's own problem, reported when it is read).
toml::table* TableAt(toml::table& root, const std::string& path) {
  toml::table* table = &root;
  std::size_t start = 0;
  while (start < path.size()) {
    std::size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    auto it = table->emplace<toml::table>(part).first;
    table = it->second.as_table();
    if (table == nullptr) return nullptr;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return table;
}

void Override(const std::string& key, std::string variable, toml::table& value, toml::table& root,
              Problems& problems) {
  std::string::size_type dot = key.rfind('.');
  toml::table* table = dot == std::string::npos ? &root : TableAt(root, key.substr(0, dot));
  if (table == nullptr) return;
  std::string leaf = dot == std::string::npos ? key : key.substr(dot + 1);
  // Moved, not copied: a moved node keeps its source, which names the variable.
  table->insert_or_assign(leaf, std::move(*value.get("value")));
  problems.FromVariable(variable);
}

// The variables the configuration names as sources of secrets (*_env keys): they are not
// overrides and must not be refused as unknown.
std::set<std::string> SecretVariables(const std::map<std::string, KeyKind>& keys,
                                      const toml::table& root) {
  std::set<std::string> names;
  for (const auto& [key, kind] : keys) {
    if (key.size() < 4 || key.compare(key.size() - 4, 4, "_env") != 0) continue;
    std::optional<std::string> name = root.at_path(key).value<std::string>();
    if (name) names.insert(*name);
  }
  return names;
}

}  // namespace

void ApplyEnvironment(const Environment& environment, const std::map<std::string, KeyKind>& keys,
                      toml::table& root, Problems& problems) {
  std::map<std::string, std::pair<std::string, KeyKind>> by_variable;
  for (const auto& [key, kind] : keys) {
    if (kind != KeyKind::kTable) by_variable[VariableForKey(key)] = {key, kind};
  }

  std::vector<std::string> unknown;
  for (const auto& [variable, value] : environment) {
    if (variable.rfind(kPrefix, 0) != 0) continue;
    auto known = by_variable.find(variable);
    if (known == by_variable.end()) {
      unknown.push_back(variable);
      continue;
    }
    const auto& [key, kind] = known->second;
    std::optional<toml::table> parsed = ParseValue(variable, value, kind, problems);
    if (parsed) Override(key, variable, *parsed, root, problems);
  }

  std::set<std::string> secrets = SecretVariables(keys, root);
  for (const std::string& variable : unknown) {
    if (secrets.count(variable) != 0) continue;
    problems.AddRaw("environment " + variable +
                    ": unknown variable; OTP_SIDECAR_<SECTION>_<KEY> must name a configuration "
                    "key, like OTP_SIDECAR_CODE_TTL for code.ttl");
  }
}

}  // namespace config_internal
}  // namespace sidecar
