#pragma once

// The delivery worker is the only part that calls SMS providers. It takes due deliveries
// from the outbox in the store, opens the sealed code, renders the message, sends it and
// records the outcome with an audit row. Requests never wait on it: they queue a delivery
// and call Wake().
//
// Outcomes: sent -> "sent"; retry -> back to "queued" with a backoff (or the provider's
// Retry-After) until max_attempts on that provider, then the next provider in the list, if
// any, else "failed"; a permanent failure of the provider itself (bad credentials) -> the
// next provider; a permanent failure of the message (a bad number) -> "failed"; unknown
// (the provider may have sent it) -> "unknown", never sent again unless resend_on_unknown.
// Retries stop when the challenge ends or expires. A delivery found in "sending" at
// start-up was interrupted by a crash: it is sent again when its provider says repeats are
// harmless (console, file) or resend_on_unknown is set, else it is "unknown"; it is
// "unknown" too when its challenge has ended since.
//
// On a store shared by several sidecars (Store::shared) a claim is a lease of
// settings.lease_ms: a delivery in "sending" may be another live sidecar's, so it counts as
// interrupted only once its lease has run out, and every sidecar looks for such deliveries
// at start-up and then every quarter lease. The lease is longer than any send may take
// (see config), so a live sidecar's send is never taken over.
//
// Stopping: no delivery is claimed once a stop begins, and a send already started is given
// a bounded grace to finish and be recorded. A send still running after it is abandoned:
// its row stays "sending", which the next start treats as an interrupted send (above);
// queued deliveries simply wait in the outbox for the next start.
//
// A small pool of threads sends; each provider has at most max_in_flight sends at once,
// so a provider that stalls ties up only its own share and others keep delivering.
//
// Each send is counted in `metrics` by provider and result, and each provider call timed.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "codes/codes.h"
#include "codes/random.h"
#include "common/clock.h"
#include "delivery/message.h"
#include "metrics/metrics.h"
#include "providers/provider.h"
#include "store/store.h"

namespace sidecar {

struct DeliverySettings {
  MessageSettings message;
  int max_attempts = 5;  // per provider
  std::int64_t base_backoff_ms = 1000;
  std::int64_t max_backoff_ms = 60'000;
  int workers = 1;
  int max_in_flight = 2;  // per provider
  bool resend_on_unknown = false;
  std::int64_t lease_ms = 60'000;  // see "shared store" above
  // A thread that has not shown life for this long is stuck. It must exceed the longest a
  // provider call may take (connect plus request timeouts) plus one idle wait (1 s).
  std::int64_t stall_after_ms = 60'000;
};

class DeliveryWorker {
 public:
  // `providers` in failover order; REQUIRES: not empty.
  DeliveryWorker(Store& store, const CodeKeys& keys, const Clock& clock, RandomSource& random,
                 std::vector<std::unique_ptr<SmsProvider>> providers, DeliverySettings settings,
                 Metrics& metrics = NoMetrics());
  ~DeliveryWorker();

  // Recovers deliveries interrupted by a crash, then starts the worker threads.
  Status Start();

  // Finishes the delivery in progress, then stops. Idempotent.
  void Stop();

  // Claims no more deliveries from now on; sends in progress go on. Returns at once.
  // Thread-safe.
  void BeginStop();

  // Stops, waiting at most `grace_ms` for the sends in progress. Returns true when every
  // thread finished. Returns false when a send outlived the grace: then nothing more is
  // written to the store, and the caller must end the process without destroying this
  // worker (its threads still run, detached).
  bool StopWithin(std::int64_t grace_ms);

  // Replaces the message templates for every send that starts from now on. Thread-safe.
  // REQUIRES: every template of `message` passed ValidateTemplate.
  void SetMessageSettings(MessageSettings message);

  // Thread-safe; cheap enough to call after every commit that queued a delivery.
  void Wake();

  // Sends every delivery due now on the calling thread, then returns how many it handled.
  // Used by the threads and by tests that drive the worker step by step.
  int DrainDue();

  // Milliseconds since the epoch at which a loop last ran, on any thread.
  TimeMs last_heartbeat() const { return heartbeat_.load(); }

  // True when the threads run and every one of them has shown life (a pass over the outbox
  // or the start of a send) within settings.stall_after_ms; false before Start(), after
  // Stop() and when a thread is stuck (in a provider call that ignores its timeouts, or on
  // a lock). Cheap (a few atomic loads); thread-safe.
  bool alive() const;

  // Sends in progress right now, over all providers.
  int in_flight() const;

  // Worker threads whose loop has not ended yet (including abandoned ones).
  int running_threads() const;

 private:
  void Run(std::size_t index);
  void Beat(std::atomic<TimeMs>& heartbeat);
  int Drain(std::atomic<TimeMs>& heartbeat);
  bool DeliverOne();
  // Renders the message and has the job's provider send it, timing the call.
  SendOutcome Send(const DeliveryJob& job, const std::string& code);
  // Handles the deliveries in "sending" claimed at or before `claimed_at_or_before`.
  Status RecoverInterrupted(TimeMs claimed_at_or_before);
  // Why a delivery taken over is "unknown": a restart alone, or a claim that ran out.
  const char* InterruptedError() const;
  // On a shared store: takes over the deliveries whose lease ran out, once per quarter lease
  // over all threads.
  void TakeOverExpiredLeases();
  std::optional<DeliveryJob> Claim(TimeMs now);
  void Release(const std::string& provider);
  // `provider_at_fault` is false when the message could not even be made (the sealed code
  // does not open): then no other provider can do better and there is no failover.
  Status Record(const DeliveryJob& job, const SendOutcome& outcome, TimeMs started,
                bool provider_at_fault);
  SmsProvider* ProviderNamed(const std::string& name) const;
  SmsProvider* ProviderAfter(const std::string& name) const;
  std::int64_t Backoff(int attempts_on_provider);

  std::shared_ptr<const MessageSettings> message_settings() const;

  Store& store_;
  const CodeKeys& keys_;
  const Clock& clock_;
  RandomSource& random_;
  std::vector<std::unique_ptr<SmsProvider>> providers_;
  const DeliverySettings settings_;
  Metrics& metrics_;

  mutable std::mutex mutex_;  // guards wake_, stop_, running_, in_flight_ and message_
  std::condition_variable wake_cv_;
  std::condition_variable stopped_cv_;  // signalled when a thread's loop ends
  bool wake_ = false;
  bool stop_ = false;
  int running_ = 0;  // threads whose loop has not ended
  std::shared_ptr<const MessageSettings> message_;
  // Held while an outcome is written, so that once abandoned_ is set no thread writes.
  std::mutex record_mutex_;
  bool abandoned_ = false;                // guarded by record_mutex_
  std::map<std::string, int> in_flight_;  // provider name -> sends in progress
  // Held from choosing which providers to skip until the claimed send is counted, so two
  // threads never both take a provider's last free slot.
  std::mutex claim_mutex_;
  std::atomic<TimeMs> heartbeat_{0};
  std::atomic<TimeMs> next_takeover_{0};  // when TakeOverExpiredLeases looks again
  // One heartbeat per thread, made by Start() before the threads and kept until the
  // destructor, so alive() may read them at any time.
  std::unique_ptr<std::atomic<TimeMs>[]> thread_heartbeats_;
  std::atomic<std::size_t> thread_count_{0};  // 0 when not running
  std::vector<std::thread> threads_;
};

}  // namespace sidecar
