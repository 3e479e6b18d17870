#include "store/postgres_store.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <random>
#include <set>
#include <thread>

#include "store/migrations.h"

namespace sidecar {
namespace {

using std::chrono::milliseconds;

// The whole budget of one Transact, waits for a connection and for locks included: the same
// few seconds as SQLite's busy timeout.
constexpr milliseconds kTransactionBudget{5000};
// Runs of one body at most (the first and its retries).
constexpr int kMaxRuns = 4;
// How long opening the store waits for the server and for another sidecar's migration.
constexpr milliseconds kOpenBudget{30'000};
// How long a monitoring read waits, connection included.
constexpr milliseconds kStatsBudget{1000};
// A constant of the advisory-lock space that stands for "the schema is being migrated".
constexpr std::int64_t kMigrationLockKey = 0x6f74705f6d6967;  // "otp_mig"

SteadyTime DeadlineIn(milliseconds budget) {
  return std::chrono::steady_clock::now() + budget;
}

constexpr const char* kChallengeColumns =
    "id, \"user\", phone, locale, client_ip, status, code_hash, sealed_code, attempts, "
    "max_attempts, created_at, expires_at, ended_at, region";

Challenge ReadChallenge(const PgRows& rows, int row, int first) {
  Challenge c;
  c.id = rows.Text(row, first + 0);
  c.user = rows.Text(row, first + 1);
  c.phone = rows.Text(row, first + 2);
  c.locale = rows.Text(row, first + 3);
  c.client_ip = rows.Text(row, first + 4);
  ParseChallengeStatus(rows.Text(row, first + 5), &c.status);
  c.code_hash = rows.Blob(row, first + 6);
  if (!rows.IsNull(row, first + 7)) c.sealed_code = rows.Blob(row, first + 7);
  c.attempts = static_cast<int>(rows.Int(row, first + 8));
  c.max_attempts = static_cast<int>(rows.Int(row, first + 9));
  c.created_at = rows.Int(row, first + 10);
  c.expires_at = rows.Int(row, first + 11);
  c.ended_at = rows.OptionalInt(row, first + 12);
  c.region = rows.Text(row, first + 13);
  return c;
}

constexpr const char* kDeliveryColumns =
    "id, challenge_id, state, provider, provider_message_id, attempts, provider_attempts, "
    "error, created_at, next_attempt_at, updated_at, sent_at";

Delivery ReadDelivery(const PgRows& rows, int row, int first) {
  Delivery d;
  d.id = rows.Int(row, first + 0);
  d.challenge_id = rows.Text(row, first + 1);
  ParseDeliveryState(rows.Text(row, first + 2), &d.state);
  d.provider = rows.Text(row, first + 3);
  d.provider_message_id = rows.Text(row, first + 4);
  d.attempts = static_cast<int>(rows.Int(row, first + 5));
  d.provider_attempts = static_cast<int>(rows.Int(row, first + 6));
  d.error = rows.Text(row, first + 7);
  d.created_at = rows.Int(row, first + 8);
  d.next_attempt_at = rows.Int(row, first + 9);
  d.updated_at = rows.Int(row, first + 10);
  d.sent_at = rows.OptionalInt(row, first + 11);
  return d;
}

std::string Sql(const char* head, const char* columns, const char* tail) {
  return std::string(head) + columns + tail;
}

Result<int> SchemaVersion(PgConnection& connection, SteadyTime deadline) {
  Result<PgRows> rows = connection.Query("SELECT COALESCE(MAX(version), 0) FROM otp_sidecar_schema",
                                         {}, deadline, "reading schema version");
  if (!rows.ok()) return rows.error();
  return static_cast<int>(rows->Int(0, 0));
}

// Applies each migration newer than the database, each in its own transaction together with
// its row in otp_sidecar_schema, while holding a session advisory lock that every sidecar
// takes before migrating.
Result<int> Migrate(PgConnection& connection, SteadyTime deadline) {
  Status locked = connection.Script(
      "SET lock_timeout = '30s'; SET statement_timeout = '35s'; SELECT pg_advisory_lock(" +
          std::to_string(kMigrationLockKey) +
          "); CREATE TABLE IF NOT EXISTS otp_sidecar_schema (version INTEGER PRIMARY KEY, "
          "name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      deadline, "locking the schema for migration");
  if (!locked.ok()) return locked.error();

  const auto& migrations = EmbeddedPostgresMigrations();
  int newest = migrations.empty() ? 0 : migrations.back().version;
  Result<int> current = SchemaVersion(connection, deadline);
  for (const Migration& migration : migrations) {
    if (!current.ok() || *current >= migration.version) continue;
    std::string script = std::string("BEGIN; SET LOCAL statement_timeout = 0; ") + migration.sql +
                         ";\nINSERT INTO otp_sidecar_schema (version, name, applied_at) VALUES (" +
                         std::to_string(migration.version) + ", '" + migration.name +
                         "', (extract(epoch FROM now()) * 1000)::BIGINT); COMMIT";
    Status applied = connection.Script(script, deadline, migration.name);
    if (!applied.ok()) {
      Status ignored = connection.Script("ROLLBACK", deadline, "ending migration");
      (void)ignored;
      current = applied.error().WithContext("applying migration");
      break;
    }
    current = migration.version;
  }

  Status unlocked =
      connection.Script("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) +
                            "); SET lock_timeout = '5s'; SET statement_timeout = '6s'",
                        deadline, "unlocking the schema");
  if (!current.ok()) return current.error();
  if (!unlocked.ok()) return unlocked.error();
  if (*current > newest) {
    return MakeError("schema_too_new", "the database has schema version " +
                                           std::to_string(*current) +
                                           " but this otp-sidecar knows only up to " +
                                           std::to_string(newest) + "; upgrade otp-sidecar");
  }
  return current;
}

}  // namespace

class PostgresStore::Tx final : public StoreTx {
 public:
  using StoreTx::FindDueDelivery;
  using StoreTx::FindSendingDeliveries;
  Tx(PgConnection& connection, SteadyTime deadline) : db_(connection), deadline_(deadline) {}

  // Set when a statement failed in a way that running the whole body again may cure.
  bool retryable() const { return retryable_; }

  Status InsertChallenge(const Challenge& c) override {
    return Run(
        "INSERT INTO challenges (id, \"user\", phone, locale, client_ip, status, code_hash, "
        "sealed_code, attempts, max_attempts, created_at, expires_at, ended_at, region) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        {c.id, c.user, c.phone, c.locale, c.client_ip, ToString(c.status), c.code_hash,
         c.sealed_code, c.attempts, c.max_attempts, c.created_at, c.expires_at, c.ended_at,
         c.region},
        "inserting challenge");
  }

  Result<std::optional<Challenge>> FindChallenge(std::string_view id) override {
    // The user's lock first, as every transaction about a user takes it (see Lock).
    Result<PgRows> owner =
        Query("SELECT \"user\" FROM challenges WHERE id = $1", {id}, "reading challenge");
    if (!owner.ok()) return owner.error();
    if (owner->size() == 0) return std::optional<Challenge>();
    Status locked = Lock("user", owner->Text(0, 0));
    if (!locked.ok()) return locked.error();
    return OneChallenge(
        Sql("SELECT ", kChallengeColumns, " FROM challenges WHERE id = $1 FOR UPDATE"), id,
        "reading challenge");
  }

  Result<std::optional<Challenge>> FindLatestChallengeOfUser(std::string_view user) override {
    Status locked = Lock("user", user);
    if (!locked.ok()) return locked.error();
    return OneChallenge(Sql("SELECT ", kChallengeColumns,
                            " FROM challenges WHERE \"user\" = $1 ORDER BY seq DESC LIMIT 1 "
                            "FOR UPDATE"),
                        user, "reading latest challenge");
  }

  Result<std::vector<Challenge>> FindPendingChallengesOfUser(std::string_view user) override {
    Status locked = Lock("user", user);
    if (!locked.ok()) return locked.error();
    return Challenges(Sql("SELECT ", kChallengeColumns,
                          " FROM challenges WHERE \"user\" = $1 AND status = 'pending' "
                          "ORDER BY seq FOR UPDATE"),
                      {user}, "reading pending challenges");
  }

  Result<std::vector<Challenge>> FindExpiredPending(TimeMs now, int limit) override {
    // Another sidecar's housekeeping may be ending the same ones: each takes what it can lock.
    return Challenges(Sql("SELECT ", kChallengeColumns,
                          " FROM challenges WHERE status = 'pending' AND expires_at <= $1 "
                          "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"),
                      {now, limit}, "reading expired challenges");
  }

  Status UpdateChallenge(const Challenge& c) override {
    return Run(
        "UPDATE challenges SET status = $2, attempts = $3, ended_at = $4, sealed_code = $5 "
        "WHERE id = $1",
        {c.id, ToString(c.status), c.attempts, c.ended_at, c.sealed_code}, "updating challenge");
  }

  Result<std::int64_t> InsertDelivery(std::string_view challenge_id, std::string_view provider,
                                      TimeMs now) override {
    Result<PgRows> rows = Query(
        "INSERT INTO deliveries (challenge_id, state, provider, created_at, next_attempt_at, "
        "updated_at) VALUES ($1, 'queued', $2, $3, $3, $3) RETURNING id",
        {challenge_id, provider, now}, "queueing delivery");
    if (!rows.ok()) return rows.error();
    return rows->Int(0, 0);
  }

  Result<std::optional<Delivery>> FindLatestDelivery(std::string_view challenge_id) override {
    Result<PgRows> rows = Query(Sql("SELECT ", kDeliveryColumns,
                                    " FROM deliveries WHERE challenge_id = $1 "
                                    "ORDER BY id DESC LIMIT 1"),
                                {challenge_id}, "reading delivery");
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return std::optional<Delivery>();
    return std::optional<Delivery>(ReadDelivery(*rows, 0, 0));
  }

  Status UpdateDelivery(const Delivery& d) override {
    return Run(
        "UPDATE deliveries SET state = $2, provider = $3, provider_message_id = $4, "
        "attempts = $5, provider_attempts = $6, error = $7, next_attempt_at = $8, "
        "updated_at = $9, sent_at = $10 WHERE id = $1",
        {d.id, ToString(d.state), d.provider, d.provider_message_id, d.attempts,
         d.provider_attempts, d.error, d.next_attempt_at, d.updated_at, d.sent_at},
        "updating delivery");
  }

  Status FailQueuedDeliveries(std::string_view challenge_id, std::string_view error,
                              TimeMs now) override {
    return Run(
        "UPDATE deliveries SET state = 'failed', error = $2, updated_at = $3 "
        "WHERE challenge_id = $1 AND state = 'queued'",
        {challenge_id, error, now}, "failing queued deliveries");
  }

  Result<std::optional<DeliveryJob>> FindDueDelivery(
      TimeMs now, const std::vector<std::string>& skip_providers) override {
    // The providers to skip travel as one text array, so there is one statement text.
    std::string skip = "{";
    for (std::size_t i = 0; i < skip_providers.size(); ++i) {
      skip += (i == 0 ? "\"" : ",\"") + EscapeArrayElement(skip_providers[i]) + "\"";
    }
    skip += "}";
    // SKIP LOCKED: a delivery another sidecar is claiming right now is left to it. The
    // challenge is looked up by id for each delivery in due order (a LATERAL subquery that
    // OFFSET 0 keeps from being flattened): as a plain join, a planner without statistics
    // read every pending challenge per claim.
    Result<PgRows> rows = Query(
        "SELECT d.id, d.challenge_id, d.state, d.provider, d.provider_message_id, "
        "d.attempts, d.provider_attempts, d.error, d.created_at, d.next_attempt_at, "
        "d.updated_at, d.sent_at, "
        "c.id, c.\"user\", c.phone, c.locale, c.client_ip, c.status, c.code_hash, "
        "c.sealed_code, c.attempts, c.max_attempts, c.created_at, c.expires_at, c.ended_at, "
        "c.region "
        "FROM deliveries d CROSS JOIN LATERAL (SELECT * FROM challenges "
        "WHERE id = d.challenge_id AND status = 'pending' AND expires_at > $1 OFFSET 0) c "
        "WHERE d.state = 'queued' AND d.next_attempt_at <= $1 "
        "AND d.provider <> ALL ($2::text[]) "
        "ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
        {now, skip}, "reading due delivery");
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return std::optional<DeliveryJob>();
    return std::optional<DeliveryJob>(
        DeliveryJob{ReadDelivery(*rows, 0, 0), ReadChallenge(*rows, 0, 12)});
  }

  Result<std::optional<TimeMs>> NextDeliveryDue() override {
    // The first queued delivery in due order whose challenge is pending (see above).
    Result<PgRows> rows = Query(
        "SELECT d.next_attempt_at FROM deliveries d CROSS JOIN LATERAL (SELECT 1 FROM "
        "challenges WHERE id = d.challenge_id AND status = 'pending' OFFSET 0) c "
        "WHERE d.state = 'queued' ORDER BY d.next_attempt_at LIMIT 1",
        {}, "reading next due delivery");
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return std::optional<TimeMs>();
    return std::optional<TimeMs>(rows->Int(0, 0));
  }

  Result<std::vector<Delivery>> FindSendingDeliveries(TimeMs claimed_at_or_before) override {
    // Locked, so two sidecars taking over an expired lease at once never both take one.
    Result<PgRows> rows = Query(Sql("SELECT ", kDeliveryColumns,
                                    " FROM deliveries WHERE state = 'sending' AND "
                                    "updated_at <= $1 ORDER BY id FOR UPDATE SKIP LOCKED"),
                                {claimed_at_or_before}, "reading interrupted deliveries");
    if (!rows.ok()) return rows.error();
    std::vector<Delivery> out;
    for (int i = 0; i < rows->size(); ++i)
      out.push_back(ReadDelivery(*rows, i, 0));
    return out;
  }

  Status AppendAudit(const AuditEvent& e) override {
    return Run(
        "INSERT INTO audit_events (time, event, \"user\", challenge_id, outcome, client_ip, "
        "phone_masked, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        {e.time, e.event, e.user, e.challenge_id, e.outcome, e.client_ip, e.phone_masked, e.detail},
        "writing audit event");
  }

  Result<std::vector<TimeMs>> FindLimitEvents(std::string_view scope, std::string_view key,
                                              TimeMs after) override {
    // The key stays locked until the transaction ends, so the event this transaction may add
    // is counted by every other sidecar's next look.
    // A user's own scopes (user_sends, user_failures) are keyed by the user: they take the
    // user's lock, so that it comes first in a create as in a verify.
    bool of_user = scope.rfind("user_", 0) == 0;
    Status locked = of_user ? Lock("user", key) : Lock("limit:" + std::string(scope), key);
    if (!locked.ok()) return locked.error();
    Result<PgRows> rows = Query(
        "SELECT time FROM limit_events WHERE scope = $1 AND key = $2 AND time > $3 "
        "ORDER BY time",
        {scope, key, after}, "reading limit events");
    if (!rows.ok()) return rows.error();
    std::vector<TimeMs> times;
    for (int i = 0; i < rows->size(); ++i)
      times.push_back(rows->Int(i, 0));
    return times;
  }

  Status AddLimitEvent(std::string_view scope, std::string_view key, TimeMs time) override {
    return Run("INSERT INTO limit_events (scope, key, time) VALUES ($1, $2, $3)",
               {scope, key, time}, "counting a limit event");
  }

  Status PruneLimitEvents(std::string_view scope, std::string_view key, TimeMs before) override {
    return Run("DELETE FROM limit_events WHERE scope = $1 AND key = $2 AND time <= $3",
               {scope, key, before}, "pruning limit events");
  }

  Status PruneScope(std::string_view scope, TimeMs before) override {
    return Run("DELETE FROM limit_events WHERE scope = $1 AND time <= $2", {scope, before},
               "pruning limit events");
  }

  Status ClearLimitEvents(std::string_view scope, std::string_view key) override {
    return Run("DELETE FROM limit_events WHERE scope = $1 AND key = $2", {scope, key},
               "clearing limit events");
  }

  Result<FailureStreak> FindFailureStreak(std::string_view user) override {
    Status locked = Lock("user", user);
    if (!locked.ok()) return locked.error();
    Result<PgRows> rows =
        Query("SELECT failures, last_failure_at FROM failure_streaks WHERE \"user\" = $1", {user},
              "reading failure streak");
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return FailureStreak{};
    return FailureStreak{static_cast<int>(rows->Int(0, 0)), rows->Int(0, 1)};
  }

  Status SaveFailureStreak(std::string_view user, const FailureStreak& streak) override {
    return Run(
        "INSERT INTO failure_streaks (\"user\", failures, last_failure_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (\"user\") DO UPDATE SET failures = excluded.failures, "
        "last_failure_at = excluded.last_failure_at",
        {user, streak.failures, streak.last_failure_at}, "saving failure streak");
  }

  Status ClearFailureStreak(std::string_view user) override {
    return Run("DELETE FROM failure_streaks WHERE \"user\" = $1", {user},
               "clearing failure streak");
  }

  Status AddRegionCounts(std::string_view region, TimeMs bucket,
                         const RegionCounts& delta) override {
    return Run(
        "INSERT INTO region_counts (region, bucket, sends, approvals) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (region, bucket) DO UPDATE SET "
        "sends = region_counts.sends + excluded.sends, "
        "approvals = region_counts.approvals + excluded.approvals",
        {region, bucket, delta.sends, delta.approvals}, "counting region sends");
  }

  Result<RegionCounts> SumRegionCounts(std::string_view region, TimeMs after) override {
    Status locked = Lock("region", region);
    if (!locked.ok()) return locked.error();
    Result<PgRows> rows = Query(
        "SELECT COALESCE(SUM(sends), 0), COALESCE(SUM(approvals), 0) FROM region_counts "
        "WHERE region = $1 AND bucket > $2",
        {region, after}, "reading region counts");
    if (!rows.ok()) return rows.error();
    return RegionCounts{rows->Int(0, 0), rows->Int(0, 1)};
  }

  Result<std::optional<RegionSuspension>> FindRegionSuspension(std::string_view region) override {
    Status locked = Lock("region", region);
    if (!locked.ok()) return locked.error();
    Result<PgRows> rows = Query("SELECT since, until FROM region_suspensions WHERE region = $1",
                                {region}, "reading region suspension");
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return std::optional<RegionSuspension>();
    return std::optional<RegionSuspension>(RegionSuspension{rows->Int(0, 0), rows->Int(0, 1)});
  }

  Status SaveRegionSuspension(std::string_view region,
                              const RegionSuspension& suspension) override {
    return Run(
        "INSERT INTO region_suspensions (region, since, until) VALUES ($1, $2, $3) "
        "ON CONFLICT (region) DO UPDATE SET since = excluded.since, until = excluded.until",
        {region, suspension.since, suspension.until}, "saving region suspension");
  }

  Status PruneAbuseState(TimeMs before) override {
    for (const char* sql : {"DELETE FROM region_counts WHERE bucket <= $1",
                            "DELETE FROM failure_streaks WHERE last_failure_at <= $1",
                            "DELETE FROM region_suspensions WHERE until <= $1"}) {
      Status ran = Run(sql, {before}, "pruning abuse state");
      if (!ran.ok()) return ran;
    }
    return OkStatus();
  }

  Result<int> DeleteEndedChallenges(TimeMs before, int limit) override {
    // The deliveries go by ON DELETE CASCADE; the count is of challenges alone.
    return Changed(
        "DELETE FROM challenges WHERE id IN (SELECT id FROM challenges "
        "WHERE ended_at IS NOT NULL AND ended_at <= $1 ORDER BY ended_at LIMIT $2 "
        "FOR UPDATE SKIP LOCKED)",
        {before, limit}, "deleting ended challenges");
  }

  Result<int> DeleteAuditEvents(TimeMs before, int limit) override {
    return Changed(
        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events "
        "WHERE time <= $1 ORDER BY time LIMIT $2 FOR UPDATE SKIP LOCKED)",
        {before, limit}, "deleting old audit events");
  }

 private:
  static std::string EscapeArrayElement(const std::string& text) {
    std::string out;
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out;
  }

  Result<PgRows> Query(const std::string& sql, const std::vector<PgParam>& params,
                       const char* context) {
    Result<PgRows> rows = db_.Query(sql, params, deadline_, context);
    if (!rows.ok()) Note(rows.error());
    return rows;
  }

  Status Run(const std::string& sql, const std::vector<PgParam>& params, const char* context) {
    Result<PgRows> rows = Query(sql, params, context);
    if (!rows.ok()) return rows.error();
    return OkStatus();
  }

  Result<int> Changed(const std::string& sql, const std::vector<PgParam>& params,
                      const char* context) {
    Result<PgRows> rows = Query(sql, params, context);
    if (!rows.ok()) return rows.error();
    return rows->changed();
  }

  // A deadlock or serialization failure rolls the transaction back; a broken connection
  // loses it. Either way nothing of it was committed, so the body may run again.
  void Note(const Error& error) {
    if (error.code == "storage_retry" || !db_.usable()) retryable_ = true;
  }

  // Takes the transaction-scoped advisory lock of (kind, name), once per transaction. The
  // 64-bit hash of the pair names the lock; two pairs that collide only wait for each other.
  //
  // Deadlocks: everything about one user (their challenges, their own limit scopes, their
  // failure streak) takes the one "user" lock, before any of the user's rows, so a create
  // and a verify of one user queue on it instead of each holding what the other needs.
  // Those about different users share only keys and regions, which the limiter always
  // reads in the same order. PostgreSQL detects any deadlock left and the body runs again.
  Status Lock(const std::string& kind, std::string_view name) {
    std::string key = kind + '\x1f' + std::string(name);
    if (locked_.count(key) != 0) return OkStatus();
    Status taken =
        Run("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {key}, "waiting for a lock");
    if (taken.ok()) locked_.insert(key);
    return taken;
  }

  Result<std::optional<Challenge>> OneChallenge(const std::string& sql, std::string_view key,
                                                const char* context) {
    Result<PgRows> rows = Query(sql, {key}, context);
    if (!rows.ok()) return rows.error();
    if (rows->size() == 0) return std::optional<Challenge>();
    return std::optional<Challenge>(ReadChallenge(*rows, 0, 0));
  }

  Result<std::vector<Challenge>> Challenges(const std::string& sql,
                                            const std::vector<PgParam>& params,
                                            const char* context) {
    Result<PgRows> rows = Query(sql, params, context);
    if (!rows.ok()) return rows.error();
    std::vector<Challenge> out;
    for (int i = 0; i < rows->size(); ++i)
      out.push_back(ReadChallenge(*rows, i, 0));
    return out;
  }

  PgConnection& db_;
  const SteadyTime deadline_;
  bool retryable_ = false;
  std::set<std::string> locked_;
};

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const PgSettings& settings,
                                                           int pool_size) {
  SteadyTime deadline = DeadlineIn(kOpenBudget);
  Result<std::unique_ptr<PgConnection>> connection = PgConnection::Connect(settings, deadline);
  if (!connection.ok()) return connection.error();

  Result<int> version = Migrate(**connection, deadline);
  if (!version.ok()) return version.error();

  std::unique_ptr<PostgresStore> store(
      new PostgresStore(settings, std::max(1, pool_size), *version));
  store->Give(std::move(*connection));
  return store;
}

PostgresStore::PostgresStore(PgSettings settings, int pool_size, int schema_version)
    : settings_(std::move(settings)), pool_size_(pool_size), schema_version_(schema_version) {
  open_ = 1;  // the connection Open() migrated with, handed over next
}

PostgresStore::~PostgresStore() = default;

Result<std::unique_ptr<PgConnection>> PostgresStore::Acquire(SteadyTime deadline) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    bool available = returned_.wait_until(lock, deadline,
                                          [this] { return !idle_.empty() || open_ < pool_size_; });
    if (!available) {
      return MakeError("storage_unavailable",
                       "no PostgreSQL connection free in time (database.pool_size " +
                           std::to_string(pool_size_) + ")");
    }
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
    open_ += 1;
  }

  // Connecting happens outside the lock: a slow server must not hold up the idle ones.
  Result<std::unique_ptr<PgConnection>> connection = PgConnection::Connect(settings_, deadline);
  if (!connection.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ -= 1;
    returned_.notify_one();
  }
  return connection;
}

void PostgresStore::Give(std::unique_ptr<PgConnection> connection) {
  std::vector<std::unique_ptr<PgConnection>> dropped;
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection->usable()) {
    idle_.push_back(std::move(connection));
    returned_.notify_one();
    return;
  }
  // One connection broke: the server most likely restarted or went away, and the idle ones
  // are broken too. Dropping them all spares the next transactions a failed run each.
  dropped.swap(idle_);
  open_ -= 1 + static_cast<int>(dropped.size());
  returned_.notify_all();
}

Status PostgresStore::RunOnce(PgConnection& connection, const std::function<Status(StoreTx&)>& body,
                              SteadyTime deadline, bool& retry) {
  retry = false;
  Status begun = connection.Script("BEGIN", deadline, "starting transaction");
  if (!begun.ok()) {
    retry = true;
    return begun;
  }

  Tx tx(connection, deadline);
  Status result = OkStatus();
  try {
    result = body(tx);
  } catch (...) {
    Status ignored = connection.Script("ROLLBACK", deadline, "rolling back");
    (void)ignored;
    throw;
  }
  if (!result.ok()) {
    retry = tx.retryable();
    Status ignored = connection.Script("ROLLBACK", deadline, "rolling back");
    (void)ignored;
    return result;
  }

  // A commit PostgreSQL refuses (a serialization failure found at commit) left nothing
  // behind and may be retried; one whose answer was lost may have been applied and is not.
  Status committed = connection.Script("COMMIT", deadline, "committing");
  retry = !committed.ok() && committed.error().code == "storage_retry";
  if (committed.ok()) commits_.fetch_add(1);
  return committed;
}

Status PostgresStore::Transact(const std::function<Status(StoreTx&)>& body) {
  transactions_.fetch_add(1);
  SteadyTime deadline = DeadlineIn(kTransactionBudget);
  thread_local std::minstd_rand jitter(std::random_device{}());

  Status outcome = OkStatus();
  for (int run = 1; run <= kMaxRuns; ++run) {
    Result<std::unique_ptr<PgConnection>> connection = Acquire(deadline);
    if (!connection.ok()) return connection.error();

    bool retry = false;
    try {
      outcome = RunOnce(**connection, body, deadline, retry);
    } catch (...) {
      Give(std::move(*connection));
      throw;
    }
    Give(std::move(*connection));
    if (outcome.ok() || !retry) break;

    // Runs that conflicted back off a little, at random, so they do not meet again.
    std::this_thread::sleep_for(
        milliseconds(std::uniform_int_distribution<int>(1, 10 * run)(jitter)));
  }
  if (!outcome.ok() && outcome.error().code == "storage_retry") {
    return MakeError("storage_unavailable", outcome.error().message);
  }
  return outcome;
}

Status PostgresStore::ProbeWritable(std::int64_t timeout_ms) {
  SteadyTime deadline = DeadlineIn(milliseconds(std::max<std::int64_t>(timeout_ms, 1)));
  Result<std::unique_ptr<PgConnection>> connection = Acquire(deadline);
  if (!connection.ok()) return connection.error();

  Status probed =
      (*connection)
          ->Script("BEGIN; SET LOCAL lock_timeout = '" +
                       std::to_string(std::max<std::int64_t>(timeout_ms, 1)) +
                       "ms'; UPDATE readiness_probe SET probes = probes + 1 WHERE id = 1; COMMIT",
                   deadline, "probing the database");
  if (!probed.ok() && (*connection)->usable()) {
    Status ignored = (*connection)->Script("ROLLBACK", deadline, "ending the probe");
    (void)ignored;
  }
  Give(std::move(*connection));
  if (!probed.ok() && probed.error().code != "storage_full") {
    return MakeError("storage_unavailable", probed.error().message);
  }
  return probed;
}

Result<StoreStats> PostgresStore::ReadStats() {
  SteadyTime deadline = DeadlineIn(kStatsBudget);
  Result<std::unique_ptr<PgConnection>> connection = Acquire(deadline);
  if (!connection.ok()) return connection.error();

  Result<PgRows> rows = (*connection)
                            ->Query(
                                "SELECT (SELECT COUNT(*) FROM deliveries WHERE state = 'queued'), "
                                "pg_database_size(current_database())",
                                {}, deadline, "reading store figures");
  Give(std::move(*connection));
  if (!rows.ok()) return MakeError("storage_unavailable", rows.error().message);

  StoreStats stats;
  stats.outbox_depth = rows->Int(0, 0);
  stats.database_size_bytes = rows->Int(0, 1);
  stats.transactions = transactions_.load();
  stats.commits = commits_.load();
  return stats;
}

}  // namespace sidecar
