#include "app/housekeeper.h"

#include <chrono>

#include "common/log.h"

namespace sidecar {
namespace {

constexpr int kExpireBatch = 500;
constexpr int kPruneEverySweeps = 60;
constexpr auto kSweepInterval = std::chrono::seconds(1);
// The pause between two full batches: long enough for waiting requests to take the store.
constexpr auto kBatchPause = std::chrono::milliseconds(20);

}  // namespace

Housekeeper::Housekeeper(ChallengeService& challenges, Retention& retention)
    : challenges_(challenges), retention_(retention) {
  thread_ = std::thread([this] { Run(); });
}

Housekeeper::~Housekeeper() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Housekeeper::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    lock.unlock();
    bool more = Sweep();
    lock.lock();
    cv_.wait_for(lock, more ? kBatchPause : kSweepInterval, [this] { return stop_; });
  }
}

bool Housekeeper::Sweep() {
  Result<int> expired = challenges_.ExpireDue(kExpireBatch);
  if (!expired.ok()) {
    Log(LogLevel::kError, "challenges", "expiry sweep failed",
        {{"error", expired.error().message}});
  }

  if (++sweeps_ % kPruneEverySweeps == 1) {
    Status pruned = challenges_.PruneLimits();
    if (!pruned.ok()) {
      Log(LogLevel::kError, "limits", "pruning failed", {{"error", pruned.error().message}});
    }
  }

  Result<RetentionBatch> deleted = retention_.DeleteBatch();
  if (!deleted.ok()) {
    Log(LogLevel::kError, "retention", "deleting old rows failed",
        {{"error", deleted.error().message}});
  } else if (deleted->challenges + deleted->audit_events > 0) {
    Log(LogLevel::kDebug, "retention", "deleted old rows",
        {{"challenges", std::to_string(deleted->challenges)},
         {"audit_events", std::to_string(deleted->audit_events)}});
  }

  bool more_expired = expired.ok() && *expired == kExpireBatch;
  return more_expired || (deleted.ok() && deleted->full);
}

}  // namespace sidecar
