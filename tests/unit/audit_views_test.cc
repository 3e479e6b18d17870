// The operator views of migrations/0004_audit_views.sql, against a real database holding
// known rows. The views count back from SQLite's own "now", so rows are placed relative to
// the system clock, well clear of the edges.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/time_format.h"
#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr TimeMs kMinuteMs = 60'000;
constexpr TimeMs kHourMs = 60 * kMinuteMs;

using Rows = std::vector<std::vector<std::string>>;

struct ViewsFixture {
  ViewsFixture() : store(OpenStore(dir.File("otp.db"))) {}

  void Audit(TimeMs time, const std::string& event, const std::string& user,
             const std::string& outcome, const std::string& detail = "",
             const std::string& client_ip = "") {
    MustTransact(*store, [&](StoreTx& tx) {
      AuditEvent e;
      e.time = time;
      e.event = event;
      e.user = user;
      e.outcome = outcome;
      e.detail = detail;
      e.client_ip = client_ip;
      return tx.AppendAudit(e);
    });
  }

  void Delivery(const std::string& challenge_id, const std::string& provider, DeliveryState state,
                TimeMs at) {
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Challenge c;
      c.id = challenge_id;
      c.user = "u";
      c.phone = kTestPhone;
      c.status = ChallengeStatus::kApproved;
      c.code_hash = Bytes{1};
      c.max_attempts = 5;
      c.created_at = at;
      c.expires_at = at + 300'000;
      c.ended_at = at;
      Status inserted = tx.InsertChallenge(c);
      if (!inserted.ok()) return inserted;
      Result<std::int64_t> id = tx.InsertDelivery(challenge_id, provider, at);
      if (!id.ok()) return id.error();
      Result<std::optional<sidecar::Delivery>> d = tx.FindLatestDelivery(challenge_id);
      if (!d.ok()) return d.error();
      sidecar::Delivery updated = **d;
      updated.state = state;
      updated.updated_at = at;
      return tx.UpdateDelivery(updated);
    });
  }

  Rows Query(const std::string& sql) {
    SqlReader reader(dir.File("otp.db"));
    return reader.Rows(sql);
  }

  TempDir dir;
  std::unique_ptr<SqliteStore> store;
  TimeMs now = SystemClock().Now();
};

}  // namespace

TEST_SUITE("audit_views") {
  TEST_CASE("failed_verifications_last_hour counts each user's failures of the last hour") {
    ViewsFixture f;
    TimeMs recent = f.now - 10 * kMinuteMs;
    f.Audit(recent, "verify", "alice", "denied", "", "192.0.2.1");
    f.Audit(recent + 1, "verify", "alice", "denied", "", "192.0.2.2");
    f.Audit(recent + 2, "verify", "alice", "locked", "reason=user_failures", "192.0.2.2");
    f.Audit(recent + 3, "verify", "alice", "approved");         // not a failure
    f.Audit(f.now - 2 * kHourMs, "verify", "alice", "denied");  // too old
    f.Audit(recent, "verify", "bob", "refused", "limit=ip_failures retry_after_ms=5");
    f.Audit(recent, "create", "carol", "refused", "limit=user_sends retry_after_ms=5");

    Rows rows = f.Query(
        "SELECT user, failures, wrong_codes, refused, client_ips, last_failure_at "
        "FROM failed_verifications_last_hour");

    REQUIRE(rows.size() == 2);
    CHECK(rows[0] ==
          std::vector<std::string>{"alice", "3", "2", "1", "2", FormatRfc3339Millis(recent + 2)});
    CHECK(rows[1] ==
          std::vector<std::string>{"bob", "1", "0", "1", "0", FormatRfc3339Millis(recent)});
  }

  TEST_CASE("deliveries_by_state groups the outbox by state and provider") {
    ViewsFixture f;
    f.Delivery("ch_a", "twilio", DeliveryState::kSent, f.now - 3000);
    f.Delivery("ch_b", "twilio", DeliveryState::kSent, f.now - 2000);
    f.Delivery("ch_c", "webhook", DeliveryState::kSent, f.now - 1000);
    f.Delivery("ch_d", "twilio", DeliveryState::kUnknown, f.now - 500);
    f.Delivery("ch_e", "twilio", DeliveryState::kFailed, f.now - 400);

    Rows rows =
        f.Query("SELECT state, provider, deliveries, last_update_at FROM deliveries_by_state");

    REQUIRE(rows.size() == 4);
    CHECK(rows[0] ==
          std::vector<std::string>{"failed", "twilio", "1", FormatRfc3339Millis(f.now - 400)});
    CHECK(rows[1] ==
          std::vector<std::string>{"sent", "twilio", "2", FormatRfc3339Millis(f.now - 2000)});
    CHECK(rows[2] ==
          std::vector<std::string>{"sent", "webhook", "1", FormatRfc3339Millis(f.now - 1000)});
    CHECK(rows[3] ==
          std::vector<std::string>{"unknown", "twilio", "1", FormatRfc3339Millis(f.now - 500)});
  }

  TEST_CASE("refusals_by_limit names the limit and splits the last hour and day") {
    ViewsFixture f;
    f.Audit(f.now - 5 * kMinuteMs, "create", "a", "refused", "limit=user_sends retry_after_ms=1");
    f.Audit(f.now - 3 * kHourMs, "create", "b", "refused", "limit=user_sends retry_after_ms=1");
    f.Audit(f.now - 3 * 24 * kHourMs, "create", "c", "refused",
            "limit=user_sends retry_after_ms=1");
    f.Audit(f.now - 5 * kMinuteMs, "resend", "a", "refused",
            "limit=resend_cooldown retry_after_ms=9");
    f.Audit(f.now - 5 * kMinuteMs, "verify", "a", "refused",
            "limit=user_failures retry_after_ms=9");
    f.Audit(f.now - 4 * kMinuteMs, "resend", "a", "refused");       // ended challenge, no limit
    f.Audit(f.now - 4 * kMinuteMs, "create", "a", "pending", "x");  // not a refusal

    Rows rows = f.Query(
        "SELECT limit_name, event, refusals, last_hour, last_day, last_refusal_at "
        "FROM refusals_by_limit");

    REQUIRE(rows.size() == 3);
    CHECK(rows[0] == std::vector<std::string>{"user_sends", "create", "3", "1", "2",
                                              FormatRfc3339Millis(f.now - 5 * kMinuteMs)});
    CHECK(rows[1][0] == "resend_cooldown");
    CHECK(rows[1][1] == "resend");
    CHECK(rows[1][2] == "1");
    CHECK(rows[2][0] == "user_failures");
    CHECK(rows[2][1] == "verify");
  }

  TEST_CASE("daily_conversion is approvals over started challenges per UTC day") {
    ViewsFixture f;
    TimeMs day = 24 * kHourMs;
    TimeMs today = f.now - f.now % day + kHourMs;  // 01:00 UTC today, or in the past hour
    if (today > f.now) today -= day;
    TimeMs yesterday = today - day;
    for (int i = 0; i < 4; ++i)
      f.Audit(yesterday, "create", "u", "pending");
    f.Audit(yesterday, "verify", "u", "approved");
    f.Audit(yesterday, "verify", "u", "denied");
    f.Audit(yesterday, "create", "u", "refused", "limit=user_sends");
    f.Audit(today, "create", "u", "pending");
    f.Audit(today, "create", "u", "pending");

    Rows rows = f.Query("SELECT day, created, approved, conversion FROM daily_conversion");

    REQUIRE(rows.size() == 2);
    CHECK(rows[0] == std::vector<std::string>{FormatRfc3339(today).substr(0, 10), "2", "0", "0.0"});
    CHECK(rows[1] ==
          std::vector<std::string>{FormatRfc3339(yesterday).substr(0, 10), "4", "1", "0.25"});
  }
}
