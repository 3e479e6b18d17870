#pragma once

// Background housekeeping on one thread of its own: ends expired challenges once a second
// (so their sealed codes are erased even when nobody asks about them again), deletes what
// the retention periods no longer keep, and prunes limit state once a minute.
//
// All of it happens in small batches, one short transaction each, with a pause between
// batches, so requests are never held up for long behind it.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "challenges/challenge_service.h"
#include "retention/retention.h"

namespace sidecar {

class Housekeeper {
 public:
  // Starts the thread. `challenges` and `retention` must outlive this object.
  Housekeeper(ChallengeService& challenges, Retention& retention);

  // Finishes the batch in progress, then stops the thread.
  ~Housekeeper();

  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;

 private:
  void Run();
  // One round of every task; returns true when a task filled its batch (more waiting).
  bool Sweep();

  ChallengeService& challenges_;
  Retention& retention_;
  int sweeps_ = 0;    // used by the housekeeping thread only
  std::mutex mutex_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sidecar
