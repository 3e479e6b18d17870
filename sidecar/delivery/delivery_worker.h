#pragma once

// The delivery worker is the only part that calls SMS providers. It takes due deliveries
// from the outbox in the store, opens the sealed code, renders the message, sends it and
// records the outcome with an audit row. Requests never wait on it: they queue a delivery
// and call Wake().
//
// Outcomes: sent -> "sent"; retry -> back to "queued" with a backoff (or the provider's
// Retry-After) until max_attempts, then the next provider in the list, if any; permanent
// failure -> the next provider, else "failed"; unknown -> "unknown", never sent again.
// A delivery found in "sending" at start-up was interrupted by a crash and is sent again.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "codes/codes.h"
#include "codes/random.h"
#include "common/clock.h"
#include "delivery/message.h"
#include "providers/provider.h"
#include "store/store.h"

namespace sidecar {

struct DeliverySettings {
  MessageSettings message;
  int max_attempts = 5;  // per provider
  std::int64_t base_backoff_ms = 1000;
  std::int64_t max_backoff_ms = 60'000;
};

class DeliveryWorker {
 public:
  // `providers` in failover order; REQUIRES: not empty.
  DeliveryWorker(Store& store, const CodeKeys& keys, const Clock& clock, RandomSource& random,
                 std::vector<std::unique_ptr<SmsProvider>> providers, DeliverySettings settings);
  ~DeliveryWorker();

  // Requeues deliveries interrupted by a crash, then starts the worker thread.
  Status Start();

  // Finishes the delivery in progress, then stops. Idempotent.
  void Stop();

  // Thread-safe; cheap enough to call after every commit that queued a delivery.
  void Wake();

  // Sends every delivery due now, then returns how many it handled. Used by the thread and
  // by tests that drive the worker step by step.
  int DrainDue();

  // Milliseconds since the epoch at which the loop last ran; for liveness checks.
  TimeMs last_heartbeat() const { return heartbeat_.load(); }

 private:
  void Run();
  bool DeliverOne();
  // `provider_at_fault` is false when the message could not even be made (the sealed code
  // does not open): then no other provider can do better and there is no failover.
  Status Record(const DeliveryJob& job, const SendOutcome& outcome, TimeMs started,
                bool provider_at_fault);
  SmsProvider* ProviderNamed(const std::string& name) const;
  SmsProvider* ProviderAfter(const std::string& name) const;
  std::int64_t Backoff(int attempts_on_provider);

  Store& store_;
  const CodeKeys& keys_;
  const Clock& clock_;
  RandomSource& random_;
  std::vector<std::unique_ptr<SmsProvider>> providers_;
  const DeliverySettings settings_;

  std::mutex mutex_;  // guards wake_ and stop_
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stop_ = false;
  std::atomic<TimeMs> heartbeat_{0};
  std::thread thread_;
};

}  // namespace sidecar
