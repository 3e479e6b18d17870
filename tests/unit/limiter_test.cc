#include "limits/limiter.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite_store.h"
#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::MustTransact;
using sidecar::testing::NoLimits;
using sidecar::testing::OpenStore;
using sidecar::testing::SqlReader;
using sidecar::testing::TempDir;

namespace {

constexpr TimeMs kT0 = 1'780'000'020'000;  // a whole minute
constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;

SendSubject Subject(std::string user = "alice", std::string phone = "+12065550100",
                    std::string ip = "192.0.2.1", std::string region = "US") {
  return SendSubject{std::move(user), std::move(phone), std::move(ip), std::move(region)};
}

struct Harness {
  explicit Harness(LimitSettings settings) : limiter(std::move(settings)) {}

  std::optional<Refusal> Admit(const SendSubject& subject, TimeMs now) {
    std::optional<Refusal> out;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Result<std::optional<Refusal>> refused = limiter.AdmitSend(tx, subject, now);
      if (!refused.ok()) return refused.error();
      out = *refused;
      return OkStatus();
    });
    return out;
  }

  std::optional<Refusal> CheckVerify(const std::string& user, const std::string& ip, TimeMs now) {
    std::optional<Refusal> out;
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Result<std::optional<Refusal>> refused = limiter.CheckVerify(tx, user, ip, now);
      if (!refused.ok()) return refused.error();
      out = *refused;
      return OkStatus();
    });
    return out;
  }

  void Fail(const std::string& user, const std::string& ip, TimeMs now) {
    MustTransact(*store, [&](StoreTx& tx) { return limiter.RecordFailure(tx, user, ip, now); });
  }

  void Approve(const std::string& user, const std::string& region, TimeMs now) {
    MustTransact(*store,
                 [&](StoreTx& tx) { return limiter.RecordApproval(tx, user, region, now); });
  }

  void Prune(TimeMs now) {
    MustTransact(*store, [&](StoreTx& tx) { return limiter.Prune(tx, now); });
  }

  std::int64_t Events(const std::string& scope, const std::string& key = "") {
    SqlReader reader(path);
    if (key.empty())
      return reader.Int("SELECT COUNT(*) FROM limit_events WHERE scope = ?1", {scope});
    return reader.Int("SELECT COUNT(*) FROM limit_events WHERE scope = ?1 AND key = ?2",
                      {scope, key});
  }

  TempDir dir;
  std::string path = dir.File("otp.db");
  std::unique_ptr<SqliteStore> store = OpenStore(path);
  Limiter limiter;
};

void CheckRefused(const std::optional<Refusal>& refusal, const std::string& limit,
                  std::int64_t retry_after_ms) {
  REQUIRE(refusal.has_value());
  CHECK(refusal->limit == limit);
  CHECK(refusal->retry_after_ms == retry_after_ms);
}

}  // namespace

TEST_SUITE("limiter") {
  TEST_CASE("the default settings match the documented limits") {
    LimitSettings s;
    CHECK(s.resend_cooldown_ms == 30'000);
    REQUIRE(s.user_sends.size() == 2);
    CHECK(s.user_sends[0].count == 5);
    CHECK(s.user_sends[0].window_ms == 15 * kMinute);
    CHECK(s.pumping.enabled);
    CHECK(Limiter(s).resend_cooldown_ms() == 30'000);
  }

  TEST_CASE("sends are admitted up to COUNT, then refused until the oldest leaves the window") {
    LimitSettings s = NoLimits();
    s.user_sends = {{3, kMinute}};
    Harness h(s);

    CHECK_FALSE(h.Admit(Subject(), kT0).has_value());
    CHECK_FALSE(h.Admit(Subject(), kT0 + 10'000).has_value());
    CHECK_FALSE(h.Admit(Subject(), kT0 + 20'000).has_value());

    CheckRefused(h.Admit(Subject(), kT0 + 30'000), "user_sends", 30'000);
    CheckRefused(h.Admit(Subject(), kT0 + kMinute - 1), "user_sends", 1);

    CHECK_FALSE(h.Admit(Subject(), kT0 + kMinute).has_value());
    CheckRefused(h.Admit(Subject(), kT0 + kMinute + 1), "user_sends", 10'000 - 1);
  }

  TEST_CASE("events stamped after the request's own time never make it wait past the window") {
    // Another sidecar (a clock running ahead) or a request that started later but committed
    // first can leave events later than `now`.
    LimitSettings s = NoLimits();
    s.user_sends = {{2, kMinute}};
    Harness h(s);

    CHECK_FALSE(h.Admit(Subject(), kT0 + 5'000).has_value());
    CHECK_FALSE(h.Admit(Subject(), kT0 + 6'000).has_value());
    CheckRefused(h.Admit(Subject(), kT0), "user_sends", kMinute);
  }

  TEST_CASE("a refused send is not counted") {
    LimitSettings s = NoLimits();
    s.user_sends = {{2, kMinute}};
    Harness h(s);
    h.Admit(Subject(), kT0);
    h.Admit(Subject(), kT0 + 1);

    for (int i = 0; i < 5; ++i)
      CHECK(h.Admit(Subject(), kT0 + 100 + i).has_value());

    CHECK(h.Events("user_sends", "alice") == 2);
    CHECK_FALSE(h.Admit(Subject(), kT0 + kMinute).has_value());
  }

  TEST_CASE("with several rules every rule must hold and the longest wait is reported") {
    LimitSettings s = NoLimits();
    s.user_sends = {{2, kMinute}, {3, kHour}};
    Harness h(s);

    h.Admit(Subject(), kT0);
    h.Admit(Subject(), kT0 + 10'000);
    CheckRefused(h.Admit(Subject(), kT0 + 20'000), "user_sends", 40'000);

    CHECK_FALSE(h.Admit(Subject(), kT0 + 61'000).has_value());
    CheckRefused(h.Admit(Subject(), kT0 + 122'000), "user_sends", kHour - 122'000);
  }

  TEST_CASE("each send limit is keyed by its own subject") {
    SUBCASE("phone") {
      LimitSettings s = NoLimits();
      s.phone_sends = {{1, kMinute}};
      Harness h(s);
      CHECK_FALSE(h.Admit(Subject("alice", "+12065550100"), kT0).has_value());
      CHECK(h.Admit(Subject("bob", "+12065550100"), kT0 + 1)->limit == "phone_sends");
      CHECK_FALSE(h.Admit(Subject("alice", "+12065550101"), kT0 + 2).has_value());
    }
    SUBCASE("client ip") {
      LimitSettings s = NoLimits();
      s.ip_sends = {{1, kMinute}};
      Harness h(s);
      CHECK_FALSE(h.Admit(Subject("a", "+12065550100", "192.0.2.1"), kT0).has_value());
      CHECK(h.Admit(Subject("b", "+12065550101", "192.0.2.1"), kT0 + 1)->limit == "ip_sends");
      CHECK_FALSE(h.Admit(Subject("c", "+12065550102", "192.0.2.2"), kT0 + 2).has_value());
    }
    SUBCASE("region") {
      LimitSettings s = NoLimits();
      s.region_sends = {{1, kMinute}};
      Harness h(s);
      CHECK_FALSE(h.Admit(Subject("a", "+12065550100", "", "US"), kT0).has_value());
      CHECK(h.Admit(Subject("b", "+12065550101", "", "US"), kT0 + 1)->limit == "region_sends");
      CHECK_FALSE(h.Admit(Subject("c", "+14165550100", "", "CA"), kT0 + 2).has_value());
    }
    SUBCASE("global") {
      LimitSettings s = NoLimits();
      s.global_sends = {{2, kMinute}};
      Harness h(s);
      CHECK_FALSE(h.Admit(Subject("a", "+12065550100", "192.0.2.1", "US"), kT0).has_value());
      CHECK_FALSE(h.Admit(Subject("b", "+14165550100", "192.0.2.2", "CA"), kT0 + 1).has_value());
      CHECK(h.Admit(Subject("c", "+442079460958", "192.0.2.3", "GB"), kT0 + 2)->limit ==
            "global_sends");
    }
  }

  TEST_CASE("IPv6 client addresses count per /64 prefix") {
    LimitSettings s = NoLimits();
    s.ip_sends = {{1, kMinute}};
    s.ip_failures = {{1, kHour}};
    Harness h(s);

    CHECK_FALSE(h.Admit(Subject("a", "+12065550100", "2001:db8:1:2::1"), kT0).has_value());
    CHECK(h.Admit(Subject("b", "+12065550101", "2001:db8:1:2:ffff::9"), kT0 + 1)->limit ==
          "ip_sends");
    CHECK_FALSE(h.Admit(Subject("c", "+12065550102", "2001:db8:1:3::1"), kT0 + 2).has_value());

    h.Fail("a", "2001:db8:1:2::1", kT0 + 3);
    CHECK(h.CheckVerify("b", "2001:db8:1:2:abcd::1", kT0 + 4)->limit == "ip_failures");
    CHECK_FALSE(h.CheckVerify("b", "2001:db8:1:3::1", kT0 + 4).has_value());
    CHECK_FALSE(h.CheckVerify("b", "192.0.2.1", kT0 + 4).has_value());
  }

  TEST_CASE("without a client ip the per-IP limit is not applied") {
    LimitSettings s = NoLimits();
    s.ip_sends = {{1, kMinute}};
    Harness h(s);

    for (int i = 0; i < 5; ++i) {
      CHECK_FALSE(
          h.Admit(Subject("u" + std::to_string(i), "+12065550100", ""), kT0 + i).has_value());
    }
    CHECK(h.Events("ip_sends") == 0);
  }

  TEST_CASE("exempt numbers pass without being counted") {
    LimitSettings s = NoLimits();
    s.user_sends = {{1, kMinute}};
    s.global_sends = {{1, kMinute}};
    s.exempt_numbers = {"+12065550199"};
    Harness h(s);

    for (int i = 0; i < 3; ++i) {
      CHECK_FALSE(h.Admit(Subject("tester", "+12065550199"), kT0 + i).has_value());
    }

    CHECK(h.Events("user_sends") == 0);
    CHECK(h.Events("global_sends") == 0);
    CHECK(h.limiter.IsExempt("+12065550199"));
    CHECK_FALSE(h.limiter.IsExempt("+12065550100"));
    CHECK_FALSE(h.Admit(Subject("alice", "+12065550100"), kT0 + 10).has_value());
  }

  TEST_CASE("a key never holds more events than its largest COUNT") {
    LimitSettings s = NoLimits();
    s.user_sends = {{3, kMinute}};
    Harness h(s);

    for (int i = 0; i < 40; ++i)
      h.Admit(Subject(), kT0 + i * 7'000);

    CHECK(h.Events("user_sends", "alice") <= 3);
  }

  TEST_CASE("20 concurrent sends against a limit of 5 admit exactly 5") {
    LimitSettings s = NoLimits();
    s.user_sends = {{5, kMinute}};
    Harness h(s);
    std::atomic<int> admitted{0}, refused{0}, errors{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;

    for (int i = 0; i < 20; ++i) {
      threads.emplace_back([&] {
        while (!go.load())
          std::this_thread::yield();
        Status status = h.store->Transact([&](StoreTx& tx) -> Status {
          Result<std::optional<Refusal>> r = h.limiter.AdmitSend(tx, Subject(), kT0);
          if (!r.ok()) return r.error();
          (r->has_value() ? refused : admitted).fetch_add(1);
          return OkStatus();
        });
        if (!status.ok()) errors.fetch_add(1);
      });
    }
    go.store(true);
    for (std::thread& thread : threads)
      thread.join();

    CHECK(errors.load() == 0);
    CHECK(admitted.load() == 5);
    CHECK(refused.load() == 15);
  }

  TEST_CASE("wrong codes count against the user and the client ip") {
    LimitSettings s = NoLimits();
    s.user_failures = {{3, kHour}};
    s.ip_failures = {{5, kHour}};
    Harness h(s);

    for (int i = 0; i < 3; ++i) {
      CHECK_FALSE(h.CheckVerify("alice", "192.0.2.1", kT0 + i).has_value());
      h.Fail("alice", "192.0.2.1", kT0 + i);
    }

    CheckRefused(h.CheckVerify("alice", "192.0.2.1", kT0 + 10), "user_failures", kHour - 10);
    CHECK_FALSE(h.CheckVerify("bob", "192.0.2.1", kT0 + 10).has_value());

    h.Fail("bob", "192.0.2.1", kT0 + 20);
    h.Fail("bob", "192.0.2.1", kT0 + 21);
    CHECK(h.CheckVerify("carol", "192.0.2.1", kT0 + 30)->limit == "ip_failures");
    CHECK_FALSE(h.CheckVerify("carol", "192.0.2.2", kT0 + 30).has_value());
    CHECK_FALSE(h.CheckVerify("carol", "", kT0 + 30).has_value());
  }

  TEST_CASE("failures count across challenges and wait out their window") {
    LimitSettings s = NoLimits();
    s.user_failures = {{2, kHour}};
    Harness h(s);
    h.Fail("alice", "", kT0);
    h.Fail("alice", "", kT0 + kMinute);

    CHECK(h.CheckVerify("alice", "", kT0 + 2 * kMinute).has_value());
    CHECK(h.CheckVerify("alice", "", kT0 + kHour - 1).has_value());
    CHECK_FALSE(h.CheckVerify("alice", "", kT0 + kHour).has_value());
  }

  TEST_CASE("an approval clears the user's failures but not the client ip's") {
    LimitSettings s = NoLimits();
    s.user_failures = {{2, kHour}};
    s.ip_failures = {{2, kHour}};
    Harness h(s);
    h.Fail("alice", "192.0.2.1", kT0);
    h.Fail("alice", "192.0.2.1", kT0 + 1);

    h.Approve("alice", "US", kT0 + 2);

    CHECK_FALSE(h.CheckVerify("alice", "192.0.2.9", kT0 + 3).has_value());
    CHECK(h.CheckVerify("alice", "192.0.2.1", kT0 + 3)->limit == "ip_failures");
  }

  TEST_CASE("100 consecutive failures lock the user even with no failure rule configured") {
    Harness h(NoLimits());

    for (int i = 0; i < kMaxConsecutiveFailures - 1; ++i)
      h.Fail("alice", "", kT0 + i);
    CHECK_FALSE(h.CheckVerify("alice", "", kT0 + 1000).has_value());

    TimeMs last = kT0 + 2000;
    h.Fail("alice", "", last);

    CheckRefused(h.CheckVerify("alice", "", last + 10), "user_failures", kHour - 10);
    CHECK_FALSE(h.CheckVerify("bob", "", last + 10).has_value());
    CHECK_FALSE(h.CheckVerify("alice", "", last + kHour).has_value());
  }

  TEST_CASE("an approval resets the consecutive-failure streak") {
    Harness h(NoLimits());
    for (int i = 0; i < kMaxConsecutiveFailures; ++i)
      h.Fail("alice", "", kT0 + i);
    REQUIRE(h.CheckVerify("alice", "", kT0 + 200).has_value());

    h.Approve("alice", "", kT0 + 300);

    CHECK_FALSE(h.CheckVerify("alice", "", kT0 + 400).has_value());
  }

  TEST_CASE("the pumping guard suspends a region whose sends do not convert") {
    LimitSettings s = NoLimits();
    s.pumping = PumpingSettings{true, 5, 0.2, kHour};
    Harness h(s);
    for (int i = 0; i < 5; ++i) {
      REQUIRE_FALSE(h.Admit(Subject("u" + std::to_string(i)), kT0 + i * 1000).has_value());
    }

    std::optional<Refusal> tripped = h.Admit(Subject("u5"), kT0 + 10'000);

    REQUIRE(tripped.has_value());
    CHECK(tripped->limit == "region_suspended");
    CHECK(tripped->retry_after_ms == kHour);
    CHECK(tripped->region_newly_suspended);

    std::optional<Refusal> still = h.Admit(Subject("u6"), kT0 + 20'000);
    REQUIRE(still.has_value());
    CHECK(still->limit == "region_suspended");
    CHECK(still->retry_after_ms == kHour - 10'000);
    CHECK_FALSE(still->region_newly_suspended);

    CHECK_FALSE(h.Admit(Subject("u7", "+14165550100", "", "CA"), kT0 + 20'000).has_value());
  }

  TEST_CASE("after the cool-off a region is judged only on what came after it") {
    LimitSettings s = NoLimits();
    s.pumping = PumpingSettings{true, 5, 0.2, 10 * kMinute};
    Harness h(s);
    for (int i = 0; i < 5; ++i)
      h.Admit(Subject("u" + std::to_string(i)), kT0 + i * 1000);
    REQUIRE(h.Admit(Subject("x"), kT0 + 10'000).has_value());

    TimeMs after = kT0 + 10'000 + 10 * kMinute;
    CHECK_FALSE(h.Admit(Subject("y"), after).has_value());
    CHECK_FALSE(h.Admit(Subject("z"), after + 1).has_value());
  }

  TEST_CASE("a region that converts is not suspended") {
    LimitSettings s = NoLimits();
    s.pumping = PumpingSettings{true, 5, 0.2, kHour};
    Harness h(s);
    for (int i = 0; i < 5; ++i)
      h.Admit(Subject("u" + std::to_string(i)), kT0 + i * 1000);

    h.Approve("u0", "US", kT0 + 6000);

    // 1 approval in 5 sends is exactly the minimum conversion...
    CHECK_FALSE(h.Admit(Subject("v0"), kT0 + 7000).has_value());
    // ...and 1 in 6 falls below it.
    std::optional<Refusal> below = h.Admit(Subject("v1"), kT0 + 8000);
    REQUIRE(below.has_value());
    CHECK(below->limit == "region_suspended");
  }

  TEST_CASE("the pumping guard ignores regions below the floor and can be switched off") {
    LimitSettings low = NoLimits();
    low.pumping = PumpingSettings{true, 10, 0.5, kHour};
    Harness h(low);
    for (int i = 0; i < 10; ++i) {
      CHECK_FALSE(h.Admit(Subject("u" + std::to_string(i)), kT0 + i).has_value());
    }

    LimitSettings off = NoLimits();
    off.pumping = PumpingSettings{false, 1, 1.0, kHour};
    Harness g(off);
    for (int i = 0; i < 10; ++i) {
      CHECK_FALSE(g.Admit(Subject("u" + std::to_string(i)), kT0 + i).has_value());
    }
  }

  TEST_CASE("the pumping guard looks at the last hour only") {
    LimitSettings s = NoLimits();
    s.pumping = PumpingSettings{true, 5, 0.2, kHour};
    Harness h(s);
    for (int i = 0; i < 5; ++i)
      h.Admit(Subject("u" + std::to_string(i)), kT0 + i * 1000);

    CHECK_FALSE(h.Admit(Subject("late"), kT0 + kHour + 2 * kMinute).has_value());
  }

  TEST_CASE("Prune drops events no rule can look at, and all events of scopes without rules") {
    LimitSettings s = NoLimits();
    s.user_sends = {{100, kMinute}};
    Harness h(s);
    h.Admit(Subject(), kT0);
    h.Admit(Subject(), kT0 + 30'000);
    MustTransact(*h.store, [&](StoreTx& tx) { return tx.AddLimitEvent("ip_sends", "x", kT0); });

    h.Prune(kT0 + kMinute);

    CHECK(h.Events("user_sends") == 1);
    CHECK(h.Events("ip_sends") == 0);
  }

}  // TEST_SUITE
