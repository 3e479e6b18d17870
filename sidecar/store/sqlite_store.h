#pragma once

// The SQLite store: one database file in WAL mode with synchronous=FULL (an acknowledged
// challenge survives power loss), foreign keys on and a busy timeout so that a second
// process (such as `otp-sidecar migrate` or an operator's sqlite3) waits instead of failing.

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/store.h"

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

  // The outbox depth from the queued deliveries' index, and the size as page_count *
  // page_size plus the size of the -wal file.
  Result<StoreStats> ReadStats() override;

  // The schema version recorded in PRAGMA user_version.
  int schema_version() const { return schema_version_; }

  // Checkpoints the WAL into the main file (used at clean shutdown), waiting at most a
  // second for readers and writers of other processes. Errors with "storage_unavailable"
  // when it could not copy and truncate the whole log.
  Status Checkpoint();

 private:
  class Tx;
  SqliteStore(sqlite3* db, int schema_version, std::string path);

  // Takes `lock` (on mutex_) and the database's write lock, both within `wait_ms` in all;
  // errors with "storage_unavailable" when either cannot be had in time.
  Status BeginWithin(std::unique_lock<std::timed_mutex>& lock, std::int64_t wait_ms,
                     const char* context);
  // Commits when `result` is ok, else rolls back; returns `result` or the commit's error.
  Status Finish(Status result);

  // Guards db_ and statements_. Timed, so that a readiness probe gives up rather than queue
  // behind transactions that wait on another process's lock.
  std::timed_mutex mutex_;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // prepared once, reused
  int schema_version_;
  const std::string path_;  // the database file, for the size of its -wal file
  // The file opened, so that one moved or deleted under the running process is noticed.
  dev_t opened_device_ = 0;
  ino_t opened_inode_ = 0;
};

}  // namespace sidecar
