#pragma once

// The PostgreSQL store: one database shared by the sidecars of many login-server hosts. The
// rules above it are the same as on SQLite; what SQLite got from running one transaction at a
// time, this store gets from locks that every sidecar takes in the same database:
//
// - a challenge read in a transaction is locked (SELECT ... FOR UPDATE) until it commits, so
//   verifies of one challenge through any number of sidecars run one after the other and
//   compare no more codes than allowed;
// - before a transaction reads a user's challenges, a limit key's events, a user's failure
//   streak or a region's counts, it takes a transaction-scoped advisory lock on that user,
//   key or region, so that N sidecars counting one limit never overshoot it (a user's lock
//   comes before the user's rows, so that transactions about one user queue on it);
// - the outbox is claimed with FOR UPDATE SKIP LOCKED, so every sidecar's delivery worker
//   takes different work, and a claim is a lease (see FindSendingDeliveries);
// - transactions run at READ COMMITTED: after taking a lock, each statement sees everything
//   committed before it, including by the lock's previous holder.
//
// A transaction that PostgreSQL rolls back for a deadlock or a serialization failure, or
// whose connection broke before it committed, is run again (its body must therefore only
// change captured state it resets itself), at most a few times within the wait budget;
// then it errors with "storage_unavailable". A commit whose answer is lost is not retried,
// since it may have been applied. Nothing waits longer than the budget for a down or hung
// server: each call on the connection has a deadline, and the API answers 503.
//
// Connections come from a pool of at most `pool_size`, opened on demand; a broken one is
// dropped and a new one opened by the next transaction, so the store recovers by itself when
// the database comes back. Thread-safe.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/pg_connection.h"
#include "store/store.h"

namespace sidecar {

class PostgresStore final : public Store {
 public:
  // Connects and applies pending migrations (migrations/postgresql/) under an advisory lock,
  // so sidecars starting together never apply one twice. Errors with "storage_unavailable"
  // when the server cannot be reached or the schema cannot be applied, and with
  // "schema_too_new" when the database was migrated by a newer otp-sidecar.
  static Result<std::unique_ptr<PostgresStore>> Open(const PgSettings& settings, int pool_size);

  ~PostgresStore() override;

  Status Transact(const std::function<Status(StoreTx&)>& body) override;
  Status ProbeWritable(std::int64_t timeout_ms) override;
  // The outbox depth, pg_database_size() of the database, and the transactions and commits
  // so far (one commit per transaction: PostgreSQL groups concurrent commits' log flushes
  // itself).
  Result<StoreStats> ReadStats() override;
  int schema_version() const override { return schema_version_; }
  bool shared() const override { return true; }

 private:
  class Tx;

  PostgresStore(PgSettings settings, int pool_size, int schema_version);

  // Borrows a connection, opening one when the pool has room and none is idle; errors with
  // "storage_unavailable" when none can be had by `deadline`.
  Result<std::unique_ptr<PgConnection>> Acquire(SteadyTime deadline);
  // Returns a connection to the pool; drops it, and every idle one with it, when it is no
  // longer usable.
  void Give(std::unique_ptr<PgConnection> connection);
  // One attempt of a transaction on `connection`.
  Status RunOnce(PgConnection& connection, const std::function<Status(StoreTx&)>& body,
                 SteadyTime deadline, bool& retry);

  const PgSettings settings_;
  const int pool_size_;
  const int schema_version_;
  std::mutex mutex_;  // guards idle_ and open_
  std::condition_variable returned_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  int open_ = 0;  // connections lent out or idle, plus those being opened
  std::atomic<std::int64_t> transactions_{0};
  std::atomic<std::int64_t> commits_{0};
};

}  // namespace sidecar
