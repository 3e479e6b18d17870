#pragma once

// A small in-memory registry of counters, gauges and histograms, rendered in the Prometheus
// text exposition format, version 0.0.4.
//
// A family is one metric name with fixed label names; each combination of label values is
// one series. A series is made on its first update, or declared up front so that it shows
// 0 before its first event (rates need a starting point). Updating a series that exists
// takes a shared lock to find it and then only atomic operations, so request threads never
// wait on each other or on a scrape for long. Label values must come from small fixed sets
// (never from request input): each distinct value is a series kept for the life of the
// process.
//
// Families are registered before use and live as long as the registry. Thread-safe.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar {

using LabelValues = std::vector<std::string>;

// One metric family of any type. Samples are rendered in the order of their label values.
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::vector<std::string> label_names);
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }

  // Appends "# HELP", "# TYPE" and every sample line.
  void Render(std::string& out) const;

 protected:
  // "counter", "gauge" or "histogram".
  virtual const char* type() const = 0;
  virtual void RenderSamples(std::string& out) const = 0;

  // `{a="x",b="y"` without the closing brace (so a histogram can add `le`), or "" for a
  // family without labels.
  std::string OpenLabels(const LabelValues& values) const;
  // The complete label set, "{...}" or "".
  std::string Labels(const LabelValues& values) const;
  // True when `values` has one value per label name.
  bool Fits(const LabelValues& values) const { return values.size() == label_names_.size(); }

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
};

// Series of one family by label values: found under a shared lock, made under an exclusive
// one. Cells are never removed while the registry lives unless the family clears them.
template <typename Cell>
class SeriesMap {
 public:
  explicit SeriesMap(std::function<std::unique_ptr<Cell>()> make_cell =
                         [] { return std::make_unique<Cell>(); })
      : make_cell_(std::move(make_cell)) {}

  // The cell for `values`, made on first use. Never null.
  Cell& Get(const LabelValues& values) {
    {
      std::shared_lock<std::shared_mutex> lock(mutex_);
      auto it = cells_.find(values);
      if (it != cells_.end()) return *it->second;
    }
    std::unique_lock<std::shared_mutex> lock(mutex_);
    auto& cell = cells_[values];
    if (!cell) cell = make_cell_();
    return *cell;
  }

  // The cell for `values`, or null when it was never made.
  const Cell* Find(const LabelValues& values) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = cells_.find(values);
    return it == cells_.end() ? nullptr : it->second.get();
  }

  template <typename Visit>
  void ForEach(Visit visit) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (const auto& [values, cell] : cells_)
      visit(values, *cell);
  }

  void Clear() {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    cells_.clear();
  }

 private:
  const std::function<std::unique_ptr<Cell>()> make_cell_;
  mutable std::shared_mutex mutex_;  // guards cells_ (not the cells' own atomic values)
  std::map<LabelValues, std::unique_ptr<Cell>> cells_;
};

// A count that only goes up (and back to 0 when the process restarts).
class CounterFamily final : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;

  // Adds `amount` to the series. Ignored when `values` does not fit the label names.
  void Add(const LabelValues& values, std::uint64_t amount = 1);
  // Raises the series to `total` when it is below: for a count kept elsewhere and read at
  // scrape time, which can never make the series go down.
  void RaiseTo(const LabelValues& values, std::uint64_t total);
  // Makes the series show 0 until its first Add.
  void Declare(const LabelValues& values) { Add(values, 0); }
  // The series' value; 0 when it was never made.
  std::uint64_t Value(const LabelValues& values) const;

 private:
  const char* type() const override { return "counter"; }
  void RenderSamples(std::string& out) const override;

  SeriesMap<std::atomic<std::uint64_t>> series_;
};

// A value read at some moment (set by whoever reads it, for example at scrape time).
class GaugeFamily final : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;

  // Ignored when `values` does not fit the label names.
  void Set(const LabelValues& values, double value);
  // Removes every series, so a value that could not be read is absent rather than stale.
  void Clear() { series_.Clear(); }
  // The series' value, or NaN when it is absent.
  double Value(const LabelValues& values) const;

 private:
  const char* type() const override { return "gauge"; }
  void RenderSamples(std::string& out) const override;

  SeriesMap<std::atomic<double>> series_;
};

// Observations counted into buckets with fixed upper bounds, plus their sum and count.
class HistogramFamily final : public MetricFamily {
 public:
  // `bounds`: the buckets' upper bounds, increasing; "+Inf" is always added.
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);

  // Ignored when `values` does not fit the label names.
  void Observe(const LabelValues& values, double value);
  // Makes the series show empty buckets until its first observation.
  void Declare(const LabelValues& values);

  // The series' observation count; 0 when it was never made.
  std::uint64_t Count(const LabelValues& values) const;

 private:
  // Per-bucket (not cumulative) counts, the last for values above every bound. Cumulative
  // counts and the total are computed when rendering, so `_count` always equals the
  // "+Inf" bucket even while observations arrive.
  struct Cell {
    explicit Cell(std::size_t buckets) : counts(buckets) {}
    std::vector<std::atomic<std::uint64_t>> counts;
    std::atomic<double> sum{0};
  };

  const char* type() const override { return "histogram"; }
  void RenderSamples(std::string& out) const override;

  const std::vector<double> bounds_;
  SeriesMap<Cell> series_;
};

class Registry {
 public:
  // Each registers a family under a new name. REQUIRES: the name and label names are valid
  // Prometheus names and the name is not registered yet. The family lives as long as the
  // registry.
  CounterFamily& Counter(std::string name, std::string help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  HistogramFamily& Histogram(std::string name, std::string help,
                             std::vector<std::string> label_names, std::vector<double> bounds);

  // Every family in the order registered, in the text exposition format.
  std::string Render() const;

 private:
  template <typename Family, typename... Args>
  Family& Add(Args&&... args);

  std::vector<std::unique_ptr<MetricFamily>> families_;  // appended before serving only
};

// The exposition format's escaping of a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

// The exposition format's escaping of HELP text: backslash and newline.
std::string EscapeHelp(std::string_view help);

// A sample value as the exposition format writes it: the shortest text that reads back as
// the same double, "+Inf", "-Inf" or "NaN".
std::string FormatSampleValue(double value);

}  // namespace sidecar
