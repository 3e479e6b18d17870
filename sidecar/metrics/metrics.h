#pragma once

// What the rest of the sidecar tells the metrics about, as it happens, and what GET /metrics
// shows. The challenge rules, the delivery worker and the HTTP server each receive a
// Metrics& and call it where an event happens; none of them knows how it is counted or
// shown. Calls must be cheap and must never block for long: they come from request threads
// and delivery threads. Label words passed in must come from small fixed sets (statuses,
// limit names, provider names, route patterns), never from request input.

#include <string>
#include <string_view>

namespace sidecar {

class Metrics {
 public:
  virtual ~Metrics() = default;

  // A challenge was "created", a create was "refused" by a limit, or a challenge ended with
  // the status it ended with: "approved", "locked", "expired", "canceled", "superseded".
  virtual void CountChallenge(std::string_view outcome) = 0;

  // A verify was answered `status`: a VerifyStatus word ("approved", "denied", ...),
  // "no_challenge" (no such challenge or user) or "refused" (by an address's budget).
  virtual void CountVerification(std::string_view status) = 0;

  // A limit refused a create, resend or verify; `limit` is the problem code it answered.
  virtual void CountRefusal(std::string_view limit) = 0;

  // One send by `provider` ended with `result`: "sent", "retry", "failed" or "unknown".
  virtual void CountDelivery(std::string_view provider, std::string_view result) = 0;

  // How long one call of `provider` took, in seconds.
  virtual void ObserveDeliveryDuration(std::string_view provider, double seconds) = 0;

  // How long one request took, by route pattern (never the raw path) and method.
  virtual void ObserveRequest(std::string_view route, std::string_view method, double seconds) = 0;
};

// The text GET /metrics answers with.
class MetricsPage {
 public:
  virtual ~MetricsPage() = default;

  // The Prometheus text exposition (version 0.0.4) at this moment. Thread-safe.
  virtual std::string Render() = 0;
};

// Counts nothing and shows an empty page: for tests and tools that do not serve.
class NullMetrics final : public Metrics, public MetricsPage {
 public:
  void CountChallenge(std::string_view) override {}
  void CountVerification(std::string_view) override {}
  void CountRefusal(std::string_view) override {}
  void CountDelivery(std::string_view, std::string_view) override {}
  void ObserveDeliveryDuration(std::string_view, double) override {}
  void ObserveRequest(std::string_view, std::string_view, double) override {}
  std::string Render() override { return ""; }
};

// One shared NullMetrics.
NullMetrics& NoMetrics();

}  // namespace sidecar
