#pragma once

// Copies the SQLite write-ahead log back into the database file in the background.
//
// SQLite's own automatic checkpoint runs inside the commit that crosses its threshold, on the
// writer's thread, while every other request waits for that writer: a request now and then
// paid for copying a thousand pages and syncing the database file. Here the writer's commit
// nudges a thread of this class instead, which copies the log on a connection of its own
// with a PASSIVE checkpoint (no write lock: writers go on meanwhile).
//
// The log can only restart from its beginning once a checkpoint has copied all of it, which
// a background checkpoint never does while writes go on. So the next commit past the
// threshold after a background checkpoint finishes the job itself, on the writer's
// connection: only the pages written meanwhile are left to copy. Should the background fall
// far behind (a reader holding it back), the writer checkpoints as SQLite would.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"

struct sqlite3;

namespace sidecar {

class WalCheckpointer {
 public:
  // Checkpoints are started once the log holds this many pages (SQLite's own default).
  static constexpr int kThresholdPages = 1000;
  // Past this many pages in the log the writer checkpoints whatever the background does.
  static constexpr int kCatchUpPages = 8 * kThresholdPages;

  // Opens a second connection to the database at `path` and starts the thread. Errors with
  // "storage_unavailable" when the connection cannot be opened.
  static Result<std::unique_ptr<WalCheckpointer>> Start(const std::string& path);

  // Stops the thread (waiting for a checkpoint in progress) and closes the connection.
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Installs itself as `writer`'s WAL hook, replacing SQLite's automatic checkpoint: after
  // each commit that leaves the log at kThresholdPages or more, a checkpoint is started.
  // `writer` must be closed before this object is destroyed.
  void Attach(sqlite3* writer);

 private:
  explicit WalCheckpointer(sqlite3* db);
  static int OnCommit(void* self, sqlite3* writer, const char* database, int pages);
  // What the commit that left `pages` in the log does: nothing, nudge the thread, or
  // checkpoint on the writer's connection (returns true).
  bool AfterCommit(int pages);
  void Run();

  sqlite3* db_;  // used by the thread only
  std::mutex mutex_;
  std::condition_variable wanted_;
  bool due_ = false;      // the thread is asked for a checkpoint
  bool running_ = false;  // the thread is checkpointing
  bool copied_ = false;   // the thread finished a checkpoint the writer has not completed
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sidecar
