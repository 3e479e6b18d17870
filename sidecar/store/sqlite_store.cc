#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <unordered_map>

#include "store/migrations.h"

namespace sidecar {
namespace {

// How long a transaction waits for another process's write lock (an operator's sqlite3,
// `otp-sidecar migrate`) before it fails.
constexpr int kBusyTimeoutMs = 5000;
// How long a checkpoint at shutdown waits for other processes' readers and writers.
constexpr int kCheckpointWaitMs = 1000;
// How long a monitoring read waits for the connection before it gives up.
constexpr int kStatsWaitMs = 1000;
// Most bodies sharing one commit: bounds how long the first of them waits for its answer.
constexpr int kMaxBatchMembers = 256;
// How long a body waits for its batch's commit before it makes it itself (see AwaitCommit).
constexpr int kMemberRecheckMs = 5;
// Fewer free pages than this below the size limit and the database counts as full for the
// readiness probe: more than one create can need (a split in each b-tree it writes).
constexpr std::int64_t kFullMarginPages = 64;

// A full database (its size limit, or the disk) is told apart: waiting a second will not
// help, and an operator must make room.
const char* StorageErrorCode(int rc) {
  return (rc & 0xff) == SQLITE_FULL ? "storage_full" : "storage_unavailable";
}

Error SqliteError(sqlite3* db, const std::string& context) {
  int code = sqlite3_extended_errcode(db);
  std::string what = context + ": " + sqlite3_errmsg(db);
  if ((code & 0xff) == SQLITE_CONSTRAINT) return MakeError("conflict", what);
  return MakeError(StorageErrorCode(code), what);
}

Status Exec(sqlite3* db, const char* sql, const std::string& context) {
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return OkStatus();
  std::string what = context + ": " + (message != nullptr ? message : sqlite3_errstr(rc));
  sqlite3_free(message);
  return MakeError(StorageErrorCode(rc), what);
}

// The first column of the first row of a one-off query (not kept in the statement cache).
Result<std::int64_t> QueryInt(sqlite3* db, const char* sql, const std::string& context) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db, context);
  }
  int rc = sqlite3_step(stmt);
  std::int64_t value = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return SqliteError(db, context);
  return value;
}

Result<int> UserVersion(sqlite3* db) {
  Result<std::int64_t> version = QueryInt(db, "PRAGMA user_version", "reading schema version");
  if (!version.ok()) return version.error();
  return static_cast<int>(*version);
}

// Applies each migration newer than the file in its own IMMEDIATE transaction, re-reading
// the version inside it so that two processes migrating at once never apply one twice.
Result<int> Migrate(sqlite3* db) {
  const auto& migrations = EmbeddedMigrations();
  int newest = migrations.empty() ? 0 : migrations.back().version;

  for (const Migration& migration : migrations) {
    Status begun = Exec(db, "BEGIN IMMEDIATE", "starting migration");
    if (!begun.ok()) return begun.error();

    Result<int> current = UserVersion(db);
    if (!current.ok() || *current >= migration.version) {
      Status ignored = Exec(db, "ROLLBACK", "ending migration");
      (void)ignored;
      if (!current.ok()) return current.error();
      continue;
    }

    std::string context = std::string("applying migration ") + migration.name;
    std::string set_version = "PRAGMA user_version = " + std::to_string(migration.version);
    Status applied = Exec(db, migration.sql, context);
    if (applied.ok()) applied = Exec(db, set_version.c_str(), context);
    if (applied.ok()) applied = Exec(db, "COMMIT", context);
    if (!applied.ok()) {
      Status ignored = Exec(db, "ROLLBACK", context);
      (void)ignored;
      return applied.error();
    }
  }

  Result<int> version = UserVersion(db);
  if (version.ok() && *version > newest) {
    return MakeError("schema_too_new", "the database has schema version " +
                                           std::to_string(*version) +
                                           " but this otp-sidecar knows only up to " +
                                           std::to_string(newest) + "; upgrade otp-sidecar");
  }
  return version;
}

// A prepared statement borrowed from the cache for one use; reset when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void Bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void Bind(int index, std::int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void Bind(int index, const Bytes& bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void Bind(int index, const std::optional<Bytes>& bytes) {
    if (bytes) {
      Bind(index, *bytes);
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }
  void Bind(int index, const std::optional<TimeMs>& value) {
    if (value) {
      Bind(index, *value);
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }

  // Returns true for a row, false when done; errors on anything else.
  Result<bool> Step(const char* context) {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, context);
  }

  Status Run(const char* context) {
    Result<bool> stepped = Step(context);
    if (!stepped.ok()) return stepped.error();
    return OkStatus();
  }

  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return text == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
  }
  std::int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  Bytes Blob(int column) const {
    const auto* data = static_cast<const unsigned char*>(sqlite3_column_blob(stmt_, column));
    int size = sqlite3_column_bytes(stmt_, column);
    return data == nullptr ? Bytes() : Bytes(data, data + size);
  }
  std::optional<TimeMs> OptionalInt(int column) const {
    if (IsNull(column)) return std::nullopt;
    return Int(column);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

constexpr const char* kChallengeColumns =
    "id, user, phone, locale, client_ip, status, code_hash, sealed_code, attempts, "
    "max_attempts, created_at, expires_at, ended_at, region";

Challenge ReadChallenge(const Statement& row, int first) {
  Challenge c;
  c.id = row.Text(first + 0);
  c.user = row.Text(first + 1);
  c.phone = row.Text(first + 2);
  c.locale = row.Text(first + 3);
  c.client_ip = row.Text(first + 4);
  ParseChallengeStatus(row.Text(first + 5), &c.status);
  c.code_hash = row.Blob(first + 6);
  if (!row.IsNull(first + 7)) c.sealed_code = row.Blob(first + 7);
  c.attempts = static_cast<int>(row.Int(first + 8));
  c.max_attempts = static_cast<int>(row.Int(first + 9));
  c.created_at = row.Int(first + 10);
  c.expires_at = row.Int(first + 11);
  c.ended_at = row.OptionalInt(first + 12);
  c.region = row.Text(first + 13);
  return c;
}

constexpr const char* kDeliveryColumns =
    "id, challenge_id, state, provider, provider_message_id, attempts, provider_attempts, "
    "error, created_at, next_attempt_at, updated_at, sent_at";

Delivery ReadDelivery(const Statement& row, int first) {
  Delivery d;
  d.id = row.Int(first + 0);
  d.challenge_id = row.Text(first + 1);
  ParseDeliveryState(row.Text(first + 2), &d.state);
  d.provider = row.Text(first + 3);
  d.provider_message_id = row.Text(first + 4);
  d.attempts = static_cast<int>(row.Int(first + 5));
  d.provider_attempts = static_cast<int>(row.Int(first + 6));
  d.error = row.Text(first + 7);
  d.created_at = row.Int(first + 8);
  d.next_attempt_at = row.Int(first + 9);
  d.updated_at = row.Int(first + 10);
  d.sent_at = row.OptionalInt(first + 11);
  return d;
}

std::string Sql(const char* head, const char* columns, const char* tail) {
  return std::string(head) + columns + tail;
}

}  // namespace

class SqliteStore::Tx final : public StoreTx {
 public:
  using StoreTx::FindDueDelivery;
  using StoreTx::FindSendingDeliveries;
  Tx(sqlite3* db, std::unordered_map<std::string, sqlite3_stmt*>& cache) : db_(db), cache_(cache) {}

  Status InsertChallenge(const Challenge& c) override {
    auto s = Prepare(
        "INSERT INTO challenges (id, user, phone, locale, client_ip, status, code_hash, "
        "sealed_code, attempts, max_attempts, created_at, expires_at, ended_at, region) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    if (!s.ok()) return s.error();
    Statement& st = **s;
    st.Bind(1, c.id);
    st.Bind(2, c.user);
    st.Bind(3, c.phone);
    st.Bind(4, c.locale);
    st.Bind(5, c.client_ip);
    st.Bind(6, ToString(c.status));
    st.Bind(7, c.code_hash);
    st.Bind(8, c.sealed_code);
    st.Bind(9, static_cast<std::int64_t>(c.attempts));
    st.Bind(10, static_cast<std::int64_t>(c.max_attempts));
    st.Bind(11, c.created_at);
    st.Bind(12, c.expires_at);
    st.Bind(13, c.ended_at);
    st.Bind(14, c.region);
    return st.Run("inserting challenge");
  }

  Result<std::optional<Challenge>> FindChallenge(std::string_view id) override {
    return QueryOneChallenge(Sql("SELECT ", kChallengeColumns, " FROM challenges WHERE id = ?1"),
                             id, "reading challenge");
  }

  Result<std::optional<Challenge>> FindLatestChallengeOfUser(std::string_view user) override {
    // Insertion order, not created_at: two creates racing for the store, or a clock stepped
    // back, can give the challenge that superseded another an earlier created_at. SQLite gives a
    // new row a rowid above every row in the table.
    return QueryOneChallenge(Sql("SELECT ", kChallengeColumns,
                                 " FROM challenges WHERE user = ?1 ORDER BY rowid DESC LIMIT 1"),
                             user, "reading latest challenge");
  }

  Result<std::vector<Challenge>> FindPendingChallengesOfUser(std::string_view user) override {
    auto s = Prepare(Sql("SELECT ", kChallengeColumns,
                         " FROM challenges WHERE user = ?1 AND status = 'pending'"));
    if (!s.ok()) return s.error();
    (*s)->Bind(1, user);
    return CollectChallenges(**s, "reading pending challenges");
  }

  Result<std::vector<Challenge>> FindExpiredPending(TimeMs now, int limit) override {
    auto s = Prepare(Sql("SELECT ", kChallengeColumns,
                         " FROM challenges WHERE status = 'pending' AND expires_at <= ?1 "
                         "ORDER BY expires_at LIMIT ?2"));
    if (!s.ok()) return s.error();
    (*s)->Bind(1, now);
    (*s)->Bind(2, static_cast<std::int64_t>(limit));
    return CollectChallenges(**s, "reading expired challenges");
  }

  Status UpdateChallenge(const Challenge& c) override {
    auto s = Prepare(
        "UPDATE challenges SET status = ?2, attempts = ?3, ended_at = ?4, sealed_code = ?5 "
        "WHERE id = ?1");
    if (!s.ok()) return s.error();
    Statement& st = **s;
    st.Bind(1, c.id);
    st.Bind(2, ToString(c.status));
    st.Bind(3, static_cast<std::int64_t>(c.attempts));
    st.Bind(4, c.ended_at);
    st.Bind(5, c.sealed_code);
    return st.Run("updating challenge");
  }

  Result<std::int64_t> InsertDelivery(std::string_view challenge_id, std::string_view provider,
                                      TimeMs now) override {
    auto s = Prepare(
        "INSERT INTO deliveries (challenge_id, state, provider, created_at, next_attempt_at, "
        "updated_at) VALUES (?1, 'queued', ?2, ?3, ?3, ?3)");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, challenge_id);
    (*s)->Bind(2, provider);
    (*s)->Bind(3, now);
    Status ran = (*s)->Run("queueing delivery");
    if (!ran.ok()) return ran.error();
    return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
  }

  Result<std::optional<Delivery>> FindLatestDelivery(std::string_view challenge_id) override {
    auto s = Prepare(Sql("SELECT ", kDeliveryColumns,
                         " FROM deliveries WHERE challenge_id = ?1 ORDER BY id DESC LIMIT 1"));
    if (!s.ok()) return s.error();
    (*s)->Bind(1, challenge_id);
    Result<bool> row = (*s)->Step("reading delivery");
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<Delivery>();
    return std::optional<Delivery>(ReadDelivery(**s, 0));
  }

  Status UpdateDelivery(const Delivery& d) override {
    auto s = Prepare(
        "UPDATE deliveries SET state = ?2, provider = ?3, provider_message_id = ?4, "
        "attempts = ?5, provider_attempts = ?6, error = ?7, next_attempt_at = ?8, "
        "updated_at = ?9, sent_at = ?10 WHERE id = ?1");
    if (!s.ok()) return s.error();
    Statement& st = **s;
    st.Bind(1, d.id);
    st.Bind(2, ToString(d.state));
    st.Bind(3, d.provider);
    st.Bind(4, d.provider_message_id);
    st.Bind(5, static_cast<std::int64_t>(d.attempts));
    st.Bind(6, static_cast<std::int64_t>(d.provider_attempts));
    st.Bind(7, d.error);
    st.Bind(8, d.next_attempt_at);
    st.Bind(9, d.updated_at);
    st.Bind(10, d.sent_at);
    return st.Run("updating delivery");
  }

  Status FailQueuedDeliveries(std::string_view challenge_id, std::string_view error,
                              TimeMs now) override {
    auto s = Prepare(
        "UPDATE deliveries SET state = 'failed', error = ?2, updated_at = ?3 "
        "WHERE challenge_id = ?1 AND state = 'queued'");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, challenge_id);
    (*s)->Bind(2, error);
    (*s)->Bind(3, now);
    return (*s)->Run("failing queued deliveries");
  }

  Result<std::optional<DeliveryJob>> FindDueDelivery(
      TimeMs now, const std::vector<std::string>& skip_providers) override {
    // One statement text per number of skipped providers (there are only a few), so the
    // prepared-statement cache stays small.
    std::string skip;
    for (std::size_t i = 0; i < skip_providers.size(); ++i) {
      skip += (i == 0 ? "" : ", ") + std::string("?") + std::to_string(i + 2);
    }
    std::string sql =
        "SELECT d.id, d.challenge_id, d.state, d.provider, d.provider_message_id, "
        "d.attempts, d.provider_attempts, d.error, d.created_at, d.next_attempt_at, "
        "d.updated_at, d.sent_at, "
        "c.id, c.user, c.phone, c.locale, c.client_ip, c.status, c.code_hash, c.sealed_code, "
        "c.attempts, c.max_attempts, c.created_at, c.expires_at, c.ended_at, c.region "
        "FROM deliveries d JOIN challenges c ON c.id = d.challenge_id "
        "WHERE d.state = 'queued' AND d.next_attempt_at <= ?1 "
        "AND c.status = 'pending' AND c.expires_at > ?1 " +
        (skip.empty() ? std::string() : "AND d.provider NOT IN (" + skip + ") ") +
        "ORDER BY d.next_attempt_at, d.id LIMIT 1";
    auto s = Prepare(sql);
    if (!s.ok()) return s.error();
    (*s)->Bind(1, now);
    for (std::size_t i = 0; i < skip_providers.size(); ++i) {
      (*s)->Bind(static_cast<int>(i + 2), skip_providers[i]);
    }
    Result<bool> row = (*s)->Step("reading due delivery");
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<DeliveryJob>();
    return std::optional<DeliveryJob>(DeliveryJob{ReadDelivery(**s, 0), ReadChallenge(**s, 12)});
  }

  Result<std::optional<TimeMs>> NextDeliveryDue() override {
    auto s = Prepare(
        "SELECT MIN(d.next_attempt_at) FROM deliveries d JOIN challenges c "
        "ON c.id = d.challenge_id WHERE d.state = 'queued' AND c.status = 'pending'");
    if (!s.ok()) return s.error();
    Result<bool> row = (*s)->Step("reading next due delivery");
    if (!row.ok()) return row.error();
    if (!*row || (*s)->IsNull(0)) return std::optional<TimeMs>();
    return std::optional<TimeMs>((*s)->Int(0));
  }

  Result<std::vector<Delivery>> FindSendingDeliveries(TimeMs claimed_at_or_before) override {
    auto s = Prepare(Sql("SELECT ", kDeliveryColumns,
                         " FROM deliveries WHERE state = 'sending' AND updated_at <= ?1 "
                         "ORDER BY id"));
    if (!s.ok()) return s.error();
    (*s)->Bind(1, claimed_at_or_before);
    std::vector<Delivery> out;
    while (true) {
      Result<bool> row = (*s)->Step("reading interrupted deliveries");
      if (!row.ok()) return row.error();
      if (!*row) break;
      out.push_back(ReadDelivery(**s, 0));
    }
    return out;
  }

  Status AppendAudit(const AuditEvent& e) override {
    auto s = Prepare(
        "INSERT INTO audit_events (time, event, user, challenge_id, outcome, client_ip, "
        "phone_masked, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!s.ok()) return s.error();
    Statement& st = **s;
    st.Bind(1, e.time);
    st.Bind(2, e.event);
    st.Bind(3, e.user);
    st.Bind(4, e.challenge_id);
    st.Bind(5, e.outcome);
    st.Bind(6, e.client_ip);
    st.Bind(7, e.phone_masked);
    st.Bind(8, e.detail);
    return st.Run("writing audit event");
  }

  Result<std::vector<TimeMs>> FindLimitEvents(std::string_view scope, std::string_view key,
                                              TimeMs after) override {
    auto s = Prepare(
        "SELECT time FROM limit_events WHERE scope = ?1 AND key = ?2 AND time > ?3 "
        "ORDER BY time");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, scope);
    (*s)->Bind(2, key);
    (*s)->Bind(3, after);
    std::vector<TimeMs> times;
    while (true) {
      Result<bool> row = (*s)->Step("reading limit events");
      if (!row.ok()) return row.error();
      if (!*row) break;
      times.push_back((*s)->Int(0));
    }
    return times;
  }

  Status AddLimitEvent(std::string_view scope, std::string_view key, TimeMs time) override {
    auto s = Prepare("INSERT INTO limit_events (scope, key, time) VALUES (?1, ?2, ?3)");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, scope);
    (*s)->Bind(2, key);
    (*s)->Bind(3, time);
    return (*s)->Run("counting a limit event");
  }

  Status PruneLimitEvents(std::string_view scope, std::string_view key, TimeMs before) override {
    auto s = Prepare("DELETE FROM limit_events WHERE scope = ?1 AND key = ?2 AND time <= ?3");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, scope);
    (*s)->Bind(2, key);
    (*s)->Bind(3, before);
    return (*s)->Run("pruning limit events");
  }

  Status PruneScope(std::string_view scope, TimeMs before) override {
    auto s = Prepare("DELETE FROM limit_events WHERE scope = ?1 AND time <= ?2");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, scope);
    (*s)->Bind(2, before);
    return (*s)->Run("pruning limit events");
  }

  Status ClearLimitEvents(std::string_view scope, std::string_view key) override {
    auto s = Prepare("DELETE FROM limit_events WHERE scope = ?1 AND key = ?2");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, scope);
    (*s)->Bind(2, key);
    return (*s)->Run("clearing limit events");
  }

  Result<FailureStreak> FindFailureStreak(std::string_view user) override {
    auto s = Prepare("SELECT failures, last_failure_at FROM failure_streaks WHERE user = ?1");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, user);
    Result<bool> row = (*s)->Step("reading failure streak");
    if (!row.ok()) return row.error();
    if (!*row) return FailureStreak{};
    return FailureStreak{static_cast<int>((*s)->Int(0)), (*s)->Int(1)};
  }

  Status SaveFailureStreak(std::string_view user, const FailureStreak& streak) override {
    auto s = Prepare(
        "INSERT INTO failure_streaks (user, failures, last_failure_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (user) DO UPDATE SET failures = excluded.failures, "
        "last_failure_at = excluded.last_failure_at");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, user);
    (*s)->Bind(2, static_cast<std::int64_t>(streak.failures));
    (*s)->Bind(3, streak.last_failure_at);
    return (*s)->Run("saving failure streak");
  }

  Status ClearFailureStreak(std::string_view user) override {
    auto s = Prepare("DELETE FROM failure_streaks WHERE user = ?1");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, user);
    return (*s)->Run("clearing failure streak");
  }

  Status AddRegionCounts(std::string_view region, TimeMs bucket,
                         const RegionCounts& delta) override {
    auto s = Prepare(
        "INSERT INTO region_counts (region, bucket, sends, approvals) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (region, bucket) DO UPDATE SET sends = sends + excluded.sends, "
        "approvals = approvals + excluded.approvals");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, region);
    (*s)->Bind(2, bucket);
    (*s)->Bind(3, delta.sends);
    (*s)->Bind(4, delta.approvals);
    return (*s)->Run("counting region sends");
  }

  Result<RegionCounts> SumRegionCounts(std::string_view region, TimeMs after) override {
    auto s = Prepare(
        "SELECT COALESCE(SUM(sends), 0), COALESCE(SUM(approvals), 0) FROM region_counts "
        "WHERE region = ?1 AND bucket > ?2");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, region);
    (*s)->Bind(2, after);
    Result<bool> row = (*s)->Step("reading region counts");
    if (!row.ok()) return row.error();
    return RegionCounts{(*s)->Int(0), (*s)->Int(1)};
  }

  Result<std::optional<RegionSuspension>> FindRegionSuspension(std::string_view region) override {
    auto s = Prepare("SELECT since, until FROM region_suspensions WHERE region = ?1");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, region);
    Result<bool> row = (*s)->Step("reading region suspension");
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<RegionSuspension>();
    return std::optional<RegionSuspension>(RegionSuspension{(*s)->Int(0), (*s)->Int(1)});
  }

  Status SaveRegionSuspension(std::string_view region,
                              const RegionSuspension& suspension) override {
    auto s = Prepare(
        "INSERT INTO region_suspensions (region, since, until) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (region) DO UPDATE SET since = excluded.since, until = excluded.until");
    if (!s.ok()) return s.error();
    (*s)->Bind(1, region);
    (*s)->Bind(2, suspension.since);
    (*s)->Bind(3, suspension.until);
    return (*s)->Run("saving region suspension");
  }

  Status PruneAbuseState(TimeMs before) override {
    for (const char* sql : {"DELETE FROM region_counts WHERE bucket <= ?1",
                            "DELETE FROM failure_streaks WHERE last_failure_at <= ?1",
                            "DELETE FROM region_suspensions WHERE until <= ?1"}) {
      auto s = Prepare(sql);
      if (!s.ok()) return s.error();
      (*s)->Bind(1, before);
      Status ran = (*s)->Run("pruning abuse state");
      if (!ran.ok()) return ran;
    }
    return OkStatus();
  }

  Result<int> DeleteEndedChallenges(TimeMs before, int limit) override {
    // The deliveries go by ON DELETE CASCADE; sqlite3_changes counts the challenges alone.
    return DeleteOldest(
        "DELETE FROM challenges WHERE rowid IN (SELECT rowid FROM challenges "
        "WHERE ended_at IS NOT NULL AND ended_at <= ?1 ORDER BY ended_at LIMIT ?2)",
        before, limit, "deleting ended challenges");
  }

  Result<int> DeleteAuditEvents(TimeMs before, int limit) override {
    return DeleteOldest(
        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events "
        "WHERE time <= ?1 ORDER BY time LIMIT ?2)",
        before, limit, "deleting old audit events");
  }

 private:
  Result<int> DeleteOldest(const char* sql, TimeMs before, int limit, const char* context) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.error();
    (*s)->Bind(1, before);
    (*s)->Bind(2, static_cast<std::int64_t>(limit));
    Status ran = (*s)->Run(context);
    if (!ran.ok()) return ran.error();
    return sqlite3_changes(db_);
  }

  // Statements are prepared once per SQL text and kept for the life of the connection.
  Result<std::unique_ptr<Statement>> Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK) {
        return SqliteError(db_, "preparing statement");
      }
      it = cache_.emplace(sql, stmt).first;
    }
    return std::make_unique<Statement>(db_, it->second);
  }

  Result<std::optional<Challenge>> QueryOneChallenge(const std::string& sql, std::string_view key,
                                                     const char* context) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.error();
    (*s)->Bind(1, key);
    Result<bool> row = (*s)->Step(context);
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<Challenge>();
    return std::optional<Challenge>(ReadChallenge(**s, 0));
  }

  Result<std::vector<Challenge>> CollectChallenges(Statement& st, const char* context) {
    std::vector<Challenge> out;
    while (true) {
      Result<bool> row = st.Step(context);
      if (!row.ok()) return row.error();
      if (!*row) break;
      out.push_back(ReadChallenge(st, 0));
    }
    return out;
  }

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*>& cache_;
};

namespace {

Status Configure(sqlite3* db) {
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  Status s = Exec(db, "PRAGMA journal_mode = WAL", "enabling WAL");
  if (s.ok()) s = Exec(db, "PRAGMA synchronous = FULL", "setting synchronous");
  if (s.ok()) s = Exec(db, "PRAGMA foreign_keys = ON", "enabling foreign keys");
  // The default 2 MiB page cache holds too little of the indexes that every request walks
  // (challenges by user, limit events, audit), so each request read pages back from the
  // operating system; 16 MiB keeps them in memory.
  if (s.ok()) s = Exec(db, "PRAGMA cache_size = -16384", "sizing the page cache");
  // A reader held open for long (an operator's sqlite3) keeps checkpoints from finishing and
  // the log grows meanwhile; once it restarts, the file is cut back to 64 MiB.
  if (s.ok()) s = Exec(db, "PRAGMA journal_size_limit = 67108864", "limiting the log's size");
  // Overwrite deleted content so erased sealed codes do not linger in free pages.
  if (s.ok()) s = Exec(db, "PRAGMA secure_delete = ON", "enabling secure delete");
  return s;
}

// Caps the file at `max_size_bytes`, rounded down to whole pages (0: SQLite's own limit).
// SQLite silently keeps a cap below the pages the file already has at that count, which
// would start the sidecar full; that is refused instead.
Status LimitSize(sqlite3* db, std::int64_t max_size_bytes) {
  if (max_size_bytes <= 0) return OkStatus();
  Result<std::int64_t> page_size = QueryInt(db, "PRAGMA page_size", "reading page size");
  if (!page_size.ok()) return page_size.error();
  std::int64_t pages = max_size_bytes / *page_size;
  std::string sql = "PRAGMA max_page_count = " + std::to_string(pages);
  Result<std::int64_t> set = QueryInt(db, sql.c_str(), "setting the size limit");
  if (!set.ok()) return set.error();
  if (*set > pages) {
    return MakeError("invalid_config", "database_max_size: " + std::to_string(max_size_bytes) +
                                           " bytes is less than the database already takes (" +
                                           std::to_string(*set * *page_size) + " bytes)");
  }
  return OkStatus();
}

// Full when fewer than kFullMarginPages can still be had, from free pages or by growing.
Status CheckRoom(sqlite3* db) {
  Result<std::int64_t> pages = QueryInt(db, "PRAGMA page_count", "reading page count");
  if (!pages.ok()) return pages.error();
  Result<std::int64_t> free = QueryInt(db, "PRAGMA freelist_count", "reading free pages");
  if (!free.ok()) return free.error();
  Result<std::int64_t> most = QueryInt(db, "PRAGMA max_page_count", "reading the size limit");
  if (!most.ok()) return most.error();
  if (*most - *pages + *free >= kFullMarginPages) return OkStatus();
  return MakeError("storage_full",
                   "the database has reached its size limit (" + std::to_string(*most) + " pages)");
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       std::int64_t max_size_bytes) {
  // The database holds phone numbers and user names: a new file is made for its owner only
  // (SQLite gives the -wal and -shm files the same mode). An empty file is a valid database.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);

  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Error error = MakeError(
        "storage_unavailable",
        "opening database " + path + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return error;
  }

  Status configured = Configure(db);
  if (configured.ok()) configured = LimitSize(db, max_size_bytes);
  if (!configured.ok()) {
    sqlite3_close(db);
    return configured.error().WithContext("database " + path);
  }

  Result<int> version = Migrate(db);
  if (!version.ok()) {
    sqlite3_close(db);
    return version.error().WithContext("database " + path);
  }

  Result<std::unique_ptr<WalCheckpointer>> checkpointer = WalCheckpointer::Start(path);
  if (!checkpointer.ok()) {
    sqlite3_close(db);
    return checkpointer.error().WithContext("database " + path);
  }
  (*checkpointer)->Attach(db);
  return std::unique_ptr<SqliteStore>(
      new SqliteStore(db, *version, path, std::move(checkpointer).value()));
}

SqliteStore::SqliteStore(sqlite3* db, int schema_version, std::string path,
                         std::unique_ptr<WalCheckpointer> checkpointer)
    : db_(db),
      schema_version_(schema_version),
      path_(std::move(path)),
      checkpointer_(std::move(checkpointer)) {
  struct stat opened {};
  if (::stat(path_.c_str(), &opened) == 0) {
    opened_device_ = opened.st_dev;
    opened_inode_ = opened.st_ino;
  }
}

SqliteStore::~SqliteStore() {
  std::lock_guard<std::timed_mutex> lock(mutex_);
  for (auto& [sql, stmt] : statements_)
    sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Status SqliteStore::Transact(const std::function<Status(StoreTx&)>& body) {
  return RunBatched(body, kBusyTimeoutMs, "starting transaction");
}

Status SqliteStore::ProbeWritable(std::int64_t timeout_ms) {
  // Writes to a file that was deleted or moved away still succeed, and are lost at the
  // next start: the path must still lead to the file this store opened.
  struct stat now {};
  if (::stat(path_.c_str(), &now) != 0 || now.st_dev != opened_device_ ||
      now.st_ino != opened_inode_) {
    return MakeError("storage_unavailable", "the database file was moved or deleted");
  }

  // Taking the write lock is not enough: a file made read-only, or a full disk, under a
  // running process fails only when a commit writes, so the probe commits a one-row update.
  return RunBatched(
      [this](StoreTx&) {
        Status written = Exec(db_, "UPDATE readiness_probe SET probes = probes + 1 WHERE id = 1",
                              "writing the readiness probe");
        // Rewriting one row needs no new page: a database at its size limit still takes it.
        if (written.ok()) written = CheckRoom(db_);
        return written;
      },
      timeout_ms, "probing for writes");
}

Status SqliteStore::RunBatched(const std::function<Status(StoreTx&)>& body, std::int64_t wait_ms,
                               const char* context) {
  std::unique_lock<std::timed_mutex> lock(mutex_, std::defer_lock);
  Result<std::shared_ptr<Batch>> joined = JoinBatch(lock, wait_ms, context);
  if (!joined.ok()) return joined.error();
  const std::shared_ptr<Batch> batch = *joined;

  std::exception_ptr thrown;
  bool broken = false;
  Status result = RunInSavepoint(body, thrown, broken);
  ++batch->members;
  ++transactions_;

  // A body that broke the transaction (SQLite rolls it all back on some I/O errors) takes
  // the batch's earlier bodies with it; none of them has been answered yet, so none is lost
  // to its caller. Otherwise the batch stays open while more bodies are on their way in,
  // up to a bound that keeps the first member's wait short.
  if (broken) {
    EndBatch(*batch,
             result.ok() ? MakeError("storage_unavailable", "the transaction was lost") : result);
  } else if (arriving_.load() == 0 || batch->members >= kMaxBatchMembers) {
    EndBatch(*batch, OkStatus());
  } else {
    AwaitCommit(lock, *batch);
  }

  if (thrown) std::rethrow_exception(thrown);
  if (!result.ok()) return result;
  return batch->result;
}

Result<std::shared_ptr<SqliteStore::Batch>> SqliteStore::JoinBatch(
    std::unique_lock<std::timed_mutex>& lock, std::int64_t wait_ms, const char* context) {
  // One budget for the whole wait, this process's queue included: when another process
  // holds the write lock, callers queued here behind one another would otherwise each wait
  // their own full timeout, one after the other.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  ++arriving_;
  bool locked = lock.try_lock_until(deadline);
  --arriving_;
  if (!locked) {
    return MakeError("storage_unavailable", "the database is busy: timed out waiting for it");
  }
  if (open_batch_) return open_batch_;

  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  sqlite3_busy_timeout(db_, static_cast<int>(std::max<std::int64_t>(left.count(), 1)));
  // IMMEDIATE takes the write lock up front, so a read-then-write body can never be
  // overtaken by another process between its read and its write.
  Status begun = Exec(db_, "BEGIN IMMEDIATE", context);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  if (!begun.ok()) return begun.error();

  open_batch_ = std::make_shared<Batch>();
  return open_batch_;
}

Status SqliteStore::RunInSavepoint(const std::function<Status(StoreTx&)>& body,
                                   std::exception_ptr& thrown, bool& broken) {
  Status opened = Exec(db_, "SAVEPOINT body", "starting transaction");
  if (!opened.ok()) {
    broken = true;
    return opened;
  }

  Tx tx(db_, statements_);
  Status result = OkStatus();
  try {
    result = body(tx);
  } catch (...) {
    thrown = std::current_exception();
    result = MakeError("internal_error", "the transaction threw");
  }

  // Back in autocommit mode means SQLite rolled the whole transaction back by itself.
  if (sqlite3_get_autocommit(db_)) {
    broken = true;
    return result;
  }
  Status undone = result.ok() ? OkStatus() : Exec(db_, "ROLLBACK TO body", "rolling back");
  Status released = Exec(db_, "RELEASE body", "ending savepoint");
  if (!undone.ok() || !released.ok()) broken = true;
  if (result.ok() && !released.ok()) return released;
  return result;
}

void SqliteStore::AwaitCommit(std::unique_lock<std::timed_mutex>& lock, Batch& batch) {
  // The member waits without mutex_, so that the bodies still coming in, and the commit,
  // are not held back by members taking it in turn as they wake.
  lock.unlock();
  std::unique_lock<std::mutex> ended(batch_ended_mutex_);
  auto recheck = std::chrono::milliseconds(kMemberRecheckMs);
  while (!batch_ended_.wait_for(ended, recheck, [&batch] { return batch.done; })) {
    // Whoever comes in last commits, but a caller that gave up waiting for mutex_ never
    // comes in: after a while a member commits the batch itself. Holding mutex_ means no
    // body of the batch is still running.
    ended.unlock();
    if (lock.try_lock()) {
      if (open_batch_.get() == &batch) EndBatch(batch, OkStatus());
      lock.unlock();
    }
    ended.lock();
  }
}

void SqliteStore::EndBatch(Batch& batch, Status outcome) {
  Status result = Finish(std::move(outcome));
  if (result.ok()) ++commits_;
  open_batch_.reset();

  std::lock_guard<std::mutex> ended(batch_ended_mutex_);
  batch.result = std::move(result);
  batch.done = true;
  batch_ended_.notify_all();
}

Status SqliteStore::Finish(Status result) {
  if (result.ok()) result = Exec(db_, "COMMIT", "committing transaction");
  // Never leave the connection inside the transaction: every later BEGIN would fail.
  if (!result.ok() && !sqlite3_get_autocommit(db_)) {
    Status ignored = Exec(db_, "ROLLBACK", "rolling back transaction");
    (void)ignored;
  }
  return result;
}

Result<StoreStats> SqliteStore::ReadStats() {
  // A scrape gives up soon rather than queue behind writers waiting on another process.
  std::unique_lock<std::timed_mutex> lock(mutex_, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(kStatsWaitMs))) {
    return MakeError("storage_unavailable", "the database is busy: timed out waiting for it");
  }

  // Each statement reads in its own implicit transaction: WAL readers take no write lock,
  // so neither this process's writers nor another process's wait on a scrape.
  Result<std::int64_t> queued =
      QueryInt(db_, "SELECT COUNT(*) FROM deliveries WHERE state = 'queued'", "counting outbox");
  if (!queued.ok()) return queued.error();
  Result<std::int64_t> pages = QueryInt(db_, "PRAGMA page_count", "reading page count");
  if (!pages.ok()) return pages.error();
  Result<std::int64_t> page_size = QueryInt(db_, "PRAGMA page_size", "reading page size");
  if (!page_size.ok()) return page_size.error();

  // The log holds committed pages not yet checkpointed; it is part of what the database
  // takes on disk. It is absent between a clean stop and the next write.
  struct stat wal {};
  std::int64_t wal_bytes = ::stat((path_ + "-wal").c_str(), &wal) == 0 ? wal.st_size : 0;
  return StoreStats{*queued, *pages * *page_size + wal_bytes, transactions_.load(),
                    commits_.load()};
}

Status SqliteStore::Checkpoint() {
  std::lock_guard<std::timed_mutex> lock(mutex_);
  // A checkpoint cannot run inside the connection's own open transaction. Holding mutex_,
  // every body of an open batch has run: its members only wait for the commit.
  if (open_batch_) EndBatch(*open_batch_, OkStatus());

  // The pragma reports a checkpoint that readers or writers held back only in its result
  // row; the C call returns SQLITE_BUSY for it. A short wait keeps a stop short.
  sqlite3_busy_timeout(db_, kCheckpointWaitMs);
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  if (rc == SQLITE_OK) return OkStatus();
  return MakeError("storage_unavailable",
                   std::string("checkpointing the WAL: ") + sqlite3_errstr(rc) +
                       " (another process is reading or writing the database)");
}

}  // namespace sidecar
