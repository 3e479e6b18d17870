#include "retention/retention.h"

#include <doctest/doctest.h>

#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr TimeMs kDayMs = 24LL * 60 * 60 * 1000;

// A real database file and a clock the test moves, with the default periods (7 days for
// ended challenges, 90 for audit rows) unless told otherwise.
struct RetentionFixture {
  explicit RetentionFixture(RetentionSettings settings = {})
      : store(OpenStore(dir.File("otp.db"))), retention(*store, clock, settings) {}

  // A challenge created at `created_at`; ended at `ended_at` unless that is 0 (pending).
  void AddChallenge(const std::string& id, TimeMs created_at, TimeMs ended_at) {
    AddChallenges(id, 1, created_at, ended_at, 0);
  }

  // `count` challenges named PREFIX0, PREFIX1, ... in one transaction, each with a delivery;
  // the i-th ends at ended_at + i * step_ms (or stays pending when ended_at is 0).
  void AddChallenges(const std::string& prefix, int count, TimeMs created_at, TimeMs ended_at,
                     TimeMs step_ms) {
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      for (int i = 0; i < count; ++i) {
        std::string id = count == 1 ? prefix : prefix + std::to_string(i);
        Challenge c = MakeChallenge(id, created_at, ended_at == 0 ? 0 : ended_at + i * step_ms);
        Status inserted = tx.InsertChallenge(c);
        if (!inserted.ok()) return inserted;
        Result<std::int64_t> delivery = tx.InsertDelivery(id, "console", created_at);
        if (!delivery.ok()) return delivery.error();
      }
      return OkStatus();
    });
  }

  static Challenge MakeChallenge(const std::string& id, TimeMs created_at, TimeMs ended_at) {
    Challenge c;
    c.id = id;
    c.user = "user-" + id;
    c.phone = kTestPhone;
    c.status = ended_at == 0 ? ChallengeStatus::kPending : ChallengeStatus::kApproved;
    c.code_hash = Bytes{1, 2, 3};
    if (ended_at == 0) c.sealed_code = Bytes{4, 5, 6};
    c.max_attempts = 5;
    c.created_at = created_at;
    c.expires_at = created_at + 300'000;
    if (ended_at != 0) c.ended_at = ended_at;
    return c;
  }

  void AddAudit(TimeMs time, int count = 1) {
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      for (int i = 0; i < count; ++i) {
        AuditEvent event;
        event.time = time;
        event.event = "verify";
        event.outcome = "denied";
        Status appended = tx.AppendAudit(event);
        if (!appended.ok()) return appended;
      }
      return OkStatus();
    });
  }

  RetentionBatch MustDelete() {
    Result<RetentionBatch> batch = retention.DeleteBatch();
    REQUIRE_MESSAGE(batch.ok(), (batch.ok() ? "" : batch.error().message));
    return *batch;
  }

  std::int64_t Count(const std::string& sql) {
    SqlReader reader(dir.File("otp.db"));
    return reader.Int(sql);
  }

  TempDir dir;
  FakeClock clock;
  std::unique_ptr<SqliteStore> store;
  Retention retention;
};

}  // namespace

TEST_SUITE("retention") {
  TEST_CASE("ended challenges go with their deliveries after the period and younger ones stay") {
    RetentionFixture f;
    TimeMs now = f.clock.Now();
    f.AddChallenge("ch_old", now - 9 * kDayMs, now - 8 * kDayMs);
    f.AddChallenge("ch_edge", now - 8 * kDayMs, now - 7 * kDayMs);  // exactly the period
    f.AddChallenge("ch_young", now - 7 * kDayMs, now - 7 * kDayMs + 1);
    f.AddChallenge("ch_recent", now - kDayMs, now - kDayMs + 1000);
    // Pending for ages (never swept): never deleted, since it has not ended.
    f.AddChallenge("ch_pending", now - 30 * kDayMs, 0);

    RetentionBatch batch = f.MustDelete();

    CHECK(batch.challenges == 2);
    CHECK_FALSE(batch.full);
    CHECK_FALSE(FindChallenge(*f.store, "ch_old").has_value());
    CHECK_FALSE(FindChallenge(*f.store, "ch_edge").has_value());
    CHECK(FindChallenge(*f.store, "ch_young").has_value());
    CHECK(FindChallenge(*f.store, "ch_recent").has_value());
    CHECK(FindChallenge(*f.store, "ch_pending").has_value());
    CHECK(f.Count("SELECT COUNT(*) FROM deliveries WHERE challenge_id IN ('ch_old', 'ch_edge')") ==
          0);
    CHECK(f.Count("SELECT COUNT(*) FROM deliveries") == 3);

    // A millisecond later the young one has been ended for the whole period too.
    f.clock.Advance(1);
    CHECK(f.MustDelete().challenges == 1);
    CHECK_FALSE(FindChallenge(*f.store, "ch_young").has_value());
    CHECK(f.MustDelete().challenges == 0);
  }

  TEST_CASE("audit rows go after their own period and the oldest first") {
    RetentionFixture f;
    TimeMs now = f.clock.Now();
    f.AddAudit(now - 91 * kDayMs, 3);
    f.AddAudit(now - 90 * kDayMs, 2);
    f.AddAudit(now - 90 * kDayMs + 1, 4);
    f.AddAudit(now - 8 * kDayMs, 5);  // older than the challenge period: audit keeps it

    RetentionBatch batch = f.MustDelete();

    CHECK(batch.audit_events == 5);
    CHECK(batch.challenges == 0);
    CHECK(f.Count("SELECT COUNT(*) FROM audit_events") == 9);
    CHECK(f.Count("SELECT MIN(time) FROM audit_events") == now - 90 * kDayMs + 1);
  }

  TEST_CASE("each call deletes at most one batch of each kind and says when more wait") {
    RetentionSettings settings;
    settings.challenges_ms = kDayMs;
    settings.audit_ms = kDayMs;
    settings.batch_size = 500;
    RetentionFixture f(settings);
    TimeMs now = f.clock.Now();
    f.AddAudit(now - 2 * kDayMs, 1200);
    f.AddAudit(now - kDayMs + 1, 7);  // young
    f.AddChallenges("ch_", 520, now - 3 * kDayMs, now - 2 * kDayMs, 1);

    RetentionBatch first = f.MustDelete();
    CHECK(first.challenges == 500);
    CHECK(first.audit_events == 500);
    CHECK(first.full);
    // The oldest went first.
    CHECK_FALSE(FindChallenge(*f.store, "ch_0").has_value());
    CHECK(FindChallenge(*f.store, "ch_519").has_value());

    RetentionBatch second = f.MustDelete();
    CHECK(second.challenges == 20);
    CHECK(second.audit_events == 500);
    CHECK(second.full);

    RetentionBatch third = f.MustDelete();
    CHECK(third.challenges == 0);
    CHECK(third.audit_events == 200);
    CHECK_FALSE(third.full);

    CHECK(f.Count("SELECT COUNT(*) FROM audit_events") == 7);
    CHECK(f.Count("SELECT COUNT(*) FROM challenges") == 0);
    CHECK(f.Count("SELECT COUNT(*) FROM deliveries") == 0);
  }

  TEST_CASE("a database that cannot be written reports the error") {
    FakeClock clock;
    FailingStore failing;
    Retention retention(failing, clock, RetentionSettings{});
    Result<RetentionBatch> batch = retention.DeleteBatch();
    REQUIRE_FALSE(batch.ok());
    CHECK(batch.error().code == "storage_unavailable");
    CHECK(batch.error().message.find("retention of challenges") != std::string::npos);
  }

  TEST_CASE("freed pages are reused: the file stops growing under steady churn") {
    RetentionSettings settings;
    settings.challenges_ms = kDayMs;
    settings.audit_ms = kDayMs;
    RetentionFixture f(settings);
    auto page_count = [&] { return f.Count("PRAGMA page_count"); };

    std::int64_t after_warmup = 0;
    for (int round = 0; round < 8; ++round) {
      TimeMs now = f.clock.Now();
      f.AddChallenges("ch_" + std::to_string(round) + "_", 200, now, now + 1000, 1);
      f.AddAudit(now, 400);
      f.clock.Advance(2 * kDayMs);
      while (f.MustDelete().full) {
      }
      Status checkpointed = f.store->Checkpoint();
      REQUIRE(checkpointed.ok());
      if (round == 1) after_warmup = page_count();
    }
    INFO("pages after warm-up: ", after_warmup, ", at the end: ", page_count());
    CHECK(after_warmup > 0);
    CHECK(page_count() <= after_warmup);
  }
}
