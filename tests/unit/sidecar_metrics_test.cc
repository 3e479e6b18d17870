#include "metrics/sidecar_metrics.h"

#include <doctest/doctest.h>

#include <regex>
#include <sstream>
#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr TimeMs kStarted = 1'780'000'000'500;

KnownLabels Known() {
  return KnownLabels{{"file", "twilio"}, {{"/v1/challenges", "POST"}, {"/healthz", "GET"}}};
}

// Every line is a comment (HELP or TYPE) or a sample: name, optional labels, a value.
void CheckWellFormed(const std::string& text) {
  static const std::regex kComment(R"(^# (HELP|TYPE) otp_sidecar_[a-z_]+ .+$)");
  static const std::regex kSample(
      R"(^otp_sidecar_[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? (-?[0-9.e+]+|\+Inf|NaN)$)");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    INFO("line: ", line);
    CHECK((std::regex_match(line, kComment) || std::regex_match(line, kSample)));
  }
  CHECK(text.back() == '\n');
}

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_SUITE("sidecar metrics") {
  TEST_CASE("every known series is declared at 0 before any event") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    SidecarMetrics metrics(*store, Known(), "1.2.3", kStarted);

    std::string text = metrics.Render();

    CheckWellFormed(text);
    for (const char* outcome :
         {"created", "refused", "approved", "locked", "expired", "canceled", "superseded"}) {
      CAPTURE(outcome);
      CHECK(Has(text, "otp_sidecar_challenges_total{outcome=\"" + std::string(outcome) + "\"} 0"));
    }
    for (const char* status : {"approved", "denied", "expired", "locked", "canceled", "used",
                               "refused", "no_challenge"}) {
      CAPTURE(status);
      CHECK(Has(text, "otp_sidecar_verifications_total{status=\"" + std::string(status) + "\"} 0"));
    }
    for (const char* limit :
         {"resend_cooldown", "user_sends", "phone_sends", "ip_sends", "region_sends",
          "global_sends", "region_suspended", "user_failures", "ip_failures"}) {
      CAPTURE(limit);
      CHECK(Has(text,
                "otp_sidecar_rate_limit_refusals_total{limit=\"" + std::string(limit) + "\"} 0"));
    }
    for (const char* provider : {"file", "twilio"}) {
      for (const char* result : {"sent", "retry", "failed", "unknown"}) {
        CHECK(Has(text, "otp_sidecar_deliveries_total{provider=\"" + std::string(provider) +
                            "\",result=\"" + result + "\"} 0"));
      }
      CHECK(Has(text, "otp_sidecar_delivery_duration_seconds_count{provider=\"" +
                          std::string(provider) + "\"} 0"));
    }
    CHECK(Has(text,
              "otp_sidecar_http_request_duration_seconds_count{route=\"/v1/challenges\","
              "method=\"POST\"} 0"));
    CHECK(Has(text,
              "otp_sidecar_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\","
              "le=\"+Inf\"} 0"));
    CHECK(Has(text, "otp_sidecar_build_info{version=\"1.2.3\"} 1"));
    CHECK(Has(text, "otp_sidecar_process_start_time_seconds 1780000000.5"));
    CHECK(Has(text, "# TYPE otp_sidecar_http_request_duration_seconds histogram"));
    CHECK(Has(text, "# TYPE otp_sidecar_challenges_total counter"));
    CHECK(Has(text, "# TYPE otp_sidecar_outbox_depth gauge"));
  }

  TEST_CASE("events show in their series") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    SidecarMetrics metrics(*store, Known(), "1.2.3", kStarted);

    metrics.CountChallenge("created");
    metrics.CountChallenge("created");
    metrics.CountVerification("denied");
    metrics.CountRefusal("phone_sends");
    metrics.CountDelivery("file", "sent");
    metrics.ObserveDeliveryDuration("file", 0.02);
    metrics.ObserveRequest("/v1/challenges/{id}/verify", "POST", 0.003);
    std::string text = metrics.Render();

    CheckWellFormed(text);
    CHECK(Has(text, "otp_sidecar_challenges_total{outcome=\"created\"} 2"));
    CHECK(Has(text, "otp_sidecar_verifications_total{status=\"denied\"} 1"));
    CHECK(Has(text, "otp_sidecar_rate_limit_refusals_total{limit=\"phone_sends\"} 1"));
    CHECK(Has(text, "otp_sidecar_deliveries_total{provider=\"file\",result=\"sent\"} 1"));
    CHECK(
        Has(text, "otp_sidecar_delivery_duration_seconds_bucket{provider=\"file\",le=\"0.01\"} 0"));
    CHECK(Has(text,
              "otp_sidecar_delivery_duration_seconds_bucket{provider=\"file\",le=\"0.025\"} 1"));
    CHECK(Has(text, "otp_sidecar_delivery_duration_seconds_sum{provider=\"file\"} 0.02"));
    CHECK(Has(text,
              "otp_sidecar_http_request_duration_seconds_bucket{route=\"/v1/challenges/{id}/"
              "verify\",method=\"POST\",le=\"0.005\"} 1"));
  }

  TEST_CASE("the store's gauges are read at each render") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    SidecarMetrics metrics(*store, Known(), "1.2.3", kStarted);
    CHECK(Has(metrics.Render(), "otp_sidecar_outbox_depth 0"));

    Challenge c;
    c.id = "ch_" + std::string(26, 'b');
    c.user = "alice";
    c.phone = kTestPhone;
    c.code_hash = Bytes{1};
    c.max_attempts = 5;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Status inserted = tx.InsertChallenge(c);
      for (int i = 0; i < 2 && inserted.ok(); ++i) {
        Result<std::int64_t> queued = tx.InsertDelivery(c.id, "file", 0);
        if (!queued.ok()) inserted = queued.error();
      }
      return inserted;
    });

    std::string text = metrics.Render();
    CHECK(Has(text, "otp_sidecar_outbox_depth 2"));
    Result<StoreStats> stats = store->ReadStats();
    REQUIRE(stats.ok());
    CHECK(Has(text, "otp_sidecar_database_size_bytes " +
                        FormatSampleValue(static_cast<double>(stats->database_size_bytes))));
    CHECK(stats->database_size_bytes > 0);
    CHECK(Has(text, "otp_sidecar_store_transactions_total " + std::to_string(stats->transactions)));
    CHECK(Has(text, "otp_sidecar_store_commits_total " + std::to_string(stats->commits)));
    CHECK(stats->transactions >= 1);
  }

  TEST_CASE("when the store cannot be read its gauges are left out, the rest is shown") {
    FailingStore store;
    SidecarMetrics metrics(store, Known(), "1.2.3", kStarted);
    metrics.CountChallenge("created");

    std::string text;
    std::string logged = CaptureStderr([&] { text = metrics.Render(); });

    CheckWellFormed(text);
    CHECK(Has(text, "otp_sidecar_challenges_total{outcome=\"created\"} 1"));
    CHECK(Has(text, "# TYPE otp_sidecar_outbox_depth gauge"));
    CHECK(text.find("\notp_sidecar_outbox_depth ") == std::string::npos);
    CHECK(text.find("\notp_sidecar_database_size_bytes ") == std::string::npos);
    CHECK(logged.find("level=warn subsystem=metrics") != std::string::npos);
  }
}  // TEST_SUITE
