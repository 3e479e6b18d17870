#pragma once

// Internal to config/: reading TOML tables with type checks, collecting every problem
// with its file, line and key. Nothing outside config/ includes this.

#include <toml++/toml.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_size.h"
#include "common/result.h"
#include "common/time_format.h"
#include "limits/rate_rule.h"

namespace sidecar::config_internal {

// How a key's value is written, for overrides from the environment: kText values (strings
// and durations) may be given bare; kValue values are TOML (numbers, booleans, arrays);
// kMap is a table of free-form keys, given as an inline table; kTable is a section.
// How an environment variable's value is read for a key: kText as a bare string, kTextOrArray
// as a bare string unless it starts with "[", the others as TOML.
enum class KeyKind { kText, kTextOrArray, kValue, kMap, kTable };

// Collects every problem so an operator fixes a file in one pass, not one error per start.
class Problems {
 public:
  explicit Problems(std::string origin) : origin_(std::move(origin)) {}

  void Add(const toml::source_region& where, const std::string& key, const std::string& what) {
    lines_.push_back(Place(where) + ": " + key + ": " + what);
  }
  // "FILE:LINE", or "environment VARIABLE" for a value that came from a variable.
  std::string Place(const toml::source_region& where) const {
    if (where.path != nullptr && variables_.count(*where.path) != 0) {
      return "environment " + *where.path;
    }
    return origin_ + ":" + std::to_string(where.begin.line);
  }
  // Values parsed with a variable's name as their source are reported by that name.
  void FromVariable(const std::string& variable) { variables_.insert(variable); }
  void AddFlag(const std::string& flag, const std::string& what) {
    lines_.push_back(flag + ": " + what);
  }
  void AddRaw(const std::string& line) { lines_.push_back(line); }

  // Remembers where a key was set, so that later value checks can point at it.
  void Seen(const std::string& key, const toml::source_region& where) { seen_[key] = where; }
  void FromFlag(const std::string& key, const std::string& flag) { flags_[key] = flag; }

  // Reports a problem with the value of `key`, naming the flag or the file and line it
  // came from.
  void AddFor(const std::string& key, const std::string& what) {
    if (auto flag = flags_.find(key); flag != flags_.end()) {
      AddFlag(flag->second, what);
    } else if (auto where = seen_.find(key); where != seen_.end()) {
      Add(where->second, key, what);
    } else {
      AddRaw(key + ": " + what);
    }
  }

  // Discovery: the readers run over empty tables only to list every key they know.
  void StartDiscovery() { discovering_ = true; }
  bool discovering() const { return discovering_; }
  void Known(const std::string& key, KeyKind kind) {
    if (discovering_) known_keys_[key] = kind;
  }
  const std::map<std::string, KeyKind>& known_keys() const { return known_keys_; }

  // Where each key seen was set: "--flag", "environment VARIABLE" or "FILE:LINE".
  std::map<std::string, std::string> Origins() const {
    std::map<std::string, std::string> origins;
    for (const auto& [key, where] : seen_)
      origins[key] = Place(where);
    for (const auto& [key, flag] : flags_)
      origins[key] = flag;
    return origins;
  }

  bool empty() const { return lines_.empty(); }
  Error ToError() const {
    std::string message;
    for (const auto& line : lines_) {
      if (!message.empty()) message += '\n';
      message += line;
    }
    return MakeError("invalid_config", message);
  }

 private:
  std::string origin_;
  std::vector<std::string> lines_;
  std::map<std::string, toml::source_region> seen_;
  std::map<std::string, std::string> flags_;
  std::set<std::string> variables_;
  bool discovering_ = false;
  std::map<std::string, KeyKind> known_keys_;
};

inline std::string Join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

// Reads the keys of one TOML table, checking types and reporting keys it does not know.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, Problems& problems)
      : table_(table), prefix_(std::move(prefix)), problems_(problems) {}

  ~TableReader() {
    for (const auto& [key, node] : table_) {
      if (known_.count(std::string(key.str())) == 0) {
        problems_.Add(key.source(), Join(prefix_, key.str()), "unknown key");
      }
    }
  }

  const toml::node* Find(std::string_view key, KeyKind kind = KeyKind::kValue) {
    known_.insert(std::string(key));
    problems_.Known(Join(prefix_, key), kind);
    const toml::node* node = table_.get(key);
    if (node != nullptr) problems_.Seen(Join(prefix_, key), node->source());
    return node;
  }

  void String(std::string_view key, std::string* out) {
    const toml::node* node = Find(key, KeyKind::kText);
    if (node == nullptr) return;
    if (auto value = node->value<std::string>(); value && node->is_string()) {
      *out = *value;
    } else {
      problems_.Add(node->source(), Join(prefix_, key), "must be a string");
    }
  }

  void Integer(std::string_view key, int min, int max, int* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    if (!node->is_integer()) {
      problems_.Add(node->source(), Join(prefix_, key), "must be an integer");
      return;
    }
    std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      problems_.Add(node->source(), Join(prefix_, key),
                    "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return;
    }
    *out = static_cast<int>(value);
  }

  void Duration(std::string_view key, std::int64_t min_ms, std::int64_t max_ms,
                const std::string& range_text, std::int64_t* out) {
    const toml::node* node = Find(key, KeyKind::kText);
    if (node == nullptr) return;
    if (!node->is_string()) {
      problems_.Add(node->source(), Join(prefix_, key),
                    "must be a duration string like \"30s\", \"5m\" or \"1h\"");
      return;
    }
    Result<std::int64_t> ms = ParseDurationMs(node->as_string()->get());
    if (!ms.ok()) {
      problems_.Add(node->source(), Join(prefix_, key), ms.error().message);
      return;
    }
    if (*ms < min_ms || *ms > max_ms) {
      problems_.Add(node->source(), Join(prefix_, key), "must be between " + range_text);
      return;
    }
    *out = *ms;
  }

  // A size in bytes: a TOML integer, or a string ParseByteSize reads ("512MiB", "2GB").
  // Zero, or at least `min` (spelt `min_text` in the message).
  void Size(std::string_view key, std::int64_t min, const std::string& min_text,
            std::int64_t* out) {
    const toml::node* node = Find(key, KeyKind::kText);
    if (node == nullptr) return;
    Result<std::int64_t> bytes = SizeOf(*node);
    if (!bytes.ok()) {
      problems_.Add(node->source(), Join(prefix_, key), bytes.error().message);
      return;
    }
    if (*bytes != 0 && *bytes < min) {
      problems_.Add(node->source(), Join(prefix_, key),
                    "must be 0 (no limit) or at least " + min_text);
      return;
    }
    *out = *bytes;
  }

  void Boolean(std::string_view key, bool* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    if (!node->is_boolean()) {
      problems_.Add(node->source(), Join(prefix_, key), "must be true or false");
      return;
    }
    *out = node->as_boolean()->get();
  }

  void Fraction(std::string_view key, double* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    double value = -1;
    if (node->is_floating_point()) value = node->as_floating_point()->get();
    if (node->is_integer()) value = static_cast<double>(node->as_integer()->get());
    if (!(value >= 0.0 && value <= 1.0)) {
      problems_.Add(node->source(), Join(prefix_, key), "must be a number from 0 to 1");
      return;
    }
    *out = value;
  }

  void Rates(std::string_view key, std::vector<RateRule>* out) {
    std::vector<std::string> texts;
    const toml::node* node = table_.get(key);
    StringArray(key, &texts);
    if (node == nullptr || !node->is_array()) return;

    std::vector<RateRule> rules;
    bool all_valid = true;
    for (const std::string& text : texts) {
      Result<RateRule> rule = ParseRateRule(text);
      if (!rule.ok()) {
        problems_.Add(node->source(), Join(prefix_, key), rule.error().message);
        all_valid = false;
        continue;
      }
      rules.push_back(*rule);
    }
    if (all_valid) *out = rules;
  }

  void StringArray(std::string_view key, std::vector<std::string>* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      problems_.Add(node->source(), Join(prefix_, key), "must be an array of strings");
      return;
    }
    std::vector<std::string> values;
    for (const toml::node& element : *array) {
      if (!element.is_string()) {
        problems_.Add(element.source(), Join(prefix_, key), "must be an array of strings");
        return;
      }
      values.push_back(element.as_string()->get());
    }
    *out = values;
  }

  // Reads a single string as a list of one.
  void StringOrArray(std::string_view key, std::vector<std::string>* out) {
    const toml::node* node = table_.get(key);
    if (node != nullptr && node->is_string()) {
      Find(key, KeyKind::kTextOrArray);
      *out = {node->as_string()->get()};
      return;
    }
    if (node != nullptr && !node->is_array()) {
      Find(key, KeyKind::kTextOrArray);
      problems_.Add(node->source(), Join(prefix_, key), "must be a string or an array of strings");
      return;
    }
    StringArray(key, out);
    problems_.Known(Join(prefix_, key), KeyKind::kTextOrArray);
  }

  // Returns the sub-table `key`, or nullptr (reporting a problem if it is not a table).
  // While discovering keys, a missing table is read as an empty one. `kind` is kMap for a
  // table of free-form keys.
  const toml::table* Table(std::string_view key, KeyKind kind = KeyKind::kTable) {
    const toml::node* node = Find(key, kind);
    if (node == nullptr && problems_.discovering()) {
      static const toml::table kEmpty;
      return &kEmpty;
    }
    if (node == nullptr) return nullptr;
    if (!node->is_table()) {
      problems_.Add(node->source(), Join(prefix_, key), "must be a table");
      return nullptr;
    }
    return node->as_table();
  }

  const toml::source_region& Where(std::string_view key) const {
    const toml::node* node = table_.get(key);
    return node != nullptr ? node->source() : table_.source();
  }

 private:
  static Result<std::int64_t> SizeOf(const toml::node& node) {
    if (node.is_string()) return ParseByteSize(node.as_string()->get());
    if (node.is_integer() && node.as_integer()->get() >= 0) return node.as_integer()->get();
    return MakeError("invalid_size", "must be a number of bytes or a size like \"512MiB\"");
  }

  const toml::table& table_;
  std::string prefix_;
  Problems& problems_;
  std::set<std::string> known_;
};

}  // namespace sidecar::config_internal
