#include "metrics/sidecar_metrics.h"

#include "common/log.h"

namespace sidecar {
namespace {

// Seconds. Requests on loopback take well under a millisecond unless they wait on the
// disk (a commit with synchronous=FULL) or on a busy database.
const std::vector<double> kRequestBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1,    2.5};
// Seconds. Providers answer in tens to hundreds of milliseconds; timeouts are seconds.
const std::vector<double> kDeliveryBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,    2.5,   5,    10,  30};

const std::vector<std::string> kChallengeOutcomes = {"created", "refused",  "approved",  "locked",
                                                     "expired", "canceled", "superseded"};
const std::vector<std::string> kVerifyStatuses = {"approved", "denied", "expired", "locked",
                                                  "canceled", "used",   "refused", "no_challenge"};
const std::vector<std::string> kLimits = {"resend_cooldown",  "user_sends",    "phone_sends",
                                          "ip_sends",         "region_sends",  "global_sends",
                                          "region_suspended", "user_failures", "ip_failures"};
const std::vector<std::string> kDeliveryResults = {"sent", "retry", "failed", "unknown"};

}  // namespace

SidecarMetrics::SidecarMetrics(Store& store, const KnownLabels& known, const std::string& version,
                               TimeMs started_at)
    : store_(store),
      challenges_(registry_.Counter(
          "otp_sidecar_challenges_total",
          "Challenges created, creates refused by a limit, and challenges ended, by outcome.",
          {"outcome"})),
      verifications_(registry_.Counter("otp_sidecar_verifications_total",
                                       "Verify requests answered, by the status answered.",
                                       {"status"})),
      refusals_(registry_.Counter("otp_sidecar_rate_limit_refusals_total",
                                  "Requests refused by an abuse limit, by the limit.", {"limit"})),
      deliveries_(registry_.Counter("otp_sidecar_deliveries_total",
                                    "SMS sends tried, by provider and result.",
                                    {"provider", "result"})),
      delivery_seconds_(registry_.Histogram("otp_sidecar_delivery_duration_seconds",
                                            "Time a provider took to answer one send.",
                                            {"provider"}, kDeliveryBuckets)),
      request_seconds_(registry_.Histogram("otp_sidecar_http_request_duration_seconds",
                                           "Time to answer one HTTP request, by route pattern "
                                           "and method.",
                                           {"route", "method"}, kRequestBuckets)),
      outbox_depth_(registry_.Gauge("otp_sidecar_outbox_depth",
                                    "Deliveries queued, waiting to be sent or retried.")),
      database_bytes_(registry_.Gauge("otp_sidecar_database_size_bytes",
                                      "Size of the database on disk, write-ahead log included.")),
      store_transactions_(registry_.Counter("otp_sidecar_store_transactions_total",
                                            "Store transactions run, failed ones included.")),
      store_commits_(registry_.Counter("otp_sidecar_store_commits_total",
                                       "Database commits; transactions that arrive together "
                                       "share one (group commit).")) {
  registry_
      .Gauge("otp_sidecar_build_info", "Always 1; the version of the running build.", {"version"})
      .Set({version}, 1);
  registry_
      .Gauge("otp_sidecar_process_start_time_seconds",
             "When the process started, in seconds since the Unix epoch.")
      .Set({}, static_cast<double>(started_at) / 1000.0);
  Declare(known);
}

void SidecarMetrics::Declare(const KnownLabels& known) {
  store_transactions_.Declare({});
  store_commits_.Declare({});
  for (const std::string& outcome : kChallengeOutcomes)
    challenges_.Declare({outcome});
  for (const std::string& status : kVerifyStatuses)
    verifications_.Declare({status});
  for (const std::string& limit : kLimits)
    refusals_.Declare({limit});
  for (const std::string& provider : known.providers) {
    for (const std::string& result : kDeliveryResults)
      deliveries_.Declare({provider, result});
    delivery_seconds_.Declare({provider});
  }
  for (const auto& [route, method] : known.requests)
    request_seconds_.Declare({route, method});
}

void SidecarMetrics::CountChallenge(std::string_view outcome) {
  challenges_.Add({std::string(outcome)});
}

void SidecarMetrics::CountVerification(std::string_view status) {
  verifications_.Add({std::string(status)});
}

void SidecarMetrics::CountRefusal(std::string_view limit) {
  refusals_.Add({std::string(limit)});
}

void SidecarMetrics::CountDelivery(std::string_view provider, std::string_view result) {
  deliveries_.Add({std::string(provider), std::string(result)});
}

void SidecarMetrics::ObserveDeliveryDuration(std::string_view provider, double seconds) {
  delivery_seconds_.Observe({std::string(provider)}, seconds);
}

void SidecarMetrics::ObserveRequest(std::string_view route, std::string_view method,
                                    double seconds) {
  request_seconds_.Observe({std::string(route), std::string(method)}, seconds);
}

std::string SidecarMetrics::Render() {
  Result<StoreStats> stats = store_.ReadStats();
  if (stats.ok()) {
    outbox_depth_.Set({}, static_cast<double>(stats->outbox_depth));
    database_bytes_.Set({}, static_cast<double>(stats->database_size_bytes));
    store_transactions_.RaiseTo({}, static_cast<std::uint64_t>(stats->transactions));
    store_commits_.RaiseTo({}, static_cast<std::uint64_t>(stats->commits));
  } else {
    outbox_depth_.Clear();
    database_bytes_.Clear();
    Log(LogLevel::kWarn, "metrics", "cannot read the store's gauges",
        {{"error", stats.error().message}});
  }
  return registry_.Render();
}

}  // namespace sidecar
