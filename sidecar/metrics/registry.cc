#include "metrics/registry.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <regex>

namespace sidecar {
namespace {

// Names are fixed in the code, so a bad one is a programming error, caught by the
// assertions in debug builds and by the tests.
[[maybe_unused]] bool IsMetricName(const std::string& name) {
  static const std::regex kName("^[a-zA-Z_:][a-zA-Z0-9_:]*$");
  return std::regex_match(name, kName);
}

[[maybe_unused]] bool IsLabelName(const std::string& name) {
  static const std::regex kName("^[a-zA-Z_][a-zA-Z0-9_]*$");
  return std::regex_match(name, kName) && name.rfind("__", 0) != 0 && name != "le";
}

void AppendSample(std::string& out, const std::string& name, const std::string& labels,
                  const std::string& value) {
  out += name;
  out += labels;
  out += ' ';
  out += value;
  out += '\n';
}

// Adds `value` to an atomic double: there is no fetch_add for doubles before C++20.
void AtomicAdd(std::atomic<double>& target, double value) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + value, std::memory_order_relaxed)) {
  }
}

// Backslash and newline always; double quotes too inside a quoted label value.
std::string Escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\' || (quotes && c == '"')) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  return Escape(value, true);
}

std::string EscapeHelp(std::string_view help) {
  return Escape(help, false);
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";

  char text[64];
  auto [end, error] = std::to_chars(text, text + sizeof text, value);
  if (error != std::errc()) return "NaN";
  return std::string(text, end);
}

MetricFamily::MetricFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  assert(IsMetricName(name_));
  assert(std::all_of(label_names_.begin(), label_names_.end(), IsLabelName));
}

void MetricFamily::Render(std::string& out) const {
  out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + type() + "\n";
  RenderSamples(out);
}

std::string MetricFamily::OpenLabels(const LabelValues& values) const {
  if (label_names_.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < label_names_.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  return out;
}

std::string MetricFamily::Labels(const LabelValues& values) const {
  std::string open = OpenLabels(values);
  return open.empty() ? open : open + "}";
}

void CounterFamily::Add(const LabelValues& values, std::uint64_t amount) {
  if (!Fits(values)) return;
  series_.Get(values).fetch_add(amount, std::memory_order_relaxed);
}

void CounterFamily::RaiseTo(const LabelValues& values, std::uint64_t total) {
  if (!Fits(values)) return;
  std::atomic<std::uint64_t>& cell = series_.Get(values);
  std::uint64_t seen = cell.load(std::memory_order_relaxed);
  // Two scrapes may race; the larger of their readings wins.
  while (seen < total && !cell.compare_exchange_weak(seen, total, std::memory_order_relaxed)) {
  }
}

std::uint64_t CounterFamily::Value(const LabelValues& values) const {
  const std::atomic<std::uint64_t>* cell = series_.Find(values);
  return cell == nullptr ? 0 : cell->load(std::memory_order_relaxed);
}

void CounterFamily::RenderSamples(std::string& out) const {
  series_.ForEach([&](const LabelValues& values, const std::atomic<std::uint64_t>& cell) {
    AppendSample(out, name(), Labels(values), std::to_string(cell.load()));
  });
}

void GaugeFamily::Set(const LabelValues& values, double value) {
  if (!Fits(values)) return;
  series_.Get(values).store(value, std::memory_order_relaxed);
}

double GaugeFamily::Value(const LabelValues& values) const {
  const std::atomic<double>* cell = series_.Find(values);
  return cell == nullptr ? std::nan("") : cell->load(std::memory_order_relaxed);
}

void GaugeFamily::RenderSamples(std::string& out) const {
  series_.ForEach([&](const LabelValues& values, const std::atomic<double>& cell) {
    AppendSample(out, name(), Labels(values), FormatSampleValue(cell.load()));
  });
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : MetricFamily(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)),
      series_([buckets = bounds_.size() + 1] { return std::make_unique<Cell>(buckets); }) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void HistogramFamily::Observe(const LabelValues& values, double value) {
  if (!Fits(values)) return;
  Cell& cell = series_.Get(values);

  // The first bucket whose upper bound holds the value; "le" means less than or equal.
  std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  cell.counts[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(cell.sum, value);
}

void HistogramFamily::Declare(const LabelValues& values) {
  if (Fits(values)) series_.Get(values);
}

std::uint64_t HistogramFamily::Count(const LabelValues& values) const {
  const Cell* cell = series_.Find(values);
  if (cell == nullptr) return 0;
  std::uint64_t total = 0;
  for (const auto& count : cell->counts)
    total += count.load(std::memory_order_relaxed);
  return total;
}

void HistogramFamily::RenderSamples(std::string& out) const {
  series_.ForEach([&](const LabelValues& values, const Cell& cell) {
    std::string open = OpenLabels(values);
    std::string le_prefix = open.empty() ? "{le=\"" : open + ",le=\"";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < cell.counts.size(); ++i) {
      cumulative += cell.counts[i].load(std::memory_order_relaxed);
      std::string bound = i < bounds_.size() ? FormatSampleValue(bounds_[i]) : "+Inf";
      AppendSample(out, name() + "_bucket", le_prefix + bound + "\"}", std::to_string(cumulative));
    }
    std::string labels = Labels(values);
    AppendSample(out, name() + "_sum", labels, FormatSampleValue(cell.sum.load()));
    AppendSample(out, name() + "_count", labels, std::to_string(cumulative));
  });
}

template <typename Family, typename... Args>
Family& Registry::Add(Args&&... args) {
  auto family = std::make_unique<Family>(std::forward<Args>(args)...);
  Family& added = *family;
  assert(std::none_of(families_.begin(), families_.end(),
                      [&](const auto& f) { return f->name() == added.name(); }));
  families_.push_back(std::move(family));
  return added;
}

CounterFamily& Registry::Counter(std::string name, std::string help,
                                 std::vector<std::string> label_names) {
  return Add<CounterFamily>(std::move(name), std::move(help), std::move(label_names));
}

GaugeFamily& Registry::Gauge(std::string name, std::string help,
                             std::vector<std::string> label_names) {
  return Add<GaugeFamily>(std::move(name), std::move(help), std::move(label_names));
}

HistogramFamily& Registry::Histogram(std::string name, std::string help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  return Add<HistogramFamily>(std::move(name), std::move(help), std::move(label_names),
                              std::move(bounds));
}

std::string Registry::Render() const {
  std::string out;
  out.reserve(8192);
  for (const auto& family : families_)
    family->Render(out);
  return out;
}

}  // namespace sidecar
