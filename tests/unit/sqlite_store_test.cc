#include "store/sqlite_store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/migrations.h"
#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::FindChallenge;
using sidecar::testing::LatestDelivery;
using sidecar::testing::LoadChallenge;
using sidecar::testing::MustTransact;
using sidecar::testing::OpenStore;
using sidecar::testing::SqlReader;
using sidecar::testing::TempDir;

namespace {

constexpr TimeMs kNow = 1'780'000'000'000;

int NewestMigration() {
  return EmbeddedMigrations().back().version;
}

Challenge MakeChallenge(const std::string& id, const std::string& user, TimeMs created_at,
                        TimeMs ttl_ms = 300'000) {
  Challenge c;
  c.id = id;
  c.user = user;
  c.phone = "+12065550100";
  c.locale = "pt-BR";
  c.client_ip = "192.0.2.7";
  c.status = ChallengeStatus::kPending;
  c.code_hash = Bytes{1, 2, 3, 4};
  c.sealed_code = Bytes{9, 8, 7};
  c.attempts = 0;
  c.max_attempts = 5;
  c.created_at = created_at;
  c.expires_at = created_at + ttl_ms;
  return c;
}

void Insert(Store& store, const Challenge& c) {
  MustTransact(store, [&](StoreTx& tx) { return tx.InsertChallenge(c); });
}

std::int64_t QueueDelivery(Store& store, const std::string& challenge_id, TimeMs now,
                           const std::string& provider = "console") {
  std::int64_t id = 0;
  MustTransact(store, [&](StoreTx& tx) -> Status {
    Result<std::int64_t> inserted = tx.InsertDelivery(challenge_id, provider, now);
    if (!inserted.ok()) return inserted.error();
    id = *inserted;
    return OkStatus();
  });
  return id;
}

void End(Store& store, const std::string& id, ChallengeStatus status, TimeMs at) {
  Challenge c = LoadChallenge(store, id);
  c.status = status;
  c.ended_at = at;
  c.sealed_code.reset();
  MustTransact(store, [&](StoreTx& tx) { return tx.UpdateChallenge(c); });
}

std::optional<DeliveryJob> DueAt(Store& store, TimeMs now) {
  std::optional<DeliveryJob> job;
  MustTransact(store, [&](StoreTx& tx) -> Status {
    Result<std::optional<DeliveryJob>> due = tx.FindDueDelivery(now);
    if (!due.ok()) return due.error();
    job = *due;
    return OkStatus();
  });
  return job;
}

void SetUserVersion(const std::string& path, int version) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  std::string sql = "PRAGMA user_version = " + std::to_string(version);
  REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

// Bodies run by RunConcurrently: enough threads that bodies arrive while others run.
constexpr int kConcurrentThreads = 16;
constexpr int kConcurrentBodies = kConcurrentThreads * 40;

// Runs `body(tx, n)` for n = 0 .. kConcurrentBodies-1 as separate transactions from
// kConcurrentThreads threads at once; returns each transaction's status by n.
std::vector<Status> RunConcurrently(Store& store,
                                    const std::function<Status(StoreTx&, int)>& body) {
  std::vector<Status> results(kConcurrentBodies, OkStatus());
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kConcurrentThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load())
        std::this_thread::yield();
      for (int n = t; n < kConcurrentBodies; n += kConcurrentThreads) {
        results[n] = store.Transact([&body, n](StoreTx& tx) { return body(tx, n); });
      }
    });
  }
  go = true;
  for (std::thread& thread : threads)
    thread.join();
  return results;
}

}  // namespace

TEST_SUITE("sqlite_store") {
  TEST_CASE("the embedded migrations start at 1 and have no gaps") {
    const auto& migrations = EmbeddedMigrations();
    REQUIRE_FALSE(migrations.empty());
    for (std::size_t i = 0; i < migrations.size(); ++i) {
      CHECK(migrations[i].version == static_cast<int>(i) + 1);
      CHECK(std::string(migrations[i].sql).size() > 0);
    }
  }

  TEST_CASE("Open creates the database and applies every migration") {
    TempDir dir;
    std::string path = dir.File("otp.db");

    auto store = OpenStore(path);
    CHECK(store->schema_version() == NewestMigration());

    SqlReader reader(path);
    CHECK(reader.Int("PRAGMA user_version") == NewestMigration());
    CHECK(reader.Rows("PRAGMA journal_mode")[0][0] == "wal");
    for (const char* table : {"challenges", "deliveries", "audit_events"}) {
      CAPTURE(table);
      CHECK(reader.Int("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                       {table}) == 1);
    }
  }

  TEST_CASE("reopening is idempotent and keeps the data") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    {
      auto store = OpenStore(path);
      Insert(*store, MakeChallenge("ch_kept", "alice", kNow));
    }

    auto again = OpenStore(path);
    CHECK(again->schema_version() == NewestMigration());
    CHECK(FindChallenge(*again, "ch_kept").has_value());

    auto third = OpenStore(path);
    CHECK(third->schema_version() == NewestMigration());
  }

  TEST_CASE("a database migrated by a newer otp-sidecar is refused with schema_too_new") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    { auto store = OpenStore(path); }
    SetUserVersion(path, NewestMigration() + 1);

    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    REQUIRE_FALSE(store.ok());
    CHECK(store.error().code == "schema_too_new");

    SqlReader reader(path);
    CHECK(reader.Int("PRAGMA user_version") == NewestMigration() + 1);
  }

  TEST_CASE("a database that cannot be opened is storage_unavailable") {
    TempDir dir;

    Result<std::unique_ptr<SqliteStore>> missing_folder =
        SqliteStore::Open(dir.File("no/such/folder/otp.db"));
    REQUIRE_FALSE(missing_folder.ok());
    CHECK(missing_folder.error().code == "storage_unavailable");

    sidecar::testing::WriteWholeFile(dir.File("garbage.db"), std::string(8192, 'x'));
    Result<std::unique_ptr<SqliteStore>> garbage = SqliteStore::Open(dir.File("garbage.db"));
    REQUIRE_FALSE(garbage.ok());
    CHECK(garbage.error().code == "storage_unavailable");
  }

  TEST_CASE("Transact commits when the body succeeds") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    Insert(*store, MakeChallenge("ch_one", "alice", kNow));

    SqlReader reader(path);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges WHERE id = 'ch_one'") == 1);
  }

  TEST_CASE("Transact rolls back every write when the body returns an error") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    Status status = store->Transact([&](StoreTx& tx) -> Status {
      Status inserted = tx.InsertChallenge(MakeChallenge("ch_gone", "alice", kNow));
      if (!inserted.ok()) return inserted;
      Result<std::int64_t> delivery = tx.InsertDelivery("ch_gone", "console", kNow);
      if (!delivery.ok()) return delivery.error();
      AuditEvent audit;
      audit.event = "create";
      audit.challenge_id = "ch_gone";
      Status audited = tx.AppendAudit(audit);
      if (!audited.ok()) return audited;
      return MakeError("invalid_field", "changed my mind", "user");
    });

    REQUIRE_FALSE(status.ok());
    CHECK(status.error().code == "invalid_field");
    CHECK(status.error().field == "user");
    CHECK_FALSE(FindChallenge(*store, "ch_gone").has_value());
    SqlReader reader(path);
    CHECK(reader.Int("SELECT COUNT(*) FROM deliveries") == 0);
    CHECK(reader.Int("SELECT COUNT(*) FROM audit_events") == 0);

    Insert(*store, MakeChallenge("ch_after", "alice", kNow));
    CHECK(FindChallenge(*store, "ch_after").has_value());
  }

  TEST_CASE("a body that throws rolls back and leaves the store usable") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));

    CHECK_THROWS_AS(store->Transact([&](StoreTx& tx) -> Status {
      Status inserted = tx.InsertChallenge(MakeChallenge("ch_thrown", "a", kNow));
      (void)inserted;
      throw std::runtime_error("out of memory, say");
    }),
                    std::runtime_error);

    CHECK_FALSE(FindChallenge(*store, "ch_thrown").has_value());
    Insert(*store, MakeChallenge("ch_after", "alice", kNow));
    CHECK(FindChallenge(*store, "ch_after").has_value());
  }

  TEST_CASE("inserting a challenge id twice is a conflict") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_dup", "alice", kNow));

    Status status = store->Transact(
        [&](StoreTx& tx) { return tx.InsertChallenge(MakeChallenge("ch_dup", "bob", kNow)); });
    REQUIRE_FALSE(status.ok());
    CHECK(status.error().code == "conflict");
    CHECK(LoadChallenge(*store, "ch_dup").user == "alice");
  }

  TEST_CASE("a challenge round trips with every field") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Challenge written = MakeChallenge("ch_full", "alice@example.com", kNow);
    written.code_hash = Bytes{0x00, 0xff, 0x10, 0x00, 0x7f};
    written.sealed_code = Bytes{0x00, 0x01, 0x00};
    written.attempts = 2;

    Insert(*store, written);
    Challenge read = LoadChallenge(*store, "ch_full");

    CHECK(read.id == written.id);
    CHECK(read.user == written.user);
    CHECK(read.phone == written.phone);
    CHECK(read.locale == written.locale);
    CHECK(read.client_ip == written.client_ip);
    CHECK(read.status == ChallengeStatus::kPending);
    CHECK(read.code_hash == written.code_hash);
    REQUIRE(read.sealed_code.has_value());
    CHECK(*read.sealed_code == *written.sealed_code);
    CHECK(read.attempts == 2);
    CHECK(read.max_attempts == 5);
    CHECK(read.created_at == kNow);
    CHECK(read.expires_at == kNow + 300'000);
    CHECK_FALSE(read.ended_at.has_value());

    CHECK_FALSE(FindChallenge(*store, "ch_other").has_value());
  }

  TEST_CASE("UpdateChallenge writes status, attempts, ended_at and erases the sealed code") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    Insert(*store, MakeChallenge("ch_upd", "alice", kNow));

    Challenge c = LoadChallenge(*store, "ch_upd");
    c.status = ChallengeStatus::kLocked;
    c.attempts = 5;
    c.ended_at = kNow + 10;
    c.sealed_code.reset();
    MustTransact(*store, [&](StoreTx& tx) { return tx.UpdateChallenge(c); });

    Challenge read = LoadChallenge(*store, "ch_upd");
    CHECK(read.status == ChallengeStatus::kLocked);
    CHECK(read.attempts == 5);
    REQUIRE(read.ended_at.has_value());
    CHECK(*read.ended_at == kNow + 10);
    CHECK_FALSE(read.sealed_code.has_value());

    SqlReader reader(path);
    CHECK(reader.Int(
              "SELECT COUNT(*) FROM challenges WHERE id = 'ch_upd' AND sealed_code IS NULL") == 1);
  }

  TEST_CASE("the latest challenge of a user is the most recently created") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_old", "alice", kNow));
    Insert(*store, MakeChallenge("ch_new", "alice", kNow + 5));
    Insert(*store, MakeChallenge("ch_same_ms", "bob", kNow));
    Insert(*store, MakeChallenge("ch_same_ms_later", "bob", kNow));
    Insert(*store, MakeChallenge("ch_carol", "carol", kNow + 99));

    std::optional<Challenge> alice, bob, nobody;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      alice = *tx.FindLatestChallengeOfUser("alice");
      bob = *tx.FindLatestChallengeOfUser("bob");
      nobody = *tx.FindLatestChallengeOfUser("dave");
      return OkStatus();
    });

    REQUIRE(alice.has_value());
    CHECK(alice->id == "ch_new");
    REQUIRE(bob.has_value());
    CHECK(bob->id == "ch_same_ms_later");
    CHECK_FALSE(nobody.has_value());
  }

  TEST_CASE("FindPendingChallengesOfUser returns only that user's pending challenges") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_a1", "alice", kNow));
    Insert(*store, MakeChallenge("ch_a2", "alice", kNow + 1));
    Insert(*store, MakeChallenge("ch_b1", "bob", kNow));
    End(*store, "ch_a1", ChallengeStatus::kApproved, kNow + 2);

    std::vector<Challenge> pending;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      pending = *tx.FindPendingChallengesOfUser("alice");
      return OkStatus();
    });

    REQUIRE(pending.size() == 1);
    CHECK(pending[0].id == "ch_a2");
  }

  TEST_CASE(
      "FindExpiredPending returns pending challenges due by now, oldest first, up to a limit") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_late", "a", kNow, 3000));
    Insert(*store, MakeChallenge("ch_early", "b", kNow, 1000));
    Insert(*store, MakeChallenge("ch_exact", "c", kNow, 2000));
    Insert(*store, MakeChallenge("ch_future", "d", kNow, 9000));
    Insert(*store, MakeChallenge("ch_ended", "e", kNow, 500));
    End(*store, "ch_ended", ChallengeStatus::kCanceled, kNow + 1);

    std::vector<Challenge> all, limited;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      all = *tx.FindExpiredPending(kNow + 3000, 10);
      limited = *tx.FindExpiredPending(kNow + 3000, 2);
      return OkStatus();
    });

    REQUIRE(all.size() == 3);
    CHECK(all[0].id == "ch_early");
    CHECK(all[1].id == "ch_exact");
    CHECK(all[2].id == "ch_late");  // expires_at == now counts as expired
    REQUIRE(limited.size() == 2);
    CHECK(limited[1].id == "ch_exact");
  }

  TEST_CASE("a delivery round trips and the latest one is found") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_d", "alice", kNow));

    std::int64_t first = QueueDelivery(*store, "ch_d", kNow, "console");
    std::int64_t second = QueueDelivery(*store, "ch_d", kNow + 1, "file");
    CHECK(second > first);

    std::optional<Delivery> latest = LatestDelivery(*store, "ch_d");
    REQUIRE(latest.has_value());
    CHECK(latest->id == second);
    CHECK(latest->challenge_id == "ch_d");
    CHECK(latest->state == DeliveryState::kQueued);
    CHECK(latest->provider == "file");
    CHECK(latest->attempts == 0);
    CHECK(latest->created_at == kNow + 1);
    CHECK(latest->next_attempt_at == kNow + 1);
    CHECK_FALSE(latest->sent_at.has_value());

    Delivery d = *latest;
    d.state = DeliveryState::kSent;
    d.provider = "console";
    d.provider_message_id = "msg-42";
    d.attempts = 3;
    d.provider_attempts = 1;
    d.error = "was busy";
    d.next_attempt_at = kNow + 50;
    d.updated_at = kNow + 60;
    d.sent_at = kNow + 60;
    MustTransact(*store, [&](StoreTx& tx) { return tx.UpdateDelivery(d); });

    std::optional<Delivery> read = LatestDelivery(*store, "ch_d");
    REQUIRE(read.has_value());
    CHECK(read->state == DeliveryState::kSent);
    CHECK(read->provider == "console");
    CHECK(read->provider_message_id == "msg-42");
    CHECK(read->attempts == 3);
    CHECK(read->provider_attempts == 1);
    CHECK(read->error == "was busy");
    CHECK(read->next_attempt_at == kNow + 50);
    CHECK(read->updated_at == kNow + 60);
    REQUIRE(read->sent_at.has_value());
    CHECK(*read->sent_at == kNow + 60);

    CHECK_FALSE(LatestDelivery(*store, "ch_none").has_value());
  }

  TEST_CASE("a delivery for a challenge that does not exist is refused") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));

    Status status = store->Transact([&](StoreTx& tx) -> Status {
      Result<std::int64_t> inserted = tx.InsertDelivery("ch_missing", "console", kNow);
      if (!inserted.ok()) return inserted.error();
      return OkStatus();
    });
    CHECK_FALSE(status.ok());
  }

  TEST_CASE("FailQueuedDeliveries fails queued deliveries only") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_f", "alice", kNow));
    Insert(*store, MakeChallenge("ch_g", "bob", kNow));
    std::int64_t sent_id = QueueDelivery(*store, "ch_f", kNow);
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery("ch_f");
      d.state = DeliveryState::kSent;
      return tx.UpdateDelivery(d);
    });
    QueueDelivery(*store, "ch_f", kNow + 1);
    QueueDelivery(*store, "ch_g", kNow + 1);

    MustTransact(
        *store, [&](StoreTx& tx) { return tx.FailQueuedDeliveries("ch_f", "canceled", kNow + 2); });

    SqlReader reader(dir.File("otp.db"));
    auto rows = reader.Rows("SELECT id, state, error FROM deliveries ORDER BY id");
    REQUIRE(rows.size() == 3);
    CHECK(rows[0][0] == std::to_string(sent_id));
    CHECK(rows[0][1] == "sent");
    CHECK(rows[1][1] == "failed");
    CHECK(rows[1][2] == "canceled");
    CHECK(rows[2][1] == "queued");  // another challenge's delivery is untouched
  }

  TEST_CASE("FindDueDelivery returns the oldest due delivery with its challenge") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_1", "alice", kNow));
    Insert(*store, MakeChallenge("ch_2", "bob", kNow));
    QueueDelivery(*store, "ch_2", kNow + 5);
    QueueDelivery(*store, "ch_1", kNow + 10);

    CHECK_FALSE(DueAt(*store, kNow + 4).has_value());

    std::optional<DeliveryJob> job = DueAt(*store, kNow + 20);
    REQUIRE(job.has_value());
    CHECK(job->delivery.challenge_id == "ch_2");
    CHECK(job->challenge.id == "ch_2");
    CHECK(job->challenge.user == "bob");
    CHECK(job->challenge.phone == "+12065550100");
    REQUIRE(job->challenge.sealed_code.has_value());
    CHECK(*job->challenge.sealed_code == Bytes{9, 8, 7});
  }

  TEST_CASE("FindDueDelivery skips deliveries not yet due, not queued, or of ended challenges") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_future", "a", kNow));
    Insert(*store, MakeChallenge("ch_ended", "b", kNow));
    Insert(*store, MakeChallenge("ch_sending", "c", kNow));
    QueueDelivery(*store, "ch_ended", kNow);
    End(*store, "ch_ended", ChallengeStatus::kCanceled, kNow);
    QueueDelivery(*store, "ch_sending", kNow);
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery("ch_sending");
      d.state = DeliveryState::kSending;
      return tx.UpdateDelivery(d);
    });
    QueueDelivery(*store, "ch_future", kNow);
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery("ch_future");
      d.next_attempt_at = kNow + 1000;
      return tx.UpdateDelivery(d);
    });

    CHECK_FALSE(DueAt(*store, kNow + 999).has_value());
    std::optional<DeliveryJob> later = DueAt(*store, kNow + 1000);
    REQUIRE(later.has_value());
    CHECK(later->challenge.id == "ch_future");
  }

  TEST_CASE("FindDueDelivery ignores deliveries of expired challenges, from expires_at on") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_exp", "alice", kNow, 1000));
    QueueDelivery(*store, "ch_exp", kNow);

    CHECK(DueAt(*store, kNow + 999).has_value());
    CHECK_FALSE(DueAt(*store, kNow + 1000).has_value());
  }

  TEST_CASE("NextDeliveryDue is the earliest queued delivery of a pending challenge") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    auto next = [&] {
      std::optional<TimeMs> out;
      MustTransact(*store, [&](StoreTx& tx) -> Status {
        out = *tx.NextDeliveryDue();
        return OkStatus();
      });
      return out;
    };

    CHECK_FALSE(next().has_value());

    Insert(*store, MakeChallenge("ch_a", "a", kNow));
    Insert(*store, MakeChallenge("ch_b", "b", kNow));
    QueueDelivery(*store, "ch_a", kNow + 30);
    QueueDelivery(*store, "ch_b", kNow + 20);
    REQUIRE(next().has_value());
    CHECK(*next() == kNow + 20);

    End(*store, "ch_b", ChallengeStatus::kCanceled, kNow + 1);
    REQUIRE(next().has_value());
    CHECK(*next() == kNow + 30);
  }

  TEST_CASE("FindSendingDeliveries lists only deliveries left in sending") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_a", "a", kNow));
    Insert(*store, MakeChallenge("ch_b", "b", kNow));
    QueueDelivery(*store, "ch_a", kNow);
    QueueDelivery(*store, "ch_b", kNow);
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery("ch_a");
      d.state = DeliveryState::kSending;
      return tx.UpdateDelivery(d);
    });

    std::vector<Delivery> sending;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      sending = *tx.FindSendingDeliveries();
      return OkStatus();
    });

    REQUIRE(sending.size() == 1);
    CHECK(sending[0].challenge_id == "ch_a");
    CHECK(sending[0].state == DeliveryState::kSending);
  }

  TEST_CASE("audit events are appended with every field") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    AuditEvent e;
    e.time = kNow;
    e.event = "verify";
    e.user = "alice";
    e.challenge_id = "ch_x";
    e.outcome = "denied";
    e.client_ip = "2001:db8::1";
    e.phone_masked = "+1206*****00";
    e.detail = "attempts=1/5";
    MustTransact(*store, [&](StoreTx& tx) { return tx.AppendAudit(e); });
    e.outcome = "approved";
    MustTransact(*store, [&](StoreTx& tx) { return tx.AppendAudit(e); });

    SqlReader reader(path);
    auto rows = reader.Rows(
        "SELECT time, event, user, challenge_id, outcome, client_ip, phone_masked, detail "
        "FROM audit_events ORDER BY id");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0] == std::vector<std::string>{std::to_string(kNow), "verify", "alice", "ch_x",
                                              "denied", "2001:db8::1", "+1206*****00",
                                              "attempts=1/5"});
    CHECK(rows[1][4] == "approved");
    CHECK(reader.Int("SELECT COUNT(*) FROM audit_log") == 2);
  }

  TEST_CASE("a database at schema version 1 is upgraded and keeps its challenges") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    {
      sqlite3* db = nullptr;
      REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
      REQUIRE(sqlite3_exec(db, EmbeddedMigrations()[0].sql, nullptr, nullptr, nullptr) ==
              SQLITE_OK);
      REQUIRE(sqlite3_exec(db,
                           "PRAGMA user_version = 1; "
                           "INSERT INTO challenges (id, user, phone, status, code_hash, "
                           "sealed_code, max_attempts, created_at, expires_at) VALUES "
                           "('ch_v1', 'alice', '+12065550100', 'pending', x'01', x'02', 5, 1, 2)",
                           nullptr, nullptr, nullptr) == SQLITE_OK);
      sqlite3_close(db);
    }

    auto store = OpenStore(path);

    CHECK(store->schema_version() == NewestMigration());
    Challenge c = LoadChallenge(*store, "ch_v1");
    CHECK(c.user == "alice");
    CHECK(c.region.empty());
    Insert(*store, MakeChallenge("ch_v2", "bob", kNow));
    CHECK(FindChallenge(*store, "ch_v2").has_value());
  }

  TEST_CASE("the challenge's region round trips") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Challenge c = MakeChallenge("ch_region", "alice", kNow);
    c.region = "US";
    Insert(*store, c);
    QueueDelivery(*store, "ch_region", kNow);

    CHECK(LoadChallenge(*store, "ch_region").region == "US");
    std::optional<DeliveryJob> job = DueAt(*store, kNow);
    REQUIRE(job.has_value());
    CHECK(job->challenge.region == "US");
  }

  TEST_CASE("limit events are found after a time, oldest first, per scope and key") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      for (TimeMs t : {kNow + 30, kNow + 10, kNow + 20}) {
        Status added = tx.AddLimitEvent("user_sends", "alice", t);
        if (!added.ok()) return added;
      }
      Status other = tx.AddLimitEvent("user_sends", "bob", kNow + 15);
      if (other.ok()) other = tx.AddLimitEvent("phone_sends", "alice", kNow + 15);
      return other;
    });

    std::vector<TimeMs> all, after_ten, none;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      all = *tx.FindLimitEvents("user_sends", "alice", 0);
      after_ten = *tx.FindLimitEvents("user_sends", "alice", kNow + 10);
      none = *tx.FindLimitEvents("user_sends", "carol", 0);
      return OkStatus();
    });

    CHECK(all == std::vector<TimeMs>{kNow + 10, kNow + 20, kNow + 30});
    CHECK(after_ten == std::vector<TimeMs>{kNow + 20, kNow + 30});
    CHECK(none.empty());
  }

  TEST_CASE("limit events are pruned at or before a time, cleared per key, pruned per scope") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    auto count = [&](const std::string& scope, const std::string& key) {
      SqlReader reader(path);
      return reader.Int("SELECT COUNT(*) FROM limit_events WHERE scope = ?1 AND key = ?2",
                        {scope, key});
    };
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      for (const char* key : {"alice", "bob"}) {
        for (TimeMs t : {kNow + 10, kNow + 20, kNow + 30}) {
          Status added = tx.AddLimitEvent("user_sends", key, t);
          if (added.ok()) added = tx.AddLimitEvent("ip_sends", key, t);
          if (!added.ok()) return added;
        }
      }
      return OkStatus();
    });

    MustTransact(
        *store, [&](StoreTx& tx) { return tx.PruneLimitEvents("user_sends", "alice", kNow + 20); });
    CHECK(count("user_sends", "alice") == 1);
    CHECK(count("user_sends", "bob") == 3);
    CHECK(count("ip_sends", "alice") == 3);

    MustTransact(*store, [&](StoreTx& tx) { return tx.PruneScope("ip_sends", kNow + 10); });
    CHECK(count("ip_sends", "alice") == 2);
    CHECK(count("ip_sends", "bob") == 2);
    CHECK(count("user_sends", "bob") == 3);

    MustTransact(*store, [&](StoreTx& tx) { return tx.ClearLimitEvents("user_sends", "bob"); });
    CHECK(count("user_sends", "bob") == 0);
    CHECK(count("user_sends", "alice") == 1);
  }

  TEST_CASE("failure streaks default to zero, are saved over and cleared") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    auto streak = [&](const std::string& user) {
      FailureStreak out;
      MustTransact(*store, [&](StoreTx& tx) -> Status {
        out = *tx.FindFailureStreak(user);
        return OkStatus();
      });
      return out;
    };

    CHECK(streak("alice").failures == 0);
    CHECK(streak("alice").last_failure_at == 0);

    MustTransact(*store, [&](StoreTx& tx) { return tx.SaveFailureStreak("alice", {3, kNow}); });
    MustTransact(*store, [&](StoreTx& tx) { return tx.SaveFailureStreak("alice", {4, kNow + 5}); });
    MustTransact(*store, [&](StoreTx& tx) { return tx.SaveFailureStreak("bob", {1, kNow}); });
    CHECK(streak("alice").failures == 4);
    CHECK(streak("alice").last_failure_at == kNow + 5);

    MustTransact(*store, [&](StoreTx& tx) { return tx.ClearFailureStreak("alice"); });
    CHECK(streak("alice").failures == 0);
    CHECK(streak("bob").failures == 1);
  }

  TEST_CASE("region counts add up per minute bucket and are summed after a time") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Status s = tx.AddRegionCounts("US", kNow, {1, 0});
      if (s.ok()) s = tx.AddRegionCounts("US", kNow, {2, 1});
      if (s.ok()) s = tx.AddRegionCounts("US", kNow + 60'000, {5, 0});
      if (s.ok()) s = tx.AddRegionCounts("CA", kNow, {7, 7});
      return s;
    });

    RegionCounts all, later, none;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      all = *tx.SumRegionCounts("US", kNow - 1);
      later = *tx.SumRegionCounts("US", kNow);
      none = *tx.SumRegionCounts("GB", 0);
      return OkStatus();
    });

    CHECK(all.sends == 8);
    CHECK(all.approvals == 1);
    CHECK(later.sends == 5);
    CHECK(later.approvals == 0);
    CHECK(none.sends == 0);
    CHECK(none.approvals == 0);
  }

  TEST_CASE("region suspensions are saved over and found") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    auto find = [&](const std::string& region) {
      std::optional<RegionSuspension> out;
      MustTransact(*store, [&](StoreTx& tx) -> Status {
        out = *tx.FindRegionSuspension(region);
        return OkStatus();
      });
      return out;
    };

    CHECK_FALSE(find("US").has_value());

    MustTransact(*store, [&](StoreTx& tx) {
      return tx.SaveRegionSuspension("US", {kNow, kNow + 10});
    });
    MustTransact(*store, [&](StoreTx& tx) {
      return tx.SaveRegionSuspension("US", {kNow + 20, kNow + 30});
    });

    REQUIRE(find("US").has_value());
    CHECK(find("US")->since == kNow + 20);
    CHECK(find("US")->until == kNow + 30);
    CHECK_FALSE(find("CA").has_value());
  }

  TEST_CASE("PruneAbuseState drops counts, streaks and suspensions at or before a time") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Status s = tx.AddRegionCounts("US", kNow, {1, 0});
      if (s.ok()) s = tx.AddRegionCounts("US", kNow + 60'000, {1, 0});
      if (s.ok()) s = tx.SaveFailureStreak("old", {1, kNow});
      if (s.ok()) s = tx.SaveFailureStreak("new", {1, kNow + 1});
      if (s.ok()) s = tx.SaveRegionSuspension("US", {kNow - 100, kNow});
      if (s.ok()) s = tx.SaveRegionSuspension("CA", {kNow - 100, kNow + 1});
      return s;
    });

    MustTransact(*store, [&](StoreTx& tx) { return tx.PruneAbuseState(kNow); });

    SqlReader reader(path);
    CHECK(reader.Int("SELECT COUNT(*) FROM region_counts") == 1);
    CHECK(reader.Rows("SELECT user FROM failure_streaks") ==
          std::vector<std::vector<std::string>>{{"new"}});
    CHECK(reader.Rows("SELECT region FROM region_suspensions") ==
          std::vector<std::vector<std::string>>{{"CA"}});
  }

  TEST_CASE("Checkpoint moves the WAL into the main file") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    Insert(*store, MakeChallenge("ch_cp", "alice", kNow));
    REQUIRE(std::filesystem::file_size(path + "-wal") > 0);

    Status checkpointed = store->Checkpoint();

    REQUIRE(checkpointed.ok());
    CHECK(std::filesystem::file_size(path + "-wal") == 0);
    CHECK(FindChallenge(*store, "ch_cp").has_value());
  }

  TEST_CASE("a second connection sees what a transaction committed") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto first = OpenStore(path);
    auto second = OpenStore(path);

    Insert(*first, MakeChallenge("ch_shared", "alice", kNow));

    CHECK(FindChallenge(*second, "ch_shared").has_value());
  }

  TEST_CASE("concurrent transactions share commits and every one of them is committed") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    std::vector<Status> results = RunConcurrently(*store, [](StoreTx& tx, int n) {
      return tx.InsertChallenge(
          MakeChallenge("ch_" + std::to_string(n), "u" + std::to_string(n), kNow));
    });

    for (const Status& status : results)
      CHECK(status.ok());
    SqlReader reader(path);
    CHECK(reader.Rows("SELECT COUNT(*) FROM challenges")[0][0] ==
          std::to_string(kConcurrentBodies));
    Result<StoreStats> stats = store->ReadStats();
    REQUIRE(stats.ok());
    CHECK(stats->transactions == kConcurrentBodies);
    CHECK(stats->commits >= 1);
    CHECK(stats->commits < stats->transactions);  // some bodies shared a commit
  }

  TEST_CASE("a body failing in a shared commit undoes only its own writes") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    std::vector<Status> results = RunConcurrently(*store, [](StoreTx& tx, int n) -> Status {
      Status inserted = tx.InsertChallenge(
          MakeChallenge("ch_" + std::to_string(n), "u" + std::to_string(n), kNow));
      if (!inserted.ok()) return inserted;
      if (n % 2 == 1) return MakeError("invalid_request", "odd bodies fail after writing");
      return OkStatus();
    });

    for (int n = 0; n < kConcurrentBodies; ++n) {
      CHECK(results[n].ok() == (n % 2 == 0));
      if (n % 2 == 1) CHECK(results[n].error().code == "invalid_request");
    }
    SqlReader reader(path);
    CHECK(reader.Rows("SELECT COUNT(*) FROM challenges")[0][0] ==
          std::to_string(kConcurrentBodies / 2));
    CHECK(reader.Rows("SELECT COUNT(*) FROM challenges WHERE CAST(substr(id, 4) AS INTEGER) % 2 "
                      "= 1")[0][0] == "0");
  }

  TEST_CASE("a body throwing in a shared commit is undone and rethrown, the others are kept") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    std::atomic<int> thrown{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          int n = t * 20 + i;
          try {
            Status status = store->Transact([n](StoreTx& tx) -> Status {
              Status inserted = tx.InsertChallenge(
                  MakeChallenge("ch_" + std::to_string(n), "u" + std::to_string(n), kNow));
              if (n % 4 == 0) throw std::runtime_error("body failed");
              return inserted;
            });
            CHECK(status.ok());
          } catch (const std::runtime_error&) {
            ++thrown;
          }
        }
      });
    }
    for (std::thread& thread : threads)
      thread.join();

    CHECK(thrown.load() == 40);
    SqlReader reader(path);
    CHECK(reader.Rows("SELECT COUNT(*) FROM challenges")[0][0] == "120");
  }

  TEST_CASE("the write-ahead log is checkpointed in the background and stays bounded") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);

    // About 12 times the checkpoint threshold in pages: each challenge carries a 3 KiB blob.
    const int kWrites = 4 * WalCheckpointer::kThresholdPages;
    for (int n = 0; n < kWrites; ++n) {
      Challenge c = MakeChallenge("ch_" + std::to_string(n), "u" + std::to_string(n), kNow);
      c.sealed_code = Bytes(3072, static_cast<std::uint8_t>(n));
      Insert(*store, c);
    }

    // Without checkpoints the log would hold every page written; with them it restarts
    // from its beginning and its file stops growing.
    std::uintmax_t page_size = 4096;
    std::uintmax_t wal_bytes = std::filesystem::file_size(path + "-wal");
    CHECK(wal_bytes < 4 * WalCheckpointer::kThresholdPages * page_size);
    SqlReader reader(path);
    CHECK(reader.Rows("SELECT COUNT(*) FROM challenges")[0][0] == std::to_string(kWrites));
  }

  TEST_CASE("ProbeWritable fails while another connection holds the write lock, then passes") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    CHECK(store->ProbeWritable(1000).ok());

    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    Status locked = store->ProbeWritable(50);
    REQUIRE_FALSE(locked.ok());
    CHECK(locked.error().code == "storage_unavailable");

    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    CHECK(store->ProbeWritable(1000).ok());
    Insert(*store, MakeChallenge("ch_after_probe", "alice", kNow));  // the store still writes
  }

  TEST_CASE("transactions queued behind another process's lock share one busy timeout") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

    // Each waited its own 5 s, one after the other, before; now all give up within one.
    using Clock = std::chrono::steady_clock;
    auto started = Clock::now();
    std::vector<std::future<std::pair<Status, Clock::duration>>> waits;
    for (int i = 0; i < 3; ++i) {
      waits.push_back(std::async(std::launch::async, [&store, started] {
        Status status = store->Transact([](StoreTx&) { return OkStatus(); });
        return std::make_pair(status, Clock::now() - started);
      }));
    }
    while (std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() <
           200) {
      std::this_thread::yield();  // let one transaction take the connection first
    }
    auto scrape_started = Clock::now();
    Result<StoreStats> stats = store->ReadStats();
    auto scrape_took = Clock::now() - scrape_started;

    for (auto& wait : waits) {
      auto [status, took] = wait.get();
      REQUIRE_FALSE(status.ok());
      CHECK(status.error().code == "storage_unavailable");
      CHECK(took < std::chrono::seconds(9));  // one 5 s budget and a margin, not three
    }
    CHECK_FALSE(stats.ok());
    CHECK(scrape_took < std::chrono::seconds(4));  // gives up after about a second
    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    Insert(*store, MakeChallenge("ch_after_busy", "alice", kNow));
  }

  TEST_CASE("ProbeWritable fails once the database file is moved away") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    REQUIRE(store->ProbeWritable(1000).ok());

    std::filesystem::rename(path, dir.File("moved.db"));

    Status probe = store->ProbeWritable(1000);
    REQUIRE_FALSE(probe.ok());
    CHECK(probe.error().code == "storage_unavailable");
    CHECK(probe.error().message.find("moved or deleted") != std::string::npos);
  }

  TEST_CASE("Checkpoint reports a log it could not truncate because another process reads") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    Insert(*store, MakeChallenge("ch_before_reader", "alice", kNow));
    sqlite3* reader = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &reader) == SQLITE_OK);
    REQUIRE(sqlite3_exec(reader, "BEGIN; SELECT COUNT(*) FROM challenges;", nullptr, nullptr,
                         nullptr) == SQLITE_OK);

    Status held_back = store->Checkpoint();

    CHECK_FALSE(held_back.ok());
    REQUIRE(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(reader);
    CHECK(store->Checkpoint().ok());
  }

  TEST_CASE("ReadStats counts queued deliveries only") {
    TempDir dir;
    auto store = OpenStore(dir.File("otp.db"));
    Insert(*store, MakeChallenge("ch_a", "alice", kNow));
    Insert(*store, MakeChallenge("ch_b", "bob", kNow));
    QueueDelivery(*store, "ch_a", kNow);
    QueueDelivery(*store, "ch_b", kNow);
    QueueDelivery(*store, "ch_b", kNow);

    Result<StoreStats> before = store->ReadStats();
    REQUIRE(before.ok());
    CHECK(before->outbox_depth == 3);

    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Result<std::optional<Delivery>> latest = tx.FindLatestDelivery("ch_b");
      if (!latest.ok()) return latest.error();
      Delivery d = **latest;
      d.state = DeliveryState::kSent;
      Status updated = tx.UpdateDelivery(d);
      if (!updated.ok()) return updated;
      return tx.FailQueuedDeliveries("ch_a", "canceled", kNow);
    });

    Result<StoreStats> after = store->ReadStats();
    REQUIRE(after.ok());
    CHECK(after->outbox_depth == 1);
  }

  TEST_CASE("ReadStats sizes the database as its pages plus the write-ahead log") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    auto store = OpenStore(path);
    REQUIRE(store->Checkpoint().ok());
    Result<StoreStats> empty = store->ReadStats();
    REQUIRE(empty.ok());
    CHECK(empty->database_size_bytes ==
          static_cast<std::int64_t>(std::filesystem::file_size(path)));
    CHECK(empty->database_size_bytes > 0);

    for (int i = 0; i < 50; ++i)
      Insert(*store, MakeChallenge("ch_size" + std::to_string(i), "alice", kNow));
    std::int64_t wal = static_cast<std::int64_t>(std::filesystem::file_size(path + "-wal"));
    REQUIRE(wal > 0);

    Result<StoreStats> grown = store->ReadStats();
    REQUIRE(grown.ok());
    CHECK(grown->database_size_bytes >= empty->database_size_bytes + wal);
    SqlReader reader(path);
    std::int64_t pages = std::stoll(reader.Rows("PRAGMA page_count")[0][0]);
    std::int64_t page_size = std::stoll(reader.Rows("PRAGMA page_size")[0][0]);
    CHECK(grown->database_size_bytes == pages * page_size + wal);
  }

  TEST_CASE("a size cap refuses growth as storage_full, and the probe reports it") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    constexpr std::int64_t kCap = 1024 * 1024;
    std::string user(3000, 'u');  // each challenge takes pages, so the cap comes soon
    int stored = 0;
    {
      Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path, kCap);
      REQUIRE(store.ok());
      REQUIRE((*store)->ProbeWritable(1000).ok());
      Status written = OkStatus();
      while (written.ok() && stored < 2000) {
        Challenge c = MakeChallenge("ch_big" + std::to_string(stored), user + "-", kNow);
        c.user += std::to_string(stored);
        written = (*store)->Transact([&](StoreTx& tx) { return tx.InsertChallenge(c); });
        if (written.ok()) ++stored;
      }
      REQUIRE_FALSE(written.ok());
      CHECK(written.error().code == "storage_full");
      CHECK(stored > 20);
      Status probe = (*store)->ProbeWritable(1000);
      REQUIRE_FALSE(probe.ok());
      CHECK(probe.error().code == "storage_full");
      CHECK_FALSE(FindChallenge(**store, "ch_big" + std::to_string(stored)).has_value());
    }
    {
      SqlReader reader(path);
      std::int64_t pages = std::stoll(reader.Rows("PRAGMA page_count")[0][0]);
      std::int64_t page_size = std::stoll(reader.Rows("PRAGMA page_size")[0][0]);
      CHECK(pages * page_size <= kCap);
      CHECK(std::stoll(reader.Rows("SELECT COUNT(*) FROM challenges")[0][0]) == stored);
    }

    // A cap below what the file takes is refused, not silently raised to it.
    Result<std::unique_ptr<SqliteStore>> smaller = SqliteStore::Open(path, kCap / 2);
    REQUIRE_FALSE(smaller.ok());
    CHECK(smaller.error().code == "invalid_config");
    CHECK(smaller.error().message.find("database_max_size") != std::string::npos);

    // A larger cap gives room again.
    Result<std::unique_ptr<SqliteStore>> larger = SqliteStore::Open(path, 2 * kCap);
    REQUIRE(larger.ok());
    CHECK((*larger)->ProbeWritable(1000).ok());
    Insert(**larger, MakeChallenge("ch_after_growth", "bob", kNow));
  }

}  // TEST_SUITE
