// The abuse limits as the service applies them: a real ChallengeService on a real
// SqliteStore, the FakeClock moved by hand. limiter_test.cc covers the Limiter alone.

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "challenges/challenge_service.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr std::int64_t kSecond = 1000;
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;

// "+12065550100" + i: distinct US numbers, all masked alike.
std::string UsPhone(int i) {
  std::string digits = std::to_string(100 + i);
  return "+1206555" + std::string(4 - digits.size(), '0') + digits;
}

CreateRequest Request(std::string user, std::string phone, std::string client_ip,
                      std::string region = "US") {
  CreateRequest request = UsRequest(std::move(user), std::move(client_ip), "", std::move(phone));
  request.region = std::move(region);
  return request;
}

// Codes that stay valid for two hours, so that an hour's window can pass while one
// challenge is still pending.
ChallengeSettings LongLived(int max_attempts) {
  ChallengeSettings settings = TestChallengeSettings(max_attempts);
  settings.ttl_ms = 2 * kHour;
  return settings;
}

struct Harness : ServiceFixture {
  explicit Harness(LimitSettings limits, int max_attempts = 5, const std::string& db_path = "")
      : ServiceFixture(LongLived(max_attempts), std::move(limits), db_path) {}

  Result<CreatedChallenge> Create(const CreateRequest& request) { return service.Create(request); }

  CreatedChallenge MustCreateFor(const std::string& user) { return MustCreate(UsRequest(user)); }

  VerifyResult MustVerify(const std::string& id, const std::string& code,
                          const std::string& client_ip = "") {
    Result<VerifyResult> result = service.VerifyById(id, CodeAttempt{code, true}, client_ip);
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().code));
    return *result;
  }

  std::int64_t Count(const std::string& sql, const std::vector<std::string>& params = {}) {
    SqlReader reader(path);
    return reader.Int(sql, params);
  }

  std::int64_t LimitEvents(const std::string& scope) {
    return Count("SELECT COUNT(*) FROM limit_events WHERE scope = ?1", {scope});
  }

  std::int64_t Challenges() { return Count("SELECT COUNT(*) FROM challenges"); }

  // `count` creates one second apart for users u<first>... on the US numbers UsPhone(first)...,
  // none of them verified; each must be admitted.
  void SendUnverified(int count, int first = 0) {
    for (int i = first; i < first + count; ++i) {
      clock.Advance(kSecond);
      Result<CreatedChallenge> sent = Create(Request("u" + std::to_string(i), UsPhone(i), ""));
      REQUIRE_MESSAGE(sent.ok(), "send " << i << ": " << (sent.ok() ? "" : sent.error().code));
    }
  }
};

template <typename T>
void CheckRefused(const Result<T>& result, const std::string& limit, std::int64_t retry_after_ms) {
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == limit);
  CHECK(result.error().retry_after_ms == retry_after_ms);
}

void CheckLocked(const VerifyResult& result, std::int64_t retry_after_ms) {
  CHECK(result.status == VerifyStatus::kLocked);
  CHECK(result.reason == "user_failures");
  CHECK(result.retry_after_ms == retry_after_ms);
  CHECK(result.attempts_remaining == 0);
}

// The newest audit row with outcome "refused" is for `event` and names the limit and wait.
void CheckRefusalAudited(Harness& h, const std::string& event, const std::string& limit,
                         std::int64_t retry_after_ms) {
  std::vector<AuditRow> refused = AuditWithOutcome(h.path, "refused");
  REQUIRE_FALSE(refused.empty());
  const AuditRow& row = refused.back();
  CAPTURE(row.detail);
  CHECK(row.event == event);
  CHECK(row.detail.find("limit=" + limit) != std::string::npos);
  CHECK(row.detail.find("retry_after_ms=" + std::to_string(retry_after_ms)) != std::string::npos);
}

// One send limit of 3 a minute, switched on alone. `request(i)` is the i-th request: all
// share the limit's key and differ in every other one; `other_key` has another key.
void CheckSendLimitEdge(const std::string& limit, std::vector<RateRule> LimitSettings::*rules,
                        const std::function<CreateRequest(int)>& request,
                        const std::function<CreateRequest()>& other_key) {
  LimitSettings limits = NoLimits();
  limits.*rules = {{3, kMinute}};
  Harness h(limits);
  TimeMs t0 = h.clock.Now();

  for (int i = 0; i < 3; ++i) {
    h.clock.Set(t0 + i * 10 * kSecond);
    Result<CreatedChallenge> allowed = h.Create(request(i));
    REQUIRE_MESSAGE(allowed.ok(), (allowed.ok() ? "" : allowed.error().code));
  }
  REQUIRE(h.wakes.load() == 3);

  // The 4th: refused until the send at t0 leaves the minute.
  h.clock.Set(t0 + 30 * kSecond);
  CheckRefused(h.Create(request(3)), limit, 30 * kSecond);
  CheckRefusalAudited(h, "create", limit, 30 * kSecond);
  if (other_key) CHECK(h.Create(other_key()).ok());

  h.clock.Set(t0 + kMinute - 1);
  CheckRefused(h.Create(request(4)), limit, 1);

  std::int64_t stored = h.Challenges();
  int wakes = h.wakes.load();
  h.clock.Set(t0 + kMinute);
  CHECK(h.Create(request(5)).ok());
  CHECK(h.Challenges() == stored + 1);
  CHECK(h.wakes.load() == wakes + 1);

  // The refusals were not counted: the next one waits for the send at t0 + 10 s.
  CheckRefused(h.Create(request(6)), limit, 10 * kSecond);
  CHECK(AuditWithOutcome(h.path, "refused").size() == 3);
  CHECK(h.Challenges() == stored + 1);  // refused creates store no challenge
  CHECK(h.wakes.load() == wakes + 1);   // and queue nothing
}

}  // namespace

TEST_SUITE("challenge_limits") {
  TEST_CASE("user_sends admits the Nth send, refuses the N+1th until the oldest leaves") {
    CheckSendLimitEdge(
        "user_sends", &LimitSettings::user_sends,
        [](int i) { return Request("alice", UsPhone(i), "192.0.2." + std::to_string(i + 1)); },
        [] { return Request("bob", UsPhone(50), "192.0.2.50"); });
  }

  TEST_CASE("phone_sends admits the Nth send, refuses the N+1th until the oldest leaves") {
    CheckSendLimitEdge(
        "phone_sends", &LimitSettings::phone_sends,
        [](int i) {
          return Request("u" + std::to_string(i), kTestPhone, "192.0.2." + std::to_string(i + 1));
        },
        [] { return Request("bob", UsPhone(50), "192.0.2.50"); });
  }

  TEST_CASE("ip_sends admits the Nth send, refuses the N+1th until the oldest leaves") {
    CheckSendLimitEdge(
        "ip_sends", &LimitSettings::ip_sends,
        [](int i) { return Request("u" + std::to_string(i), UsPhone(i), "198.51.100.7"); },
        [] { return Request("bob", UsPhone(50), "198.51.100.8"); });
  }

  TEST_CASE("region_sends admits the Nth send, refuses the N+1th until the oldest leaves") {
    CheckSendLimitEdge(
        "region_sends", &LimitSettings::region_sends,
        [](int i) {
          return Request("u" + std::to_string(i), UsPhone(i), "192.0.2." + std::to_string(i + 1));
        },
        [] { return Request("bob", "+14165550100", "192.0.2.50", "CA"); });
  }

  TEST_CASE("global_sends admits the Nth send, refuses the N+1th until the oldest leaves") {
    CheckSendLimitEdge(
        "global_sends", &LimitSettings::global_sends,
        [](int i) {
          return i % 2 == 0 ? Request("u" + std::to_string(i), UsPhone(i),
                                      "192.0.2." + std::to_string(i + 1))
                            : Request("u" + std::to_string(i), "+1416555010" + std::to_string(i),
                                      "192.0.2." + std::to_string(i + 1), "CA");
        },
        nullptr);
  }

  TEST_CASE("a refused create leaves the user's pending challenge as it was") {
    LimitSettings limits = NoLimits();
    limits.user_sends = {{1, kHour}};
    Harness h(limits);
    CreatedChallenge first = h.MustCreateFor("alice");
    std::string code = h.CodeOf(first.id);

    CheckRefused(h.Create(UsRequest("alice")), "user_sends", kHour);

    Challenge still = LoadChallenge(*h.store, first.id);
    CHECK(still.status == ChallengeStatus::kPending);
    CHECK(h.Latest(first.id).state == DeliveryState::kQueued);
    CHECK(h.Trail(first.id) == std::vector<std::string>{"create/pending"});
    CHECK(h.MustVerify(first.id, code).status == VerifyStatus::kApproved);
  }

  TEST_CASE("ip_sends is not applied to a create without a client ip") {
    LimitSettings limits = NoLimits();
    limits.ip_sends = {{1, kMinute}};
    Harness h(limits);

    for (int i = 0; i < 5; ++i) {
      CHECK(h.Create(Request("u" + std::to_string(i), UsPhone(i), "")).ok());
    }
    CHECK(h.LimitEvents("ip_sends") == 0);

    CHECK(h.Create(Request("v1", UsPhone(10), "192.0.2.1")).ok());
    CheckRefused(h.Create(Request("v2", UsPhone(11), "192.0.2.1")), "ip_sends", kMinute);
    CHECK(h.Create(Request("v3", UsPhone(12), "")).ok());
  }

  TEST_CASE("with 2/1m and 3/1h the minute binds first, then the hour") {
    LimitSettings limits = NoLimits();
    limits.user_sends = {{2, kMinute}, {3, kHour}};
    Harness h(limits);
    TimeMs t0 = h.clock.Now();
    auto send = [&](TimeMs at) {
      h.clock.Set(at);
      return h.Create(UsRequest("alice"));
    };

    REQUIRE(send(t0).ok());
    REQUIRE(send(t0 + kSecond).ok());
    CheckRefused(send(t0 + 2 * kSecond), "user_sends", kMinute - 2 * kSecond);

    REQUIRE(send(t0 + kMinute).ok());  // the minute holds 1, the hour 2
    // The minute holds 1 again, but the hour holds 3: wait for t0 to leave the hour.
    CheckRefused(send(t0 + kMinute + kSecond), "user_sends", kHour - kMinute - kSecond);
    CheckRefused(send(t0 + kHour - 1), "user_sends", 1);

    REQUIRE(send(t0 + kHour).ok());
    CheckRefused(send(t0 + kHour), "user_sends", kSecond);  // t0 + 1 s is the oldest now
  }

  TEST_CASE("with 2/1m and 3/1h both broken the longer wait is reported") {
    LimitSettings limits = NoLimits();
    limits.user_sends = {{2, kMinute}, {3, kHour}};
    Harness h(limits);
    TimeMs t0 = h.clock.Now();
    for (TimeMs at : {t0, t0 + kMinute + kSecond, t0 + kMinute + 2 * kSecond}) {
      h.clock.Set(at);
      REQUIRE(h.Create(UsRequest("alice")).ok());
    }

    // The minute would free up in 58 s, the hour only when t0 leaves it.
    h.clock.Set(t0 + kMinute + 3 * kSecond);
    CheckRefused(h.Create(UsRequest("alice")), "user_sends", kHour - kMinute - 3 * kSecond);
    CheckRefusalAudited(h, "create", "user_sends", kHour - kMinute - 3 * kSecond);

    h.clock.Set(t0 + kHour);
    CHECK(h.Create(UsRequest("alice")).ok());
  }

  TEST_CASE("exempt numbers pass every send limit and are not counted") {
    LimitSettings limits = NoLimits();
    for (auto rules :
         {&LimitSettings::user_sends, &LimitSettings::phone_sends, &LimitSettings::ip_sends,
          &LimitSettings::region_sends, &LimitSettings::global_sends}) {
      limits.*rules = {{1, kMinute}};
    }
    limits.exempt_numbers = {"+12065550199"};
    Harness h(limits);

    for (int i = 0; i < 5; ++i) {
      h.clock.Advance(kSecond);
      CHECK(h.Create(Request("tester", "+12065550199", "192.0.2.1")).ok());
    }
    CHECK(h.Count("SELECT COUNT(*) FROM limit_events") == 0);
    CHECK(h.Count("SELECT COUNT(*) FROM region_counts") == 0);

    // Nothing was counted, so the same user, address and region still have their one send.
    CHECK(h.Create(Request("tester", UsPhone(1), "192.0.2.1")).ok());
    CheckRefused(h.Create(Request("tester", UsPhone(2), "192.0.2.1")), "user_sends", kMinute);
    // The exempt number goes through even now.
    CHECK(h.Create(Request("tester", "+12065550199", "192.0.2.1")).ok());
    CHECK(h.Count("SELECT COUNT(*) FROM limit_events") == 5);
  }

  TEST_CASE("exempt numbers pass a suspended region") {
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 2, 0.5, kHour};
    limits.exempt_numbers = {"+12065550199"};
    Harness h(limits);
    REQUIRE(h.Create(Request("a", UsPhone(1), "")).ok());
    REQUIRE(h.Create(Request("b", UsPhone(2), "")).ok());
    CheckRefused(h.Create(Request("c", UsPhone(3), "")), "region_suspended", kHour);

    CHECK(h.Create(Request("tester", "+12065550199", "")).ok());
    CheckRefused(h.Create(Request("d", UsPhone(4), "")), "region_suspended", kHour);
  }

  TEST_CASE("approvals of exempt numbers do not count towards a region's conversion") {
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 20, 0.2, kHour};
    limits.exempt_numbers = {"+12065550199"};
    Harness h(limits);

    // The operator's test number is verified now and then; its sends are not counted...
    for (int i = 0; i < 4; ++i) {
      h.clock.Advance(kSecond);
      CreatedChallenge test = h.MustCreate(Request("tester", "+12065550199", ""));
      REQUIRE(h.MustVerify(test.id, h.CodeOf(test.id)).status == VerifyStatus::kApproved);
    }
    // ...so neither are its approvals: 20 sends nobody verifies still trip the guard.
    h.SendUnverified(20);
    h.clock.Advance(kSecond);
    CheckRefused(h.Create(Request("u20", UsPhone(20), "")), "region_suspended", kHour);
  }

  TEST_CASE("resend_cooldown refuses a resend within the cooldown and allows it after") {
    LimitSettings limits = NoLimits();
    limits.resend_cooldown_ms = 30 * kSecond;
    Harness h(limits);
    TimeMs t0 = h.clock.Now();
    CreatedChallenge created = h.MustCreateFor("alice");

    // While the first SMS is still queued a resend only joins it: no cooldown, no new SMS.
    REQUIRE(h.service.Resend(created.id, "").ok());
    CHECK(h.Count("SELECT COUNT(*) FROM deliveries") == 1);

    h.MarkSent(created.id);
    h.clock.Set(t0 + 10 * kSecond);
    CheckRefused(h.service.Resend(created.id, "192.0.2.1"), "resend_cooldown", 20 * kSecond);
    CheckRefusalAudited(h, "resend", "resend_cooldown", 20 * kSecond);
    CHECK(AuditWithOutcome(h.path, "refused").back().client_ip == "192.0.2.1");
    h.clock.Set(t0 + 30 * kSecond - 1);
    CheckRefused(h.service.Resend(created.id, ""), "resend_cooldown", 1);
    CHECK(h.Count("SELECT COUNT(*) FROM deliveries") == 1);
    CHECK(h.wakes.load() == 1);

    h.clock.Set(t0 + 30 * kSecond);
    REQUIRE(h.service.Resend(created.id, "").ok());
    CHECK(h.Count("SELECT COUNT(*) FROM deliveries") == 2);
    CHECK(h.wakes.load() == 2);

    // The cooldown runs from the latest SMS.
    h.MarkSent(created.id);
    h.clock.Set(t0 + 59 * kSecond);
    CheckRefused(h.service.Resend(created.id, ""), "resend_cooldown", kSecond);
    CHECK(LoadChallenge(*h.store, created.id).status == ChallengeStatus::kPending);
  }

  TEST_CASE("a resend counts as a send against phone_sends") {
    LimitSettings limits = NoLimits();
    limits.phone_sends = {{2, 15 * kMinute}};
    Harness h(limits);
    TimeMs t0 = h.clock.Now();
    CreatedChallenge created = h.MustCreateFor("alice");
    h.MarkSent(created.id);

    h.clock.Set(t0 + kSecond);
    REQUIRE(h.service.Resend(created.id, "").ok());
    CHECK(h.LimitEvents("phone_sends") == 2);
    h.MarkSent(created.id);

    h.clock.Set(t0 + 2 * kSecond);
    CheckRefused(h.service.Resend(created.id, ""), "phone_sends", 15 * kMinute - 2 * kSecond);
    CheckRefusalAudited(h, "resend", "phone_sends", 15 * kMinute - 2 * kSecond);
    CheckRefused(h.Create(UsRequest("bob")), "phone_sends", 15 * kMinute - 2 * kSecond);
    CHECK(h.Count("SELECT COUNT(*) FROM deliveries") == 2);
    CHECK(h.Create(Request("bob", UsPhone(5), "")).ok());
  }

  TEST_CASE("the user's failure budget counts wrong codes across challenges") {
    LimitSettings limits = NoLimits();
    limits.user_failures = {{10, kHour}};
    Harness h(limits, 5);

    // 3 wrong, new challenge, 3 wrong, ...: a new challenge never buys new guesses.
    TimeMs first_failure = 0;
    int failures = 0;
    int challenges = 0;
    while (failures < 10) {
      CreatedChallenge created = h.MustCreateFor("alice");
      ++challenges;
      std::string wrong = WrongCode(h.CodeOf(created.id));
      for (int i = 0; i < 3 && failures < 10; ++i) {
        h.clock.Advance(kSecond);
        VerifyResult denied = h.MustVerify(created.id, wrong);
        CHECK(denied.status == VerifyStatus::kDenied);
        CHECK(denied.attempts_remaining == 4 - i);
        if (failures == 0) first_failure = h.clock.Now();
        ++failures;
      }
    }
    CHECK(challenges == 4);
    CHECK(h.LimitEvents("user_failures") == 10);

    // The 11th verify, on a fresh challenge and with the right code, is not even compared.
    CreatedChallenge fresh = h.MustCreateFor("alice");
    std::string code = h.CodeOf(fresh.id);
    h.clock.Advance(kSecond);
    VerifyResult locked = h.MustVerify(fresh.id, code);
    CheckLocked(locked, first_failure + kHour - h.clock.Now());
    CHECK(locked.retry_after_ms > 0);
    CHECK(locked.challenge_id == fresh.id);
    CheckRefusalAudited(h, "verify", "user_failures", locked.retry_after_ms);

    Result<VerifyResult> by_user = h.service.VerifyByUser("alice", {code, true}, "");
    REQUIRE(by_user.ok());
    CheckLocked(*by_user, first_failure + kHour - h.clock.Now());

    Challenge untouched = LoadChallenge(*h.store, fresh.id);
    CHECK(untouched.attempts == 0);
    CHECK(untouched.status == ChallengeStatus::kPending);
    CHECK(untouched.sealed_code.has_value());
    CHECK(h.LimitEvents("user_failures") == 10);

    h.clock.Set(first_failure + kHour - 1);
    CheckLocked(h.MustVerify(fresh.id, code), 1);

    // Once the first failure leaves the hour, the right code is approved.
    h.clock.Set(first_failure + kHour);
    VerifyResult approved = h.MustVerify(fresh.id, code);
    CHECK(approved.status == VerifyStatus::kApproved);
    CHECK(approved.retry_after_ms == 0);
  }

  TEST_CASE("a success clears the user's earlier failures") {
    LimitSettings limits = NoLimits();
    limits.user_failures = {{10, kHour}};
    Harness h(limits, 5);
    auto fail_across_challenges = [&](int count) {
      for (int done = 0; done < count;) {
        CreatedChallenge created = h.MustCreateFor("alice");
        std::string wrong = WrongCode(h.CodeOf(created.id));
        for (int i = 0; i < 3 && done < count; ++i, ++done) {
          h.clock.Advance(kSecond);
          CHECK(h.MustVerify(created.id, wrong).status == VerifyStatus::kDenied);
        }
      }
    };

    fail_across_challenges(9);
    CreatedChallenge good = h.MustCreateFor("alice");
    CHECK(h.MustVerify(good.id, h.CodeOf(good.id)).status == VerifyStatus::kApproved);
    CHECK(h.LimitEvents("user_failures") == 0);

    // A fresh budget of 10: 9 more and a 10th are still compared, the 11th is not.
    fail_across_challenges(10);
    CreatedChallenge last = h.MustCreateFor("alice");
    h.clock.Advance(kSecond);
    VerifyResult locked = h.MustVerify(last.id, h.CodeOf(last.id));
    CHECK(locked.status == VerifyStatus::kLocked);
    CHECK(locked.reason == "user_failures");
  }

  TEST_CASE("20 wrong codes then the right one is locked with the default limits") {
    Harness h(LimitSettings{}, 5);  // user_failures 10/1h, as shipped
    CreatedChallenge current = h.MustCreateFor("alice");
    std::string code = h.CodeOf(current.id);
    std::vector<std::string> answers;

    while (answers.size() < 20) {
      h.clock.Advance(kSecond);
      Result<VerifyResult> r = h.service.VerifyByUser("alice", {WrongCode(code), true}, "");
      REQUIRE(r.ok());
      if (r->status == VerifyStatus::kLocked && r->reason.empty()) {
        // This challenge used its 5 attempts: the caller starts another.
        current = h.MustCreateFor("alice");
        code = h.CodeOf(current.id);
        continue;
      }
      answers.push_back(std::string(ToString(r->status)) + "/" + r->reason);
    }

    std::vector<std::string> expected(10, "denied/");
    expected.resize(20, "locked/user_failures");
    CHECK(answers == expected);
    CHECK(h.Count("SELECT SUM(attempts) FROM challenges") == 10);

    Result<VerifyResult> right = h.service.VerifyByUser("alice", {code, true}, "");
    REQUIRE(right.ok());
    CHECK(right->status == VerifyStatus::kLocked);
    CHECK(right->reason == "user_failures");
    CHECK(right->retry_after_ms > 0);
    CHECK(LoadChallenge(*h.store, current.id).status == ChallengeStatus::kPending);
  }

  TEST_CASE("100 consecutive failures lock the user even with user_failures 100000/1h") {
    LimitSettings limits = NoLimits();
    limits.user_failures = {{100'000, kHour}};
    Harness h(limits, 5);

    TimeMs last_failure = 0;
    for (int c = 0; c < kMaxConsecutiveFailures / 5; ++c) {
      CreatedChallenge created = h.MustCreateFor("alice");
      std::string wrong = WrongCode(h.CodeOf(created.id));
      for (int i = 0; i < 5; ++i) {
        h.clock.Advance(kSecond);
        VerifyResult denied = h.MustVerify(created.id, wrong);
        REQUIRE(denied.status == VerifyStatus::kDenied);  // the 100th is still compared
        last_failure = h.clock.Now();
      }
    }
    CHECK(h.LimitEvents("user_failures") == kMaxConsecutiveFailures);

    CreatedChallenge fresh = h.MustCreateFor("alice");
    std::string code = h.CodeOf(fresh.id);
    h.clock.Advance(kSecond);
    CheckLocked(h.MustVerify(fresh.id, code), last_failure + kHour - h.clock.Now());
    CHECK(LoadChallenge(*h.store, fresh.id).attempts == 0);
    Result<CreatedChallenge> other = h.Create(UsRequest("bob"));
    REQUIRE(other.ok());
    CHECK(h.MustVerify(other->id, h.CodeOf(other->id)).status == VerifyStatus::kApproved);

    h.clock.Set(last_failure + kHour);
    CHECK(h.MustVerify(fresh.id, code).status == VerifyStatus::kApproved);
  }

  TEST_CASE("a verify refused by ip_failures is an Error, not a VerifyResult") {
    LimitSettings limits = NoLimits();
    limits.ip_failures = {{3, kHour}};
    Harness h(limits, 5);
    const std::string ip = "198.51.100.9";

    TimeMs first_failure = 0;
    for (const char* user : {"a", "b", "c"}) {
      CreatedChallenge created = h.MustCreateFor(user);
      h.clock.Advance(kSecond);
      if (first_failure == 0) first_failure = h.clock.Now();
      CHECK(h.MustVerify(created.id, WrongCode(h.CodeOf(created.id)), ip).status ==
            VerifyStatus::kDenied);
    }

    CreatedChallenge d = h.MustCreateFor("d");
    std::string code = h.CodeOf(d.id);
    h.clock.Advance(kSecond);
    Result<VerifyResult> refused = h.service.VerifyById(d.id, {code, true}, ip);
    CheckRefused(refused, "ip_failures", first_failure + kHour - h.clock.Now());
    CheckRefusalAudited(h, "verify", "ip_failures", first_failure + kHour - h.clock.Now());
    CheckRefused(h.service.VerifyByUser("d", {code, true}, ip), "ip_failures",
                 first_failure + kHour - h.clock.Now());
    CHECK(LoadChallenge(*h.store, d.id).attempts == 0);

    // The user did nothing wrong: from another address the code is approved.
    CHECK(h.MustVerify(d.id, code, "198.51.100.10").status == VerifyStatus::kApproved);
  }

  TEST_CASE("the pumping guard suspends a region whose sends do not convert") {
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 20, 0.2, kHour};
    Harness h(limits);

    h.SendUnverified(20);
    h.clock.Advance(kSecond);
    TimeMs tripped_at = h.clock.Now();
    CheckRefused(h.Create(Request("u20", UsPhone(20), "")), "region_suspended", kHour);
    CheckRefusalAudited(h, "create", "region_suspended", kHour);
    std::vector<AuditRow> suspended = AuditWithOutcome(h.path, "suspended");
    REQUIRE(suspended.size() == 1);
    CHECK(suspended[0].event == "region_suspend");
    CHECK(suspended[0].detail.find("region=US") != std::string::npos);
    CHECK(suspended[0].detail.find("cool_off_ms=3600000") != std::string::npos);
    CHECK(h.Challenges() == 20);

    // Other regions are not affected.
    CHECK(h.Create(Request("ca", "+14165550100", "", "CA")).ok());

    h.clock.Set(tripped_at + 30 * kMinute);
    CheckRefused(h.Create(Request("u21", UsPhone(21), "")), "region_suspended", 30 * kMinute);
    h.clock.Set(tripped_at + kHour - 1);
    CheckRefused(h.Create(Request("u22", UsPhone(22), "")), "region_suspended", 1);
    CHECK(AuditWithOutcome(h.path, "suspended").size() == 1);  // suspended once

    h.clock.Set(tripped_at + kHour);
    CHECK(h.Create(Request("u23", UsPhone(23), "")).ok());
  }

  TEST_CASE("after the cool-off a region that still does not convert is suspended again") {
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 20, 0.2, kHour};
    Harness h(limits);
    h.SendUnverified(20);
    h.clock.Advance(kSecond);
    REQUIRE(h.Create(Request("x", UsPhone(20), "")).error().code == "region_suspended");
    h.clock.Advance(kHour);

    // Judged afresh: 20 more sends that nobody verifies, then the guard trips again.
    h.SendUnverified(20, 30);
    h.clock.Advance(kSecond);
    CheckRefused(h.Create(Request("y", UsPhone(60), "")), "region_suspended", kHour);
    CHECK(AuditWithOutcome(h.path, "suspended").size() == 2);
  }

  TEST_CASE("a region whose codes are used is never suspended") {
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 20, 0.2, kHour};

    SUBCASE("1 approval in 5 sends is the minimum conversion") {
      Harness h(limits);
      for (int i = 0; i < 100; ++i) {
        h.clock.Advance(kSecond);
        Result<CreatedChallenge> sent = h.Create(Request("u" + std::to_string(i), UsPhone(i), ""));
        REQUIRE_MESSAGE(sent.ok(), "send " << i << ": " << (sent.ok() ? "" : sent.error().code));
        if (i % 5 == 0) {
          REQUIRE(h.MustVerify(sent->id, h.CodeOf(sent->id)).status == VerifyStatus::kApproved);
        }
      }
      CHECK(h.Count("SELECT COUNT(*) FROM region_suspensions") == 0);
    }
    SUBCASE("1 in 6 is below it") {
      Harness h(limits);
      bool suspended = false;
      for (int i = 0; i < 100 && !suspended; ++i) {
        h.clock.Advance(kSecond);
        Result<CreatedChallenge> sent = h.Create(Request("u" + std::to_string(i), UsPhone(i), ""));
        if (!sent.ok()) {
          CHECK(sent.error().code == "region_suspended");
          CHECK(i >= 20);
          suspended = true;
        } else if (i % 6 == 0) {
          REQUIRE(h.MustVerify(sent->id, h.CodeOf(sent->id)).status == VerifyStatus::kApproved);
        }
      }
      CHECK(suspended);
    }
  }

  TEST_CASE("20 concurrent creates for one phone with phone_sends 5/15m create exactly 5") {
    LimitSettings limits = NoLimits();
    limits.phone_sends = {{5, 15 * kMinute}};
    Harness h(limits);
    SodiumRandom random;
    ChallengeService service = h.ServiceWith(random);

    std::vector<Result<CreatedChallenge>> results = RunTogetherResults<CreatedChallenge>(
        20, [&](int i) { return service.Create(UsRequest("user" + std::to_string(i))); });

    int created = 0;
    int refused = 0;
    for (const Result<CreatedChallenge>& result : results) {
      if (result.ok()) {
        ++created;
      } else {
        CAPTURE(result.error().message);
        CHECK(result.error().code == "phone_sends");
        CHECK(result.error().retry_after_ms == 15 * kMinute);
        ++refused;
      }
    }
    CHECK(created == 5);
    CHECK(refused == 15);
    CHECK(h.Challenges() == 5);
    CHECK(h.LimitEvents("phone_sends") == 5);
    CHECK(AuditWithOutcome(h.path, "refused").size() == 15);
  }

  TEST_CASE("send limits and failure budgets survive reopening the store") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    LimitSettings limits = NoLimits();
    limits.phone_sends = {{2, 15 * kMinute}};
    limits.user_failures = {{2, kHour}};
    TimeMs t0 = 0;
    std::string alice_code;
    {
      Harness first(limits, 5, path);
      t0 = first.clock.Now();
      CreatedChallenge alice = first.MustCreateFor("alice");
      alice_code = first.CodeOf(alice.id);
      REQUIRE(first.Create(UsRequest("bob")).ok());
      first.MustVerify(alice.id, WrongCode(alice_code));
      first.MustVerify(alice.id, WrongCode(alice_code));
    }

    Harness second(limits, 5, path);
    second.clock.Set(t0 + kMinute);
    CheckRefused(second.Create(UsRequest("carol")), "phone_sends", 14 * kMinute);
    Result<VerifyResult> locked = second.service.VerifyByUser("alice", {alice_code, true}, "");
    REQUIRE(locked.ok());
    CheckLocked(*locked, kHour - kMinute);

    second.clock.Set(t0 + kHour);
    CHECK(second.service.VerifyByUser("alice", {alice_code, true}, "")->status ==
          VerifyStatus::kApproved);
  }

  TEST_CASE("a region suspension survives reopening the store") {
    TempDir dir;
    std::string path = dir.File("otp.db");
    LimitSettings limits = NoLimits();
    limits.pumping = PumpingSettings{true, 2, 0.5, kHour};
    TimeMs tripped_at = 0;
    {
      Harness first(limits, 5, path);
      REQUIRE(first.Create(Request("a", UsPhone(1), "")).ok());
      REQUIRE(first.Create(Request("b", UsPhone(2), "")).ok());
      tripped_at = first.clock.Now();
      CheckRefused(first.Create(Request("c", UsPhone(3), "")), "region_suspended", kHour);
    }

    Harness second(limits, 5, path);
    second.clock.Set(tripped_at + 10 * kMinute);
    CheckRefused(second.Create(Request("d", UsPhone(4), "")), "region_suspended", 50 * kMinute);
    second.clock.Set(tripped_at + kHour);
    CHECK(second.Create(Request("e", UsPhone(5), "")).ok());
  }

  TEST_CASE("PruneLimits drops only what no rule can look at any more") {
    LimitSettings limits = NoLimits();
    limits.user_sends = {{2, kMinute}};
    limits.phone_sends = {{2, kHour}};
    Harness h(limits);
    TimeMs t0 = h.clock.Now();
    REQUIRE(h.Create(UsRequest("alice")).ok());
    h.clock.Set(t0 + 30 * kSecond);
    REQUIRE(h.Create(UsRequest("alice")).ok());

    h.clock.Set(t0 + kMinute);
    REQUIRE(h.service.PruneLimits().ok());
    CHECK(h.LimitEvents("user_sends") == 1);   // t0 left the minute
    CHECK(h.LimitEvents("phone_sends") == 2);  // both still in the hour
    CheckRefused(h.Create(UsRequest("bob")), "phone_sends", kHour - kMinute);

    h.clock.Set(t0 + kHour + 30 * kSecond);
    REQUIRE(h.service.PruneLimits().ok());
    CHECK(h.LimitEvents("user_sends") == 0);
    CHECK(h.LimitEvents("phone_sends") == 0);
    CHECK(h.Create(UsRequest("bob")).ok());
  }

  TEST_CASE("every refusal is audited as refused, naming the limit") {
    LimitSettings limits = NoLimits();
    limits.resend_cooldown_ms = 30 * kSecond;
    limits.user_sends = {{1, kHour}};
    limits.phone_sends = {{1, kHour}};
    limits.ip_sends = {{1, kHour}};
    limits.region_sends = {{3, kHour}};
    limits.global_sends = {{4, kHour}};
    limits.user_failures = {{1, kHour}};
    limits.ip_failures = {{1, kHour}};
    Harness h(limits);

    CreatedChallenge alice = h.MustCreate(Request("alice", UsPhone(1), "192.0.2.1"));
    CHECK(h.Create(Request("alice", UsPhone(2), "192.0.2.2")).error().code == "user_sends");
    CHECK(h.Create(Request("bob", UsPhone(1), "192.0.2.2")).error().code == "phone_sends");
    CHECK(h.Create(Request("bob", UsPhone(2), "192.0.2.1")).error().code == "ip_sends");
    CreatedChallenge bob = h.MustCreate(Request("bob", UsPhone(2), "192.0.2.2"));
    h.MustCreate(Request("carol", UsPhone(3), "192.0.2.3"));
    CHECK(h.Create(Request("dave", UsPhone(4), "192.0.2.4")).error().code == "region_sends");
    h.MustCreate(Request("erin", "+14165550100", "192.0.2.5", "CA"));
    CHECK(h.Create(Request("frank", "+14165550101", "192.0.2.6", "CA")).error().code ==
          "global_sends");
    h.MarkSent(alice.id);
    CHECK(h.service.Resend(alice.id, "").error().code == "resend_cooldown");
    h.MustVerify(alice.id, WrongCode(h.CodeOf(alice.id)), "192.0.2.9");
    CHECK(h.MustVerify(alice.id, h.CodeOf(alice.id)).reason == "user_failures");
    CHECK(h.service.VerifyById(bob.id, {h.CodeOf(bob.id), true}, "192.0.2.9").error().code ==
          "ip_failures");

    std::vector<std::string> seen;
    for (const AuditRow& row : AuditWithOutcome(h.path, "refused")) {
      CHECK(row.phone_masked.find("*") != std::string::npos);
      seen.push_back(row.event + " " + row.detail.substr(0, row.detail.find(' ')));
    }
    CHECK(seen ==
          std::vector<std::string>{"create limit=user_sends", "create limit=phone_sends",
                                   "create limit=ip_sends", "create limit=region_sends",
                                   "create limit=global_sends", "resend limit=resend_cooldown",
                                   "verify limit=user_failures", "verify limit=ip_failures"});

    // Each refusal is counted once under its limit; refused creates are challenge outcomes,
    // and a verify answers "locked" (the user's budget) or is "refused" (an address's).
    std::map<std::string, int> events = h.metrics.events();
    for (const char* limit : {"user_sends", "phone_sends", "ip_sends", "region_sends",
                              "global_sends", "resend_cooldown", "user_failures", "ip_failures"}) {
      CAPTURE(limit);
      CHECK(events["refusal:" + std::string(limit)] == 1);
    }
    CHECK(events["challenge:refused"] == 5);
    CHECK(events["challenge:created"] == 4);
    CHECK(events["verification:denied"] == 1);
    CHECK(events["verification:locked"] == 1);
    CHECK(events["verification:refused"] == 1);
  }

}  // TEST_SUITE
