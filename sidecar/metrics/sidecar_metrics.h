#pragma once

// The sidecar's metrics: counters and histograms kept in memory (they start from 0 at each
// start, as Prometheus expects), and gauges read from the store when the page is rendered.
// Every series of a known label value is declared at 0 from the start. The names, labels
// and meanings are listed in the README's Metrics section. Thread-safe.

#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "metrics/metrics.h"
#include "metrics/registry.h"
#include "store/store.h"

namespace sidecar {

// The label values known at start, whose series are declared at 0.
struct KnownLabels {
  std::vector<std::string> providers;                         // configured, in any order
  std::vector<std::pair<std::string, std::string>> requests;  // (route pattern, method)
};

class SidecarMetrics final : public Metrics, public MetricsPage {
 public:
  // `started_at`: when the process started; `version`: the build's version. `store` is read
  // at each Render() and must outlive this object.
  SidecarMetrics(Store& store, const KnownLabels& known, const std::string& version,
                 TimeMs started_at);

  void CountChallenge(std::string_view outcome) override;
  void CountVerification(std::string_view status) override;
  void CountRefusal(std::string_view limit) override;
  void CountDelivery(std::string_view provider, std::string_view result) override;
  void ObserveDeliveryDuration(std::string_view provider, double seconds) override;
  void ObserveRequest(std::string_view route, std::string_view method, double seconds) override;

  // Reads the store's gauges, then renders every family. When the store cannot be read, its
  // gauges are left out (and the failure is logged) rather than shown stale.
  std::string Render() override;

 private:
  void Declare(const KnownLabels& known);

  Store& store_;
  Registry registry_;
  CounterFamily& challenges_;
  CounterFamily& verifications_;
  CounterFamily& refusals_;
  CounterFamily& deliveries_;
  HistogramFamily& delivery_seconds_;
  HistogramFamily& request_seconds_;
  GaugeFamily& outbox_depth_;
  GaugeFamily& database_bytes_;
  CounterFamily& store_transactions_;
  CounterFamily& store_commits_;
};

}  // namespace sidecar
