#pragma once

// Hand-made fakes behind the product's interfaces, shared by the unit tests.

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "codes/random.h"
#include "common/clock.h"
#include "metrics/metrics.h"
#include "providers/provider.h"
#include "store/store.h"

namespace sidecar::testing {

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimeMs start = 1'780'000'000'000) : now_(start) {}
  TimeMs Now() const override { return now_.load(); }
  void Set(TimeMs t) { now_.store(t); }
  void Advance(TimeMs ms) { now_.fetch_add(ms); }

 private:
  std::atomic<TimeMs> now_;
};

// Returns scripted values for Uniform (each taken modulo the bound), then falls back to a
// deterministic sequence: a counter through a mixing function, so that challenge ids drawn
// from it do not repeat (a bare counter taken modulo 32 would repeat an id within a few
// dozen creates). Fill writes a deterministic byte pattern.
class FakeRandom final : public RandomSource {
 public:
  void Script(std::vector<std::uint32_t> values) {
    std::lock_guard<std::mutex> lock(mutex_);
    scripted_.assign(values.begin(), values.end());
  }
  // Scripts the values of the calls with exactly `upper_bound`, whatever comes between
  // them (a 6-digit code is drawn with 1'000'000, a challenge id's letters with 32). These
  // go before the values of Script.
  void ScriptFor(std::uint32_t upper_bound, std::vector<std::uint32_t> values) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::deque<std::uint32_t>& queue = scripted_for_[upper_bound];
    queue.assign(values.begin(), values.end());
  }
  std::uint32_t Uniform(std::uint32_t upper_bound) override {
    std::lock_guard<std::mutex> lock(mutex_);
    bounds_.push_back(upper_bound);
    std::uint32_t value = Mix(counter_++);
    if (auto it = scripted_for_.find(upper_bound);
        it != scripted_for_.end() && !it->second.empty()) {
      value = it->second.front();
      it->second.pop_front();
    } else if (!scripted_.empty()) {
      value = scripted_.front();
      scripted_.pop_front();
    }
    return value % upper_bound;
  }
  void Fill(unsigned char* out, std::size_t size) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < size; ++i)
      out[i] = static_cast<unsigned char>(fill_++);
  }
  // Every upper_bound Uniform was called with, in order.
  std::vector<std::uint32_t> bounds() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bounds_;
  }

 private:
  // The splitmix64 finaliser, top 32 bits: consecutive counters give unrelated values.
  static std::uint32_t Mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::uint32_t>((x ^ (x >> 31)) >> 32);
  }

  std::mutex mutex_;
  std::vector<std::uint32_t> bounds_;
  std::deque<std::uint32_t> scripted_;
  std::map<std::uint32_t, std::deque<std::uint32_t>> scripted_for_;
  std::uint32_t counter_ = 0;
  unsigned fill_ = 0;
};

// A provider that records messages and answers with scripted outcomes (default: sent).
class FakeProvider final : public SmsProvider {
 public:
  explicit FakeProvider(std::string name = "fake") : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  bool repeats_are_harmless() const override { return repeats_are_harmless_; }
  void set_repeats_are_harmless(bool harmless) { repeats_are_harmless_ = harmless; }
  SendOutcome Send(const SmsMessage& message) override {
    std::function<void(const SmsMessage&)> hook;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      hook = on_send_;
    }
    if (hook) hook(message);  // outside the lock: the hook may do anything
    std::lock_guard<std::mutex> lock(mutex_);
    sent_.push_back(message);
    if (outcomes_.empty()) return SendOutcome::Sent("fake-" + std::to_string(sent_.size()));
    SendOutcome outcome = outcomes_.front();
    outcomes_.pop_front();
    return outcome;
  }
  void Script(std::vector<SendOutcome> outcomes) {
    std::lock_guard<std::mutex> lock(mutex_);
    outcomes_.assign(outcomes.begin(), outcomes.end());
  }
  std::vector<SmsMessage> sent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return sent_;
  }
  // Runs `hook` at the start of every Send, as if it happened while the provider had the
  // message (for example, the challenge ending mid-send).
  void OnSend(std::function<void(const SmsMessage&)> hook) {
    std::lock_guard<std::mutex> lock(mutex_);
    on_send_ = std::move(hook);
  }

 private:
  std::string name_;
  std::atomic<bool> repeats_are_harmless_{false};
  std::mutex mutex_;
  std::function<void(const SmsMessage&)> on_send_;
  std::deque<SendOutcome> outcomes_;
  std::vector<SmsMessage> sent_;
};

// Metrics that remember every event as "kind:label[,label]" with how often it came, and
// every observed duration.
class RecordingMetrics final : public Metrics {
 public:
  void CountChallenge(std::string_view outcome) override { Note("challenge", outcome); }
  void CountVerification(std::string_view status) override { Note("verification", status); }
  void CountRefusal(std::string_view limit) override { Note("refusal", limit); }
  void CountDelivery(std::string_view provider, std::string_view result) override {
    Note("delivery", std::string(provider) + "," + std::string(result));
  }
  void ObserveDeliveryDuration(std::string_view provider, double seconds) override {
    Note("delivery_seconds", provider);
    std::lock_guard<std::mutex> lock(mutex_);
    durations_.push_back(seconds);
  }
  void ObserveRequest(std::string_view route, std::string_view method, double seconds) override {
    Note("request", std::string(route) + "," + std::string(method));
    std::lock_guard<std::mutex> lock(mutex_);
    durations_.push_back(seconds);
  }

  // Every event so far, "kind:labels" -> count.
  std::map<std::string, int> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  int count(const std::string& event) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = events_.find(event);
    return it == events_.end() ? 0 : it->second;
  }
  std::vector<double> durations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return durations_;
  }

 private:
  void Note(const char* kind, std::string_view labels) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_[std::string(kind) + ":" + std::string(labels)] += 1;
  }

  mutable std::mutex mutex_;
  std::map<std::string, int> events_;
  std::vector<double> durations_;
};

// A store whose database is never reachable: every transaction fails with `error` and the
// body is never run.
class FailingStore final : public Store {
 public:
  explicit FailingStore(Error error = MakeError("storage_unavailable",
                                                "disk I/O error in /srv/secret/otp.db"))
      : error_(std::move(error)) {}
  Status Transact(const std::function<Status(StoreTx&)>&) override {
    calls_.fetch_add(1);
    return error_;
  }
  Status ProbeWritable(std::int64_t) override { return error_; }
  Result<StoreStats> ReadStats() override { return error_; }
  int schema_version() const override { return 0; }
  int calls() const { return calls_.load(); }

 private:
  Error error_;
  std::atomic<int> calls_{0};
};

// A temporary folder removed with everything in it when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "otp-sidecar-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace sidecar::testing
