#include "delivery/delivery_worker.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "common/log.h"
#include "common/phone.h"

namespace sidecar {
namespace {

// The loop also wakes on its own this often, so deliveries queued by another process
// sharing the database (or whose due time was not signalled) are never stranded.
constexpr std::int64_t kIdlePollMs = 1000;

const char* KindName(SendOutcome::Kind kind) {
  switch (kind) {
    case SendOutcome::Kind::kSent:
      return "sent";
    case SendOutcome::Kind::kRetry:
      return "retry";
    case SendOutcome::Kind::kPermanentFailure:
      return "failed";
    case SendOutcome::Kind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace

DeliveryWorker::DeliveryWorker(Store& store, const CodeKeys& keys, const Clock& clock,
                               RandomSource& random,
                               std::vector<std::unique_ptr<SmsProvider>> providers,
                               DeliverySettings settings, Metrics& metrics)
    : store_(store),
      keys_(keys),
      clock_(clock),
      random_(random),
      providers_(std::move(providers)),
      settings_(std::move(settings)),
      metrics_(metrics),
      message_(std::make_shared<const MessageSettings>(settings_.message)) {}

DeliveryWorker::~DeliveryWorker() {
  Stop();
}

const char* DeliveryWorker::InterruptedError() const {
  return store_.shared() ? "interrupted: the claim ran out while the provider may have had it"
                         : "interrupted by a restart while the provider had it";
}

Status DeliveryWorker::RecoverInterrupted(TimeMs claimed_at_or_before) {
  TimeMs now = clock_.Now();
  int requeued = 0;
  int unknown = 0;

  Status recovered = store_.Transact([&](StoreTx& tx) -> Status {
    requeued = 0;
    unknown = 0;
    Result<std::vector<Delivery>> sending = tx.FindSendingDeliveries(claimed_at_or_before);
    if (!sending.ok()) return sending.error();
    for (Delivery& d : *sending) {
      // A challenge that ended meanwhile (its code approved, say, from the very message
      // being sent) is never delivered again: queued, the delivery would wait forever.
      Result<std::optional<Challenge>> challenge = tx.FindChallenge(d.challenge_id);
      if (!challenge.ok()) return challenge.error();
      bool ended = !*challenge || (*challenge)->status != ChallengeStatus::kPending;
      SmsProvider* provider = ProviderNamed(d.provider);
      bool repeat = !ended && (settings_.resend_on_unknown || provider == nullptr ||
                               provider->repeats_are_harmless());
      d.state = repeat ? DeliveryState::kQueued : DeliveryState::kUnknown;
      d.error = repeat ? "" : InterruptedError();
      d.next_attempt_at = now;
      d.updated_at = now;
      ++(repeat ? requeued : unknown);
      Status updated = tx.UpdateDelivery(d);
      if (!updated.ok()) return updated;
    }
    return OkStatus();
  });
  if (!recovered.ok()) return recovered;

  if (requeued + unknown > 0) {
    Log(LogLevel::kWarn, "delivery",
        store_.shared() ? "deliveries whose claim ran out taken over"
                        : "deliveries interrupted by a restart",
        {{"requeued", std::to_string(requeued)}, {"unknown", std::to_string(unknown)}});
  }
  return OkStatus();
}

void DeliveryWorker::TakeOverExpiredLeases() {
  TimeMs now = clock_.Now();
  TimeMs due = next_takeover_.load();
  if (!store_.shared() || now < due) return;
  // One thread looks; the others see the new time and go on.
  if (!next_takeover_.compare_exchange_strong(
          due, now + std::max<std::int64_t>(settings_.lease_ms / 4, 250))) {
    return;
  }
  Status taken = RecoverInterrupted(now - settings_.lease_ms);
  if (!taken.ok()) {
    Log(LogLevel::kError, "delivery", "cannot take over expired claims",
        {{"error", taken.error().message}});
  }
}

Status DeliveryWorker::Start() {
  // Alone on its database, this process's earlier run was the only claimant: every
  // delivery still in "sending" was interrupted. Shared, only those whose lease ran out.
  TimeMs now = clock_.Now();
  Status recovered = RecoverInterrupted(store_.shared() ? now - settings_.lease_ms
                                                        : std::numeric_limits<TimeMs>::max());
  if (!recovered.ok()) return recovered;
  next_takeover_.store(now + std::max<std::int64_t>(settings_.lease_ms / 4, 250));

  if (!threads_.empty() || thread_heartbeats_ != nullptr) return OkStatus();
  auto count = static_cast<std::size_t>(std::max(1, settings_.workers));
  thread_heartbeats_ = std::make_unique<std::atomic<TimeMs>[]>(count);
  for (std::size_t i = 0; i < count; ++i) {
    Beat(thread_heartbeats_[i]);
  }
  thread_count_.store(count);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = static_cast<int>(count);
  }
  for (std::size_t i = 0; i < count; ++i) {
    threads_.emplace_back([this, i] {
      Run(i);
      std::lock_guard<std::mutex> lock(mutex_);
      running_ -= 1;
      stopped_cv_.notify_all();
    });
  }
  return OkStatus();
}

bool DeliveryWorker::alive() const {
  std::size_t count = thread_count_.load();
  if (count == 0) return false;
  TimeMs now = clock_.Now();
  for (std::size_t i = 0; i < count; ++i) {
    if (now - thread_heartbeats_[i].load() > settings_.stall_after_ms) return false;
  }
  return true;
}

void DeliveryWorker::Beat(std::atomic<TimeMs>& heartbeat) {
  TimeMs now = clock_.Now();
  heartbeat.store(now);
  heartbeat_.store(now);
}

void DeliveryWorker::BeginStop() {
  thread_count_.store(0);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_cv_.notify_all();
}

void DeliveryWorker::Stop() {
  BeginStop();
  for (std::thread& thread : threads_)
    thread.join();
  threads_.clear();
}

bool DeliveryWorker::StopWithin(std::int64_t grace_ms) {
  BeginStop();
  bool finished = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    finished =
        stopped_cv_.wait_for(lock, std::chrono::milliseconds(std::max<std::int64_t>(grace_ms, 0)),
                             [this] { return running_ == 0; });
  }
  if (finished) {
    Stop();
    return true;
  }

  // A provider is still busy with a send. Its outcome will never be written: the row stays
  // "sending" and the next start decides, as after a crash, whether to send it again.
  {
    std::lock_guard<std::mutex> lock(record_mutex_);
    abandoned_ = true;
  }
  for (std::thread& thread : threads_)
    thread.detach();
  threads_.clear();
  return false;
}

void DeliveryWorker::SetMessageSettings(MessageSettings message) {
  auto replaced = std::make_shared<const MessageSettings>(std::move(message));
  std::lock_guard<std::mutex> lock(mutex_);
  message_ = std::move(replaced);
}

std::shared_ptr<const MessageSettings> DeliveryWorker::message_settings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return message_;
}

void DeliveryWorker::Wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_ = true;
  }
  // One queued delivery needs one thread: a thread that wakes drains everything due, so
  // waking all of them per create would only have the others look at an empty outbox (each
  // look a transaction, which on a shared PostgreSQL store costs round trips to the server).
  wake_cv_.notify_one();
}

int DeliveryWorker::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int total = 0;
  for (const auto& [name, count] : in_flight_)
    total += count;
  return total;
}

int DeliveryWorker::running_threads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_;
}

void DeliveryWorker::Run(std::size_t index) {
  std::atomic<TimeMs>& heartbeat = thread_heartbeats_[index];
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      wake_ = false;
    }
    Beat(heartbeat);
    TakeOverExpiredLeases();
    int handled = Drain(heartbeat);
    {
      // A stop that came during the sends needs no look at the outbox; an abandoned
      // thread must not touch the store at all (see StopWithin).
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
    }

    std::int64_t wait_ms = kIdlePollMs;
    Status next = store_.Transact([&](StoreTx& tx) -> Status {
      Result<std::optional<TimeMs>> due = tx.NextDeliveryDue();
      if (!due.ok()) return due.error();
      if (due->has_value()) wait_ms = std::clamp<std::int64_t>(**due - clock_.Now(), 0, wait_ms);
      return OkStatus();
    });
    if (!next.ok()) {
      Log(LogLevel::kError, "delivery", "cannot read the outbox",
          {{"error", next.error().message}});
    }
    // Due work this thread could not take belongs to a provider at its in-flight limit (or
    // another thread took it): wait for a send to finish rather than spin.
    if (wait_ms == 0 && handled == 0) wait_ms = kIdlePollMs;

    std::unique_lock<std::mutex> lock(mutex_);
    wake_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return wake_ || stop_; });
  }
}

int DeliveryWorker::DrainDue() {
  return Drain(heartbeat_);
}

int DeliveryWorker::Drain(std::atomic<TimeMs>& heartbeat) {
  int handled = 0;
  // Each send may take a provider's whole timeout: the heartbeat says this thread got to
  // the next one.
  while (true) {
    Beat(heartbeat);
    if (!DeliverOne()) break;
    ++handled;

    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) break;
  }
  return handled;
}

SmsProvider* DeliveryWorker::ProviderNamed(const std::string& name) const {
  for (const auto& provider : providers_) {
    if (provider->name() == name) return provider.get();
  }
  return nullptr;
}

SmsProvider* DeliveryWorker::ProviderAfter(const std::string& name) const {
  for (std::size_t i = 0; i + 1 < providers_.size(); ++i) {
    if (providers_[i]->name() == name) return providers_[i + 1].get();
  }
  return nullptr;
}

std::int64_t DeliveryWorker::Backoff(int attempts_on_provider) {
  // Exponential with full jitter in the upper half, so that many deliveries failing at once
  // do not all come back at the same moment.
  int exponent = std::min(attempts_on_provider - 1, 20);
  std::int64_t ceiling = std::min(settings_.max_backoff_ms, settings_.base_backoff_ms << exponent);
  std::int64_t half = std::max<std::int64_t>(ceiling / 2, 1);
  return half + random_.Uniform(static_cast<std::uint32_t>(std::min<std::int64_t>(half, 1 << 30)));
}

std::optional<DeliveryJob> DeliveryWorker::Claim(TimeMs now) {
  std::lock_guard<std::mutex> claim_lock(claim_mutex_);
  std::vector<std::string> skip;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) return std::nullopt;  // nothing is claimed once a stop has begun
    for (const auto& [name, count] : in_flight_) {
      if (count >= settings_.max_in_flight) skip.push_back(name);
    }
  }

  // The row moves to "sending" before the provider is called, so a crash mid-send is
  // visible at the next start.
  std::optional<DeliveryJob> job;
  Status claimed = store_.Transact([&](StoreTx& tx) -> Status {
    Result<std::optional<DeliveryJob>> due = tx.FindDueDelivery(now, skip);
    if (!due.ok()) return due.error();
    job = *due;
    if (!job) return OkStatus();

    if (ProviderNamed(job->delivery.provider) == nullptr) {
      job->delivery.provider = providers_.front()->name();
      job->delivery.provider_attempts = 0;
    }
    job->delivery.state = DeliveryState::kSending;
    job->delivery.attempts += 1;
    job->delivery.provider_attempts += 1;
    job->delivery.updated_at = now;
    return tx.UpdateDelivery(job->delivery);
  });
  if (!claimed.ok()) {
    Log(LogLevel::kError, "delivery", "cannot claim a delivery",
        {{"error", claimed.error().message}});
    return std::nullopt;
  }
  if (job) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_flight_[job->delivery.provider] += 1;
  }
  return job;
}

void DeliveryWorker::Release(const std::string& provider) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_flight_[provider] -= 1;
    wake_ = true;
  }
  wake_cv_.notify_all();
}

bool DeliveryWorker::DeliverOne() {
  TimeMs now = clock_.Now();
  std::optional<DeliveryJob> job = Claim(now);
  if (!job) return false;

  SendOutcome outcome;
  bool provider_at_fault = true;
  Result<std::string> code =
      job->challenge.sealed_code
          ? UnsealCode(keys_, *job->challenge.sealed_code)
          : Result<std::string>(MakeError("unseal_failed", "no sealed code"));
  if (!code.ok()) {
    outcome =
        SendOutcome::Permanent("the sealed code cannot be opened (was the key file replaced?)");
    provider_at_fault = false;
  } else {
    outcome = Send(*job, *code);
  }
  Release(job->delivery.provider);
  metrics_.CountDelivery(job->delivery.provider, KindName(outcome.kind));

  std::lock_guard<std::mutex> record_lock(record_mutex_);
  if (abandoned_) return false;  // the process is ending; see StopWithin
  Status recorded = Record(*job, outcome, now, provider_at_fault);
  if (!recorded.ok()) {
    Log(LogLevel::kError, "delivery", "cannot record a delivery outcome",
        {{"delivery_id", std::to_string(job->delivery.id)}, {"error", recorded.error().message}});
    return false;
  }
  return true;
}

SendOutcome DeliveryWorker::Send(const DeliveryJob& job, const std::string& code) {
  SmsMessage message{job.challenge.phone,
                     RenderMessage(*message_settings(), code, job.challenge.locale),
                     job.challenge.id};
  const std::string& provider = job.delivery.provider;

  // A steady clock, not clock_: the wall clock may step, and the latency is about the call.
  auto started = std::chrono::steady_clock::now();
  SendOutcome outcome = ProviderNamed(provider)->Send(message);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  metrics_.ObserveDeliveryDuration(provider, took.count());
  return outcome;
}

Status DeliveryWorker::Record(const DeliveryJob& job, const SendOutcome& outcome, TimeMs started,
                              bool provider_at_fault) {
  TimeMs now = clock_.Now();
  Delivery d = job.delivery;
  d.updated_at = now;
  std::string audit_outcome = KindName(outcome.kind);
  std::string provider_used = d.provider;

  switch (outcome.kind) {
    case SendOutcome::Kind::kSent:
      d.state = DeliveryState::kSent;
      d.provider_message_id = outcome.message_id;
      d.sent_at = now;
      d.error.clear();
      break;
    case SendOutcome::Kind::kUnknown:
      if (!settings_.resend_on_unknown) {
        d.state = DeliveryState::kUnknown;
        d.error = outcome.reason;
        break;
      }
      // The operator prefers a possible duplicate to a possibly lost code.
      [[fallthrough]];
    case SendOutcome::Kind::kRetry:
    case SendOutcome::Kind::kPermanentFailure: {
      d.error = outcome.reason;
      bool permanent = outcome.kind == SendOutcome::Kind::kPermanentFailure;
      std::int64_t delay = permanent                    ? 0
                           : outcome.retry_after_ms > 0 ? outcome.retry_after_ms
                                                        : Backoff(d.provider_attempts);
      // A provider that asks to wait past the challenge's end (a long Retry-After) has as
      // good as run out of retries: the code is useless by the time it would go.
      bool waits_too_long = !permanent && now + delay >= job.challenge.expires_at;
      bool give_up_here =
          permanent || d.provider_attempts >= settings_.max_attempts || waits_too_long;
      // A bad number fails on every provider; only a provider's own failure (or retries
      // running out on it) is worth another provider's try.
      bool worth_failover = provider_at_fault && (!permanent || outcome.provider_failure);
      SmsProvider* next = give_up_here && worth_failover ? ProviderAfter(d.provider) : nullptr;
      if (!give_up_here) {
        d.state = DeliveryState::kQueued;
        d.next_attempt_at = now + delay;
      } else if (next != nullptr) {
        d.state = DeliveryState::kQueued;
        d.provider = next->name();
        d.provider_attempts = 0;
        d.next_attempt_at = now;
        audit_outcome = "failover";
      } else {
        d.state = DeliveryState::kFailed;
        audit_outcome = "failed";
      }
      break;
    }
  }

  Status stored = store_.Transact([&](StoreTx& tx) -> Status {
    // The challenge may have ended while the provider had the message; its queued deliveries
    // were failed then, and this one must not go back in the queue either.
    if (d.state == DeliveryState::kQueued) {
      Result<std::optional<Challenge>> current = tx.FindChallenge(job.challenge.id);
      if (!current.ok()) return current.error();
      if (!current->has_value() || (*current)->status != ChallengeStatus::kPending) {
        d.state = DeliveryState::kFailed;
        d.error = current->has_value() ? std::string(ToString((*current)->status)) : "ended";
        audit_outcome = "failed";
      }
    }

    Status updated = tx.UpdateDelivery(d);
    if (!updated.ok()) return updated;

    AuditEvent audit;
    audit.time = now;
    audit.event = "deliver";
    audit.user = job.challenge.user;
    audit.challenge_id = job.challenge.id;
    audit.outcome = audit_outcome;
    audit.client_ip = job.challenge.client_ip;
    audit.phone_masked = MaskPhone(job.challenge.phone);
    audit.detail = "provider=" + provider_used + " attempt=" + std::to_string(d.attempts) +
                   " latency_ms=" + std::to_string(now - started) +
                   " queued_ms=" + std::to_string(now - d.created_at);
    if (!outcome.reason.empty()) audit.detail += " error=\"" + outcome.reason + "\"";
    return tx.AppendAudit(audit);
  });
  if (!stored.ok()) return stored;

  Log(outcome.kind == SendOutcome::Kind::kSent ? LogLevel::kInfo : LogLevel::kWarn, "delivery",
      audit_outcome,
      {{"challenge_id", job.challenge.id},
       {"provider", provider_used},
       {"phone", MaskPhone(job.challenge.phone)},
       {"attempt", std::to_string(d.attempts)},
       {"state", std::string(ToString(d.state))},
       {"latency_ms", std::to_string(now - started)},
       {"error", outcome.reason}});
  return OkStatus();
}

}  // namespace sidecar
