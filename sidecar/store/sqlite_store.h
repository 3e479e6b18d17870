#pragma once

// The SQLite store: one database file in WAL mode with synchronous=FULL (an acknowledged
// challenge survives power loss), foreign keys on and a busy timeout so that a second
// process (such as `otp-sidecar migrate` or an operator's sqlite3) waits instead of failing.
//
// Group commit: a durable commit costs a sync of the log, so one commit per transaction caps
// the store at a few thousand transactions a second. Transactions that arrive while another
// runs join its database transaction instead, each in a savepoint of its own, and the last to
// finish commits for all of them. Every Transact still returns only after its own changes are
// committed (or with the error that undid them), so callers see no difference but speed.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/store.h"
#include "store/wal_checkpointer.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sidecar {

class SqliteStore final : public Store {
 public:
  // Opens (creating if missing) the database at `path`, caps it at `max_size_bytes`
  // rounded down to whole pages (0: no cap; see PRAGMA max_page_count) and applies pending
  // migrations. Errors with "storage_unavailable" (or "storage_full") when the file cannot
  // be opened or migrated, with "invalid_config" when the file already takes more than
  // `max_size_bytes`, and with "schema_too_new" when the file was migrated by a newer
  // otp-sidecar.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   std::int64_t max_size_bytes = 0);

  ~SqliteStore() override;

  Status Transact(const std::function<Status(StoreTx&)>& body) override;
  // Also errors with "storage_full" when fewer than 64 pages can still be had below the
  // size cap (free pages included).
  Status ProbeWritable(std::int64_t timeout_ms) override;

  // The outbox depth from the queued deliveries' index, the size as page_count *
  // page_size plus the size of the -wal file, and the transactions and commits so far.
  Result<StoreStats> ReadStats() override;

  // The schema version recorded in PRAGMA user_version.
  int schema_version() const override { return schema_version_; }
  // Checkpoints (see Checkpoint).
  Status PrepareForExit() override { return Checkpoint(); }

  // Checkpoints the WAL into the main file (used at clean shutdown), waiting at most a
  // second for readers and writers of other processes. Errors with "storage_unavailable"
  // when it could not copy and truncate the whole log.
  Status Checkpoint();

 private:
  class Tx;
  // One database transaction shared by the bodies that joined it.
  struct Batch {
    int members = 0;  // bodies that ran in it, failed ones included; guarded by mutex_
    bool done = false;
    Status result = OkStatus();  // the commit's outcome, once done
  };

  SqliteStore(sqlite3* db, int schema_version, std::string path,
              std::unique_ptr<WalCheckpointer> checkpointer);

  // Runs `body` in the open batch, or in a new one, and returns once the batch is committed
  // or rolled back. `wait_ms` bounds the wait for mutex_ and for the write lock together.
  Status RunBatched(const std::function<Status(StoreTx&)>& body, std::int64_t wait_ms,
                    const char* context);
  // Takes `lock` (on mutex_) within `wait_ms`, then joins the open batch or begins a new
  // one, taking the database's write lock within what is left of `wait_ms`; errors with
  // "storage_unavailable" when either cannot be had in time.
  Result<std::shared_ptr<Batch>> JoinBatch(std::unique_lock<std::timed_mutex>& lock,
                                           std::int64_t wait_ms, const char* context);
  // Runs `body` in a savepoint: released when it returns ok, rolled back when it errors or
  // throws (the exception is kept in `thrown`). Sets `broken` when the enclosing
  // transaction can no longer be committed.
  Status RunInSavepoint(const std::function<Status(StoreTx&)>& body, std::exception_ptr& thrown,
                        bool& broken);
  // Releases `lock` and waits until the batch is done; commits it itself when nobody else
  // has for a few milliseconds. Returns with `lock` released.
  void AwaitCommit(std::unique_lock<std::timed_mutex>& lock, Batch& batch);
  // Commits the open batch when `outcome` is ok, else rolls it back, and wakes its members.
  // REQUIRES: mutex_ held.
  void EndBatch(Batch& batch, Status outcome);
  // Commits when `result` is ok, else rolls back; returns `result` or the commit's error.
  Status Finish(Status result);

  // Guards db_, statements_ and open_batch_. Timed, so that a readiness probe gives up
  // rather than queue behind transactions that wait on another process's lock.
  std::timed_mutex mutex_;
  std::shared_ptr<Batch> open_batch_;  // set while a database transaction is open
  // Guards the done and result fields of every Batch; members wait on batch_ended_.
  std::mutex batch_ended_mutex_;
  std::condition_variable batch_ended_;
  // Bodies waiting for mutex_: while there are any, the batch stays open for them.
  std::atomic<int> arriving_{0};
  std::atomic<std::int64_t> transactions_{0};
  std::atomic<std::int64_t> commits_{0};
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // prepared once, reused
  int schema_version_;
  const std::string path_;  // the database file, for the size of its -wal file
  // The file opened, so that one moved or deleted under the running process is noticed.
  dev_t opened_device_ = 0;
  ino_t opened_inode_ = 0;
  // Destroyed after db_ is closed (the destructor closes it), as WalCheckpointer requires.
  std::unique_ptr<WalCheckpointer> checkpointer_;
};

}  // namespace sidecar
