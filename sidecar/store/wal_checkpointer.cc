#include "store/wal_checkpointer.h"

#include <sqlite3.h>

#include <memory>

namespace sidecar {
namespace {

// The checkpointer never waits long for another process (an operator's sqlite3 holding the
// checkpoint lock): the next nudge tries again.
constexpr int kBusyTimeoutMs = 100;

}  // namespace

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(const std::string& path) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return MakeError("storage_unavailable", "opening the checkpoint connection: " + why);
  }
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  std::unique_ptr<WalCheckpointer> checkpointer(new WalCheckpointer(db));
  checkpointer->thread_ = std::thread([raw = checkpointer.get()] { raw->Run(); });
  return checkpointer;
}

WalCheckpointer::WalCheckpointer(sqlite3* db) : db_(db) {}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wanted_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close(db_);
}

void WalCheckpointer::Attach(sqlite3* writer) {
  sqlite3_wal_hook(writer, &WalCheckpointer::OnCommit, this);
}

int WalCheckpointer::OnCommit(void* self, sqlite3* writer, const char* database, int pages) {
  if (pages < kThresholdPages) return SQLITE_OK;
  if (static_cast<WalCheckpointer*>(self)->AfterCommit(pages)) {
    // Errors are left for the next commit past the threshold, as SQLite's own hook does.
    sqlite3_wal_checkpoint_v2(writer, database, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

bool WalCheckpointer::AfterCommit(int pages) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (copied_ || pages >= kCatchUpPages) {
    copied_ = false;
    return true;
  }
  if (!running_ && !due_) {
    due_ = true;
    lock.unlock();
    wanted_.notify_one();
  }
  return false;
}

void WalCheckpointer::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wanted_.wait(lock, [this] { return due_ || stopping_; });
    if (stopping_) return;
    due_ = false;
    running_ = true;

    lock.unlock();
    // A checkpoint held back by a reader, or busy, is simply tried again at the next nudge;
    // the log grows meanwhile, and the size metric shows it.
    int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
    running_ = false;
    copied_ = rc == SQLITE_OK;
  }
}

}  // namespace sidecar
