#include "delivery/delivery_worker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr const char* kPhone = kTestPhone;

DeliverySettings Settings(int max_attempts = 3) {
  DeliverySettings settings;
  settings.message.template_text = "{code} is your {app} code. It expires in {minutes} minutes.";
  settings.message.app_name = "Acme";
  settings.message.webotp_domain = "login.acme.example";
  settings.message.ttl_ms = 300'000;
  settings.max_attempts = max_attempts;
  settings.base_backoff_ms = 1000;
  settings.max_backoff_ms = 60'000;
  return settings;
}

// A DeliveryWorker with one or two FakeProviders ("primary", "secondary") on the shared
// service fixture, whose new challenges start on "primary" and wake the worker.
struct Harness : ServiceFixture {
  explicit Harness(int provider_count = 1, DeliverySettings settings = Settings(),
                   const CodeKeys* worker_keys = nullptr)
      : ServiceFixture(TestChallengeSettings(5, "primary")) {
    std::vector<std::unique_ptr<SmsProvider>> providers;
    auto first = std::make_unique<FakeProvider>("primary");
    primary = first.get();
    providers.push_back(std::move(first));
    if (provider_count > 1) {
      auto second = std::make_unique<FakeProvider>("secondary");
      secondary = second.get();
      providers.push_back(std::move(second));
    }
    worker = std::make_unique<DeliveryWorker>(*store, worker_keys ? *worker_keys : keys, clock,
                                              random, std::move(providers), settings, metrics);
    on_queued = [this] { worker->Wake(); };
  }

  std::string Create(const std::string& user = "alice") {
    return MustCreate(UsRequest(user, "192.0.2.1")).id;
  }

  std::string Expected(const std::string& code) {
    return code + " is your Acme code. It expires in 5 minutes.\n\n@login.acme.example #" + code;
  }

  FakeProvider* primary = nullptr;
  FakeProvider* secondary = nullptr;
  std::unique_ptr<DeliveryWorker> worker;
};

DeliverySettings StartedSettings(int workers) {
  DeliverySettings settings = Settings();
  settings.workers = workers;
  return settings;
}

template <typename Predicate>
bool Eventually(Predicate predicate) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::yield();
  }
  return predicate();
}

// Starts the worker and a challenge whose send blocks in the provider until `release`;
// returns the challenge id once the send is in progress.
std::string StartBlockedSend(Harness& h, std::atomic<bool>& release) {
  h.primary->OnSend([&release](const SmsMessage&) {
    while (!release.load())
      std::this_thread::yield();
  });
  REQUIRE(h.worker->Start().ok());
  std::string id = h.Create();
  REQUIRE(Eventually([&] { return h.worker->in_flight() == 1; }));
  return id;
}

// The fixture's SQLite store, presented as one that other sidecars share (as PostgreSQL is):
// a delivery in "sending" may then be another sidecar's, and only an expired lease makes it
// interrupted.
class SharedStore final : public Store {
 public:
  explicit SharedStore(Store& inner) : inner_(inner) {}
  Status Transact(const std::function<Status(StoreTx&)>& body) override {
    return inner_.Transact(body);
  }
  Status ProbeWritable(std::int64_t timeout_ms) override {
    return inner_.ProbeWritable(timeout_ms);
  }
  Result<StoreStats> ReadStats() override { return inner_.ReadStats(); }
  int schema_version() const override { return inner_.schema_version(); }
  bool shared() const override { return true; }

 private:
  Store& inner_;
};

// Puts the challenge's delivery in "sending", claimed at `claimed_at`, as a sidecar that
// called the provider and then died would have left it.
void MarkClaimed(Store& store, const std::string& id, TimeMs claimed_at) {
  MustTransact(store, [&](StoreTx& tx) -> Status {
    Delivery d = **tx.FindLatestDelivery(id);
    d.state = DeliveryState::kSending;
    d.attempts = 1;
    d.updated_at = claimed_at;
    return tx.UpdateDelivery(d);
  });
}

}  // namespace

TEST_SUITE("delivery_worker") {
  TEST_CASE("a sent delivery is recorded as sent and the provider got the rendered text") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    CHECK(h.worker->DrainDue() == 1);

    std::vector<SmsMessage> sent = h.primary->sent();
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].to == kPhone);
    CHECK(sent[0].body == h.Expected(code));
    CHECK(sent[0].challenge_id == id);

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kSent);
    CHECK(d.provider == "primary");
    CHECK(d.provider_message_id == "fake-1");
    CHECK(d.attempts == 1);
    REQUIRE(d.sent_at.has_value());
    CHECK(*d.sent_at == h.clock.Now());
    CHECK(d.error.empty());
  }

  TEST_CASE("a sent delivery is audited without the code and is not sent again") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    h.worker->DrainDue();
    h.clock.Advance(60'000);

    CHECK(h.worker->DrainDue() == 0);
    CHECK(h.primary->sent().size() == 1);
    std::vector<AuditRow> audit = AuditOf(h.path, id);
    REQUIRE(audit.size() == 2);
    CHECK(audit[1].event == "deliver");
    CHECK(audit[1].outcome == "sent");
    CHECK(audit[1].phone_masked == "+1206*****00");
    CHECK(audit[1].detail.find("provider=primary") != std::string::npos);
    CHECK(audit[1].detail.find(code) == std::string::npos);
  }

  TEST_CASE("sending keeps the sealed code so the challenge can be resent and verified") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    h.worker->DrainDue();

    REQUIRE(h.service.Resend(id, "").ok());
    CHECK(h.worker->DrainDue() == 1);

    std::vector<SmsMessage> sent = h.primary->sent();
    REQUIRE(sent.size() == 2);
    CHECK(sent[1].body == sent[0].body);
    CHECK(h.service.VerifyById(id, {code, true}, "")->status == VerifyStatus::kApproved);
  }

  TEST_CASE("a retry outcome queues the delivery again for later, then it is sent") {
    Harness h;
    h.primary->Script({SendOutcome::Retry("provider busy")});
    std::string id = h.Create();
    TimeMs start = h.clock.Now();

    CHECK(h.worker->DrainDue() == 1);

    Delivery queued = h.Latest(id);
    CHECK(queued.state == DeliveryState::kQueued);
    CHECK(queued.next_attempt_at > start);
    CHECK(queued.next_attempt_at <= start + 60'000);
    CHECK(queued.error == "provider busy");
    CHECK(queued.attempts == 1);

    CHECK(h.worker->DrainDue() == 0);  // not due yet
    h.clock.Set(queued.next_attempt_at - 1);
    CHECK(h.worker->DrainDue() == 0);

    h.clock.Set(queued.next_attempt_at);
    CHECK(h.worker->DrainDue() == 1);

    Delivery sent = h.Latest(id);
    CHECK(sent.state == DeliveryState::kSent);
    CHECK(sent.attempts == 2);
    CHECK(h.primary->sent().size() == 2);
    CHECK(AuditTrail(h.path, id) ==
          std::vector<std::string>{"create/pending", "deliver/retry", "deliver/sent"});
  }

  TEST_CASE("a retry honours the provider's Retry-After") {
    Harness h;
    h.primary->Script({SendOutcome::Retry("rate limited", 7000)});
    std::string id = h.Create();
    TimeMs start = h.clock.Now();

    h.worker->DrainDue();

    CHECK(h.Latest(id).next_attempt_at == start + 7000);
    h.clock.Advance(6999);
    CHECK(h.worker->DrainDue() == 0);
    h.clock.Advance(1);
    CHECK(h.worker->DrainDue() == 1);
    CHECK(h.Latest(id).state == DeliveryState::kSent);
  }

  TEST_CASE("a Retry-After past the challenge's end hands the message to the next provider") {
    Harness h(2);
    h.primary->Script({SendOutcome::Retry("rate limited", 600'000)});
    std::string id = h.Create();

    CHECK(h.worker->DrainDue() == 2);

    CHECK(h.primary->sent().size() == 1);
    CHECK(h.secondary->sent().size() == 1);
    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kSent);
    CHECK(d.provider == "secondary");
    CHECK(AuditTrail(h.path, id) ==
          std::vector<std::string>{"create/pending", "deliver/failover", "deliver/sent"});
  }

  TEST_CASE("a Retry-After past the challenge's end on the last provider fails at once") {
    Harness h;
    h.primary->Script({SendOutcome::Retry("rate limited", 300'000)});
    std::string id = h.Create();

    h.worker->DrainDue();

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kFailed);
    CHECK(d.error == "rate limited");
  }

  TEST_CASE("backoff grows but never beyond max_backoff_ms") {
    DeliverySettings settings = Settings(8);
    settings.base_backoff_ms = 1000;
    settings.max_backoff_ms = 4000;
    Harness h(1, settings);
    std::vector<SendOutcome> retries(7, SendOutcome::Retry("busy"));
    h.primary->Script(retries);
    std::string id = h.Create();

    std::vector<std::int64_t> delays;
    for (int i = 0; i < 7; ++i) {
      TimeMs now = h.clock.Now();
      REQUIRE(h.worker->DrainDue() == 1);
      Delivery d = h.Latest(id);
      REQUIRE(d.state == DeliveryState::kQueued);
      delays.push_back(d.next_attempt_at - now);
      h.clock.Set(d.next_attempt_at);
    }

    for (std::int64_t delay : delays) {
      CHECK(delay >= 1);
      CHECK(delay <= 4000);
    }
    CHECK(delays.back() >= 2000);  // the ceiling reached, jittered in its upper half
  }

  TEST_CASE("when retries run out on a provider the next provider takes over") {
    Harness h(2, Settings(2));
    h.primary->Script({SendOutcome::Retry("busy"), SendOutcome::Retry("still busy")});
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    h.worker->DrainDue();
    h.clock.Set(h.Latest(id).next_attempt_at);
    h.worker->DrainDue();

    CHECK(h.primary->sent().size() == 2);
    std::vector<SmsMessage> second = h.secondary->sent();
    REQUIRE(second.size() == 1);
    CHECK(second[0].body == h.Expected(code));
    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kSent);
    CHECK(d.provider == "secondary");
    CHECK(d.attempts == 3);
    CHECK(AuditTrail(h.path, id) == std::vector<std::string>{"create/pending", "deliver/retry",
                                                             "deliver/failover", "deliver/sent"});
  }

  TEST_CASE("metrics: each send is counted by provider and result, each provider call timed") {
    Harness h(2, Settings(2));
    h.primary->Script({SendOutcome::Retry("busy"), SendOutcome::Retry("still busy")});
    h.secondary->Script({SendOutcome::Sent("ok"), SendOutcome::Permanent("invalid_number"),
                         SendOutcome::Unknown("connection reset")});
    h.primary->OnSend([](const SmsMessage&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a slow provider, timed
    });
    std::string id = h.Create("alice");

    h.worker->DrainDue();
    h.clock.Set(h.Latest(id).next_attempt_at);
    h.worker->DrainDue();  // retry, then the failover to secondary sends it
    h.primary->Script({SendOutcome::Permanent("bad credentials", true)});
    h.primary->OnSend(nullptr);
    h.Create("bob");  // primary refuses, secondary finds the number invalid
    h.worker->DrainDue();
    h.Create("carol");  // primary's own failure again, then secondary does not know
    h.primary->Script({SendOutcome::Permanent("bad credentials", true)});
    h.worker->DrainDue();

    std::map<std::string, int> events = h.metrics.events();
    CHECK(events["delivery:primary,retry"] == 2);
    CHECK(events["delivery:primary,failed"] == 2);
    CHECK(events["delivery:secondary,sent"] == 1);
    CHECK(events["delivery:secondary,failed"] == 1);
    CHECK(events["delivery:secondary,unknown"] == 1);
    CHECK(events["delivery_seconds:primary"] == 4);
    CHECK(events["delivery_seconds:secondary"] == 3);
    std::vector<double> durations = h.metrics.durations();
    REQUIRE(durations.size() == 7);
    CHECK(durations[0] >= 0.015);  // a steady clock, not the fake one that stands still
    CHECK(durations[0] < 60);
  }

  TEST_CASE("metrics: a code that cannot be opened is a failed send without a provider call") {
    CodeKeys other(TestMasterKey(99));
    Harness h(1, Settings(), &other);
    h.Create();

    h.worker->DrainDue();

    CHECK(h.primary->sent().empty());
    CHECK(h.metrics.count("delivery:primary,failed") == 1);
    CHECK(h.metrics.count("delivery_seconds:primary") == 0);
  }

  TEST_CASE("when retries run out on the last provider the delivery fails for good") {
    Harness h(1, Settings(2));
    h.primary->Script({SendOutcome::Retry("busy"), SendOutcome::Retry("still busy")});
    std::string id = h.Create();

    h.worker->DrainDue();
    h.clock.Set(h.Latest(id).next_attempt_at);
    h.worker->DrainDue();

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kFailed);
    CHECK(d.error == "still busy");
    h.clock.Advance(3'600'000);
    CHECK(h.worker->DrainDue() == 0);
    CHECK(h.primary->sent().size() == 2);
    CHECK(AuditTrail(h.path, id).back() == "deliver/failed");
  }

  TEST_CASE("a permanent failure of the provider itself moves on to the next provider at once") {
    Harness h(2);
    h.primary->Script({SendOutcome::Permanent("credentials refused", /*provider_failure=*/true)});
    std::string id = h.Create();

    CHECK(h.worker->DrainDue() == 2);

    CHECK(h.primary->sent().size() == 1);
    CHECK(h.secondary->sent().size() == 1);
    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kSent);
    CHECK(d.provider == "secondary");
  }

  TEST_CASE("a permanent failure of the message fails the delivery without another provider") {
    Harness h(2);
    h.primary->Script({SendOutcome::Permanent("not a mobile number")});
    std::string id = h.Create();

    CHECK(h.worker->DrainDue() == 1);

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kFailed);
    CHECK(d.provider == "primary");
    CHECK(d.error == "not a mobile number");
    CHECK(h.primary->sent().size() == 1);
    CHECK(h.secondary->sent().empty());
    CHECK(AuditTrail(h.path, id).back() == "deliver/failed");
  }

  TEST_CASE("a permanent provider failure on the last provider fails the delivery") {
    Harness h(2);
    h.primary->Script({SendOutcome::Permanent("no", true)});
    h.secondary->Script({SendOutcome::Permanent("no either", true)});
    std::string id = h.Create();

    h.worker->DrainDue();

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kFailed);
    CHECK(d.error == "no either");
    CHECK(h.primary->sent().size() == 1);
    CHECK(h.secondary->sent().size() == 1);
  }

  TEST_CASE("an unknown outcome is recorded as unknown and never sent again") {
    Harness h(2);
    h.primary->Script({SendOutcome::Unknown("connection reset after the request was written")});
    std::string id = h.Create();

    CHECK(h.worker->DrainDue() == 1);

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kUnknown);
    h.clock.Advance(3'600'000);
    CHECK(h.worker->DrainDue() == 0);
    CHECK(h.primary->sent().size() == 1);
    CHECK(h.secondary->sent().empty());
    CHECK(AuditTrail(h.path, id).back() == "deliver/unknown");
  }

  TEST_CASE("a sealed code that does not open fails the delivery without calling any provider") {
    SUBCASE("tampered in the database") {
      Harness h(2);
      std::string id = h.Create();
      Challenge c = LoadChallenge(*h.store, id);
      c.sealed_code->back() ^= 0x01;
      MustTransact(*h.store, [&](StoreTx& tx) { return tx.UpdateChallenge(c); });

      h.worker->DrainDue();

      CHECK(h.Latest(id).state == DeliveryState::kFailed);
      CHECK(h.primary->sent().empty());
      CHECK(h.secondary->sent().empty());
    }
    SUBCASE("sealed under another key") {
      InitSodium();
      CodeKeys other(TestMasterKey(99));
      Harness h(1, Settings(), &other);
      std::string id = h.Create();

      h.worker->DrainDue();

      CHECK(h.Latest(id).state == DeliveryState::kFailed);
      CHECK(h.primary->sent().empty());
    }
  }

  TEST_CASE("deliveries of ended or expired challenges are not sent") {
    Harness h;

    SUBCASE("canceled") {
      std::string id = h.Create();
      REQUIRE(h.service.Cancel(id, "").ok());
      CHECK(h.worker->DrainDue() == 0);
    }
    SUBCASE("approved before the worker ran") {
      std::string id = h.Create();
      REQUIRE(h.service.VerifyById(id, {h.CodeOf(id), true}, "")->status ==
              VerifyStatus::kApproved);
      CHECK(h.worker->DrainDue() == 0);
    }
    SUBCASE("expired, even before the sweep ended it") {
      std::string id = h.Create();
      h.clock.Set(LoadChallenge(*h.store, id).expires_at);
      CHECK(h.worker->DrainDue() == 0);
    }

    CHECK(h.primary->sent().empty());
  }

  TEST_CASE("only the newest of a user's challenges is delivered") {
    Harness h;
    std::string old_id = h.Create("alice");
    std::string new_id = h.Create("alice");

    CHECK(h.worker->DrainDue() == 1);

    std::vector<SmsMessage> sent = h.primary->sent();
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].challenge_id == new_id);
    CHECK(sent[0].body == h.Expected(h.CodeOf(new_id)));
    CHECK(h.Latest(old_id).state == DeliveryState::kFailed);
  }

  TEST_CASE("a challenge that ends while its message is with the provider is not queued again") {
    Harness h(2, Settings(1));
    std::string id = h.Create();
    h.primary->OnSend([&](const SmsMessage&) { REQUIRE(h.service.Cancel(id, "").ok()); });

    SUBCASE("the provider asks for a retry") {
      h.primary->Script({SendOutcome::Retry("busy", 1000)});
      h.worker->DrainDue();
    }
    SUBCASE("the provider fails for good and another provider is next") {
      h.primary->Script({SendOutcome::Permanent("account suspended", /*provider_failure=*/true)});
      h.worker->DrainDue();
    }

    Delivery d = h.Latest(id);
    CHECK(d.state == DeliveryState::kFailed);
    CHECK(LoadChallenge(*h.store, id).status == ChallengeStatus::kCanceled);
    CHECK(h.secondary->sent().empty());
    CHECK(AuditTrail(h.path, id).back() == "deliver/failed");
    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM deliveries WHERE state = 'queued'") == 0);
  }

  TEST_CASE("DrainDue sends every due delivery, oldest first") {
    Harness h;
    std::string a = h.Create("a");
    h.clock.Advance(1);
    std::string b = h.Create("b");
    h.clock.Advance(1);
    std::string c = h.Create("c");

    CHECK(h.worker->DrainDue() == 3);

    std::vector<SmsMessage> sent = h.primary->sent();
    REQUIRE(sent.size() == 3);
    CHECK(sent[0].challenge_id == a);
    CHECK(sent[1].challenge_id == b);
    CHECK(sent[2].challenge_id == c);
  }

  TEST_CASE("Start requeues a delivery interrupted mid-send when repeats are harmless") {
    Harness h;
    h.primary->set_repeats_are_harmless(true);
    std::string id = h.Create();
    MustTransact(*h.store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery(id);
      d.state = DeliveryState::kSending;
      d.attempts = 1;
      return tx.UpdateDelivery(d);
    });

    REQUIRE(h.worker->Start().ok());

    CHECK(Eventually([&] { return h.Latest(id).state == DeliveryState::kSent; }));
    CHECK(h.primary->sent().size() == 1);
    CHECK(h.worker->last_heartbeat() == h.clock.Now());
    h.worker->Stop();
    h.worker->Stop();  // idempotent
  }

  TEST_CASE("Start leaves a remote provider's interrupted send unknown, never sent twice") {
    Harness h;
    std::string id = h.Create();
    MustTransact(*h.store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery(id);
      d.state = DeliveryState::kSending;
      d.attempts = 1;
      return tx.UpdateDelivery(d);
    });

    REQUIRE(h.worker->Start().ok());
    h.worker->Stop();

    CHECK(h.Latest(id).state == DeliveryState::kUnknown);
    CHECK_FALSE(h.Latest(id).error.empty());
    CHECK(h.primary->sent().empty());
  }

  TEST_CASE("Start leaves an interrupted send of a challenge that ended since unknown") {
    // The message reached the user and the code was approved, then the process died before
    // the send was recorded: requeued, it would wait forever for a pending challenge.
    Harness h;
    h.primary->set_repeats_are_harmless(true);
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    MustTransact(*h.store, [&](StoreTx& tx) -> Status {
      Delivery d = **tx.FindLatestDelivery(id);
      d.state = DeliveryState::kSending;
      d.attempts = 1;
      return tx.UpdateDelivery(d);
    });
    REQUIRE(h.service.VerifyById(id, {code, true}, "")->status == VerifyStatus::kApproved);

    REQUIRE(h.worker->Start().ok());
    h.worker->Stop();

    CHECK(h.Latest(id).state == DeliveryState::kUnknown);
    CHECK(h.primary->sent().empty());
  }

  TEST_CASE("on a shared store only claims whose lease ran out are taken over, then later ones") {
    Harness h;
    h.primary->set_repeats_are_harmless(true);
    DeliverySettings settings = Settings();
    settings.lease_ms = 60'000;
    std::vector<std::unique_ptr<SmsProvider>> providers;
    auto provider = std::make_unique<FakeProvider>("primary");
    provider->set_repeats_are_harmless(true);
    FakeProvider* fake = provider.get();
    providers.push_back(std::move(provider));
    SharedStore shared(*h.store);
    DeliveryWorker worker(shared, h.keys, h.clock, h.random, std::move(providers), settings);

    std::string expired = h.Create("alice");
    std::string live = h.Create("bob");
    MarkClaimed(*h.store, expired, h.clock.Now() - 60'000);  // the lease just ran out
    MarkClaimed(*h.store, live, h.clock.Now() - 59'999);     // another sidecar's, still sending

    REQUIRE(worker.Start().ok());
    CHECK(Eventually([&] { return h.Latest(expired).state == DeliveryState::kSent; }));
    CHECK(h.Latest(live).state == DeliveryState::kSending);
    REQUIRE(fake->sent().size() == 1);
    CHECK(fake->sent()[0].to == kPhone);

    // A quarter lease later the worker looks again, and the other claim has run out by then.
    h.clock.Advance(15'000);
    worker.Wake();
    CHECK(Eventually([&] { return h.Latest(live).state == DeliveryState::kSent; }));
    CHECK(fake->sent().size() == 2);
    worker.Stop();
  }

  TEST_CASE("on a store of its own, Start takes over every send in progress at once") {
    Harness h;
    h.primary->set_repeats_are_harmless(true);
    std::string id = h.Create();
    MarkClaimed(*h.store, id, h.clock.Now());

    REQUIRE(h.worker->Start().ok());

    CHECK(Eventually([&] { return h.Latest(id).state == DeliveryState::kSent; }));
    h.worker->Stop();
  }

  TEST_CASE("a started worker sends a new challenge's code once woken") {
    Harness h;
    REQUIRE(h.worker->Start().ok());

    std::string id = h.Create();

    CHECK(Eventually([&] { return h.primary->sent().size() == 1; }));
    CHECK(Eventually([&] { return h.Latest(id).state == DeliveryState::kSent; }));
    h.worker->Stop();

    std::string after_stop = h.Create("bob");
    CHECK(h.Latest(after_stop).state == DeliveryState::kQueued);
  }

  TEST_CASE(
      "alive is false until Start, while a thread is stuck past stall_after_ms, and after Stop") {
    DeliverySettings settings = Settings();
    settings.workers = 1;
    settings.stall_after_ms = 10'000;
    Harness h(1, settings);
    CHECK_FALSE(h.worker->alive());

    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<bool> in_send{false};
    h.primary->OnSend([&](const SmsMessage&) {
      in_send.store(true);
      released.wait();
    });
    REQUIRE(h.worker->Start().ok());
    CHECK(h.worker->alive());

    h.Create();
    REQUIRE(Eventually([&] { return in_send.load(); }));
    h.clock.Advance(10'000);
    CHECK(h.worker->alive());  // exactly at the limit it still counts as alive
    h.clock.Advance(1);
    CHECK_FALSE(h.worker->alive());

    release.set_value();
    CHECK(Eventually([&] { return h.worker->alive(); }));
    h.worker->Stop();
    CHECK_FALSE(h.worker->alive());
  }

  TEST_CASE("a stop lets the send in progress finish and be recorded within the grace") {
    std::atomic<bool> release{false};
    Harness h(1, StartedSettings(1));
    std::string id = StartBlockedSend(h, release);

    h.worker->BeginStop();
    std::string queued = h.Create("bob");  // after the stop began: stays in the outbox
    release.store(true);
    CHECK(h.worker->StopWithin(10'000));

    CHECK(h.Latest(id).state == DeliveryState::kSent);
    CHECK(h.Latest(queued).state == DeliveryState::kQueued);
    CHECK(h.primary->sent().size() == 1);
  }

  TEST_CASE("a send that outlives the stop grace is left sending for the next start") {
    std::atomic<bool> release{false};
    Harness h(1, StartedSettings(2));
    std::string id = StartBlockedSend(h, release);

    auto started = std::chrono::steady_clock::now();
    CHECK_FALSE(h.worker->StopWithin(100));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    CHECK(h.Latest(id).state == DeliveryState::kSending);

    // The provider answers after all: nothing is written any more.
    release.store(true);
    REQUIRE(Eventually([&] { return h.worker->running_threads() == 0; }));
    CHECK(h.Latest(id).state == DeliveryState::kSending);
    CHECK(h.Trail(id) == std::vector<std::string>{"create/pending"});

    // The next start treats it as any interrupted remote send.
    std::vector<std::unique_ptr<SmsProvider>> providers;
    providers.push_back(std::make_unique<FakeProvider>("primary"));
    DeliveryWorker next(*h.store, h.keys, h.clock, h.random, std::move(providers), Settings());
    REQUIRE(next.Start().ok());
    next.Stop();
    CHECK(h.Latest(id).state == DeliveryState::kUnknown);
  }

  TEST_CASE("new message settings apply to the next send") {
    Harness h;
    std::string first = h.Create();
    CHECK(h.worker->DrainDue() == 1);
    MessageSettings changed = Settings().message;
    changed.template_text = "Your {app} code: {code}";
    changed.app_name = "Globex";
    changed.webotp_domain.clear();
    h.worker->SetMessageSettings(changed);

    std::string second = h.Create("bob");
    CHECK(h.worker->DrainDue() == 1);

    std::vector<SmsMessage> sent = h.primary->sent();
    REQUIRE(sent.size() == 2);
    CHECK(sent[0].body == h.Expected(h.CodeOf(first)));
    CHECK(sent[1].body == "Your Globex code: " + h.CodeOf(second));
  }

}  // TEST_SUITE
