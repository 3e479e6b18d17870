// The PostgreSQL store itself, on the test process's PostgreSQL server: what only a shared
// database shows (deadlocks between transactions, connections the server ends, a schema
// migrated by a newer version, leases of claimed deliveries). Runs in the PostgreSQL pass
// of the integration suite only; the rules on top of the store are the whole suite's.

#include "store/postgres_store.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "integration/test_helpers.h"
#include "support/postgres_server.h"
#include "support/sql_reader.h"

namespace sidecar::testing {
namespace {

bool OnPostgres() {
  return !SkippedUnderSqlite("about the PostgreSQL store");
}

std::unique_ptr<PostgresStore> OpenFresh(std::string* uri_out = nullptr, int pool_size = 4) {
  std::string uri = PostgresServer::Shared().CreateDatabase();
  if (uri_out != nullptr) *uri_out = uri;
  Result<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(PgSettings{uri, ""}, pool_size);
  REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
  return std::move(*store);
}

Challenge PendingChallenge(const std::string& id, const std::string& user, TimeMs now) {
  Challenge c;
  c.id = id;
  c.user = user;
  c.phone = "+12065550100";
  c.region = "US";
  c.code_hash = Bytes(32, 7);
  c.sealed_code = Bytes{0, 1, 2, 255};
  c.max_attempts = 5;
  c.created_at = now;
  c.expires_at = now + 300'000;
  return c;
}

// Two threads meet here: each waits until both have arrived.
class Meeting {
 public:
  void Arrive() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(10), [this] { return arrived_ >= 2; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
};

TEST_CASE("postgres store: rows round-trip, bytes and NULLs included") {
  if (!OnPostgres()) return;
  auto store = OpenFresh();
  TimeMs now = 1'780'000'000'000;
  Challenge written = PendingChallenge("ch_a", "alice", now);
  REQUIRE(store->Transact([&](StoreTx& tx) { return tx.InsertChallenge(written); }).ok());

  std::optional<Challenge> read;
  REQUIRE(store
              ->Transact([&](StoreTx& tx) -> Status {
                Result<std::optional<Challenge>> found = tx.FindChallenge("ch_a");
                if (!found.ok()) return found.error();
                read = *found;
                return OkStatus();
              })
              .ok());
  REQUIRE(read.has_value());
  CHECK(read->user == "alice");
  CHECK(read->code_hash == written.code_hash);
  CHECK(read->sealed_code == written.sealed_code);
  CHECK(read->expires_at == written.expires_at);
  CHECK_FALSE(read->ended_at.has_value());

  Status duplicate = store->Transact([&](StoreTx& tx) { return tx.InsertChallenge(written); });
  REQUIRE_FALSE(duplicate.ok());
  CHECK(duplicate.error().code == "conflict");
}

TEST_CASE("postgres store: a deadlock between two transactions is run again, both commit") {
  if (!OnPostgres()) return;
  auto store = OpenFresh();
  Meeting meeting;
  std::atomic<int> runs{0};

  // Each locks one user, waits for the other to hold the other user, then asks for it.
  auto crossing = [&](const std::string& first, const std::string& second) {
    bool met = false;
    return store->Transact([&](StoreTx& tx) -> Status {
      runs.fetch_add(1);
      Result<std::vector<Challenge>> mine = tx.FindPendingChallengesOfUser(first);
      if (!mine.ok()) return mine.error();
      if (!met) {
        met = true;
        meeting.Arrive();
      }
      Result<std::vector<Challenge>> theirs = tx.FindPendingChallengesOfUser(second);
      if (!theirs.ok()) return theirs.error();
      return tx.AppendAudit(AuditEvent{1, "test", first, "", "ok", "", "", ""});
    });
  };
  Status one = OkStatus();
  Status two = OkStatus();
  std::thread a([&] { one = crossing("alice", "bob"); });
  std::thread b([&] { two = crossing("bob", "alice"); });
  a.join();
  b.join();

  CHECK_MESSAGE(one.ok(), (one.ok() ? "" : one.error().message));
  CHECK_MESSAGE(two.ok(), (two.ok() ? "" : two.error().message));
  CHECK(runs.load() == 3);  // the one PostgreSQL chose to end ran twice
}

TEST_CASE("postgres store: connections the server ends are replaced by the next transaction") {
  if (!OnPostgres()) return;
  std::string uri;
  auto store = OpenFresh(&uri);
  REQUIRE(store->ProbeWritable(1000).ok());

  ExecSql(PostgresServer::Shared().AdminUri(),
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE application_name = 'otp-sidecar' AND pid <> pg_backend_pid()");

  int runs = 0;
  Status after = store->Transact([&](StoreTx& tx) {
    ++runs;
    return tx.AppendAudit(AuditEvent{2, "test", "", "", "ok", "", "", ""});
  });
  CHECK_MESSAGE(after.ok(), (after.ok() ? "" : after.error().message));
  CHECK(runs == 1);  // the broken connection failed at BEGIN, before the body ran
  SqlReader db(uri);
  CHECK(db.Int("SELECT COUNT(*) FROM audit_events") == 1);
}

TEST_CASE("postgres store: a database migrated by a newer otp-sidecar is refused") {
  if (!OnPostgres()) return;
  std::string uri;
  auto store = OpenFresh(&uri);
  CHECK(store->schema_version() >= 1);
  store.reset();
  ExecSql(uri, "INSERT INTO otp_sidecar_schema VALUES (999, '0999_future.sql', 0)");

  Result<std::unique_ptr<PostgresStore>> again = PostgresStore::Open(PgSettings{uri, ""}, 2);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "schema_too_new");
}

TEST_CASE("postgres store: a sending delivery is listed only once its claim is old enough") {
  if (!OnPostgres()) return;
  auto store = OpenFresh();
  TimeMs now = 1'780'000'000'000;
  std::int64_t delivery_id = 0;
  REQUIRE(store
              ->Transact([&](StoreTx& tx) -> Status {
                Status inserted = tx.InsertChallenge(PendingChallenge("ch_l", "lease", now));
                if (!inserted.ok()) return inserted;
                Result<std::int64_t> id = tx.InsertDelivery("ch_l", "console", now);
                if (!id.ok()) return id.error();
                delivery_id = *id;
                Result<std::optional<DeliveryJob>> due = tx.FindDueDelivery(now);
                if (!due.ok()) return due.error();
                Delivery d = (*due)->delivery;
                d.state = DeliveryState::kSending;
                d.updated_at = now;
                return tx.UpdateDelivery(d);
              })
              .ok());

  auto sending = [&](TimeMs claimed_at_or_before) {
    std::size_t count = 0;
    REQUIRE(store
                ->Transact([&](StoreTx& tx) -> Status {
                  Result<std::vector<Delivery>> found =
                      tx.FindSendingDeliveries(claimed_at_or_before);
                  if (!found.ok()) return found.error();
                  count = found->size();
                  return OkStatus();
                })
                .ok());
    return count;
  };
  CHECK(sending(now - 1) == 0);
  CHECK(sending(now) == 1);
  CHECK(delivery_id > 0);
}

}  // namespace
}  // namespace sidecar::testing
