#pragma once

// The store is the one place that speaks SQL. It knows no rules: it offers the reads and
// writes the rules need, grouped in transactions. Two backends implement the same two
// interfaces: SQLite (sqlite_store.h, one file used by one sidecar) and PostgreSQL
// (postgres_store.h, one database shared by the sidecars of many hosts).

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace sidecar {

// Operations inside one transaction. Valid only during the Store::Transact call that
// handed it out; not thread-safe. Every method fails with "storage_full" when a write needs
// room the database does not have (its size limit is reached, or the disk is full), and
// with "storage_unavailable" when it cannot be read or written otherwise (read-only, I/O
// error).
class StoreTx {
 public:
  virtual ~StoreTx() = default;

  // Errors with "conflict" when the id already exists.
  virtual Status InsertChallenge(const Challenge& challenge) = 0;

  virtual Result<std::optional<Challenge>> FindChallenge(std::string_view id) = 0;

  // The user's most recently inserted challenge, whatever its status. Insertion order, not
  // created_at, so that a clock stepped back cannot hide the live challenge.
  virtual Result<std::optional<Challenge>> FindLatestChallengeOfUser(std::string_view user) = 0;

  virtual Result<std::vector<Challenge>> FindPendingChallengesOfUser(std::string_view user) = 0;

  // Pending challenges whose expires_at <= now, oldest first, at most `limit`.
  virtual Result<std::vector<Challenge>> FindExpiredPending(TimeMs now, int limit) = 0;

  // Writes status, attempts, ended_at and sealed_code (nullopt erases it) of `challenge`.
  virtual Status UpdateChallenge(const Challenge& challenge) = 0;

  // Queues a new delivery for the challenge, due at `now`. Returns its id.
  virtual Result<std::int64_t> InsertDelivery(std::string_view challenge_id,
                                              std::string_view provider, TimeMs now) = 0;

  virtual Result<std::optional<Delivery>> FindLatestDelivery(std::string_view challenge_id) = 0;

  virtual Status UpdateDelivery(const Delivery& delivery) = 0;

  // Marks every queued delivery of the challenge failed with `error`.
  virtual Status FailQueuedDeliveries(std::string_view challenge_id, std::string_view error,
                                      TimeMs now) = 0;

  // The oldest queued delivery due at `now` whose challenge is pending and unexpired, and
  // whose provider is not one of `skip_providers` (those at their in-flight limit).
  virtual Result<std::optional<DeliveryJob>> FindDueDelivery(
      TimeMs now, const std::vector<std::string>& skip_providers) = 0;
  Result<std::optional<DeliveryJob>> FindDueDelivery(TimeMs now) {
    return FindDueDelivery(now, {});
  }

  // When the next queued delivery of a pending challenge falls due, if any.
  virtual Result<std::optional<TimeMs>> NextDeliveryDue() = 0;

  // Deliveries in "sending" that were claimed (updated_at) at or before
  // `claimed_at_or_before`, oldest first: sends a crash interrupted, or, on a store shared
  // by several sidecars, sends whose claim's lease ran out. On a shared store a delivery
  // returned is locked until the transaction ends, so no two sidecars take one over at once.
  virtual Result<std::vector<Delivery>> FindSendingDeliveries(TimeMs claimed_at_or_before) = 0;
  // Every delivery in "sending".
  Result<std::vector<Delivery>> FindSendingDeliveries() {
    return FindSendingDeliveries(std::numeric_limits<TimeMs>::max());
  }

  virtual Status AppendAudit(const AuditEvent& event) = 0;

  // Rate-limit events (see limits/). Times of the events of (scope, key) later than
  // `after`, oldest first.
  virtual Result<std::vector<TimeMs>> FindLimitEvents(std::string_view scope, std::string_view key,
                                                      TimeMs after) = 0;
  virtual Status AddLimitEvent(std::string_view scope, std::string_view key, TimeMs time) = 0;
  // Deletes the events of (scope, key) at or before `before`.
  virtual Status PruneLimitEvents(std::string_view scope, std::string_view key, TimeMs before) = 0;
  // Deletes every event of `scope` at or before `before`, whatever the key.
  virtual Status PruneScope(std::string_view scope, TimeMs before) = 0;
  virtual Status ClearLimitEvents(std::string_view scope, std::string_view key) = 0;

  virtual Result<FailureStreak> FindFailureStreak(std::string_view user) = 0;
  virtual Status SaveFailureStreak(std::string_view user, const FailureStreak& streak) = 0;
  virtual Status ClearFailureStreak(std::string_view user) = 0;

  // Adds to the counts of the region's minute `bucket`.
  virtual Status AddRegionCounts(std::string_view region, TimeMs bucket,
                                 const RegionCounts& delta) = 0;
  // Sums the region's buckets later than `after`.
  virtual Result<RegionCounts> SumRegionCounts(std::string_view region, TimeMs after) = 0;
  virtual Result<std::optional<RegionSuspension>> FindRegionSuspension(std::string_view region) = 0;
  virtual Status SaveRegionSuspension(std::string_view region,
                                      const RegionSuspension& suspension) = 0;

  // Housekeeping: drops region counts, streaks and ended suspensions at or before `before`.
  virtual Status PruneAbuseState(TimeMs before) = 0;

  // Retention: deletes at most `limit` challenges that ended at or before `before`, the
  // oldest first, together with their deliveries. Returns how many challenges went.
  virtual Result<int> DeleteEndedChallenges(TimeMs before, int limit) = 0;

  // Retention: deletes at most `limit` audit events at or before `before`, the oldest first.
  // Returns how many went.
  virtual Result<int> DeleteAuditEvents(TimeMs before, int limit) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs `body` in one write transaction: commits when it returns ok, rolls back when it
  // returns an error (which is passed on) or when the commit fails. Whatever `body` reads
  // through the methods above stays as read until the commit, for every other transaction
  // in this process or another (SQLite runs transactions one at a time; PostgreSQL locks
  // what was read): this is what makes concurrent verifies of one challenge compare no more
  // codes than allowed. A backend may run `body` again after a conflict, so `body` must
  // reset any state of its own it changes. Waits a few seconds at most, in all, for its
  // turn and the database's locks, then errors with "storage_unavailable". Thread-safe.
  virtual Status Transact(const std::function<Status(StoreTx&)>& body) = 0;

  // Checks that a write reaches the database now, waiting at most `timeout_ms` for the
  // write lock: it commits a one-row update of its own (readiness_probe), and touches
  // nothing else. Errors with "storage_unavailable" when the database is read-only (even if
  // made so while open), cannot be written, is locked by another writer for longer than the
  // timeout, or is gone; with "storage_full" when the disk is full, or the database is at
  // or near its size limit (which a one-row update alone would not show). Thread-safe.
  virtual Status ProbeWritable(std::int64_t timeout_ms) = 0;
  // Reads figures for monitoring, writing nothing: it waits at most a second for the
  // connection, and never holds writers back for longer than a few small reads (it may
  // read inside a transaction still open for other callers, and then sees its changes).
  // Errors with "storage_unavailable". Thread-safe.
  virtual Result<StoreStats> ReadStats() = 0;

  // The schema version the database is at.
  virtual int schema_version() const = 0;

  // True when other processes (sidecars on other hosts) use the same database, so that a
  // delivery in "sending" may be another live sidecar's and is taken over only when its
  // lease runs out (see DeliveryWorker).
  virtual bool shared() const { return false; }

  // Leaves the database tidy before the process exits (SQLite: checkpoints the write-ahead
  // log). Errors when that could not be done completely; nothing is lost either way.
  virtual Status PrepareForExit() { return OkStatus(); }
};

}  // namespace sidecar
