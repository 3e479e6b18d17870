#include "challenges/challenge_service.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr const char* kPhone = kTestPhone;
constexpr const char* kIp = "192.0.2.10";

ChallengeSettings Settings(int max_attempts = 5) {
  return TestChallengeSettings(max_attempts);
}

// The shared service fixture with no limits, and the calls these tests make most.
struct Harness : ServiceFixture {
  explicit Harness(ChallengeSettings settings = Settings()) : ServiceFixture(std::move(settings)) {}

  CreatedChallenge Create(const std::string& user = "alice") {
    return MustCreate(UsRequest(user, kIp, "en"));
  }

  VerifyResult Verify(const std::string& id, const std::string& code, bool is_text = true) {
    Result<VerifyResult> result = service.VerifyById(id, CodeAttempt{code, is_text}, kIp);
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    CHECK(result->challenge_id == id);
    return *result;
  }
};

int CountStatus(const std::vector<VerifyResult>& results, VerifyStatus status) {
  return static_cast<int>(std::count_if(results.begin(), results.end(),
                                        [&](const VerifyResult& r) { return r.status == status; }));
}

}  // namespace

TEST_SUITE("challenge_service") {
  TEST_CASE("VerifyStatus names") {
    CHECK(ToString(VerifyStatus::kApproved) == "approved");
    CHECK(ToString(VerifyStatus::kDenied) == "denied");
    CHECK(ToString(VerifyStatus::kExpired) == "expired");
    CHECK(ToString(VerifyStatus::kLocked) == "locked");
    CHECK(ToString(VerifyStatus::kCanceled) == "canceled");
    CHECK(ToString(VerifyStatus::kUsed) == "used");
  }

  TEST_CASE("Create stores a pending challenge with its hash, sealed code and first delivery") {
    Harness h;
    TimeMs now = h.clock.Now();

    CreatedChallenge created = h.Create("alice");

    CHECK(ChallengeService::LooksLikeChallengeId(created.id));
    CHECK(created.created_at == now);
    CHECK(created.expires_at == now + 300'000);

    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.user == "alice");
    CHECK(c.phone == kPhone);
    CHECK(c.region == "US");
    CHECK(c.locale == "en");
    CHECK(c.client_ip == kIp);
    CHECK(c.status == ChallengeStatus::kPending);
    CHECK(c.attempts == 0);
    CHECK(c.max_attempts == 5);
    CHECK(c.expires_at == created.expires_at);
    CHECK_FALSE(c.ended_at.has_value());

    std::string code = h.CodeOf(created.id);
    CHECK(IsWellFormedCode(code, 6));
    CHECK(c.code_hash == HashCode(h.keys, created.id, "alice", code));

    std::optional<Delivery> delivery = LatestDelivery(*h.store, created.id);
    REQUIRE(delivery.has_value());
    CHECK(delivery->state == DeliveryState::kQueued);
    CHECK(delivery->provider == "console");
    CHECK(delivery->next_attempt_at == now);

    CHECK(h.wakes.load() == 1);
  }

  TEST_CASE("Create writes a create audit row with the masked phone and client ip") {
    Harness h;
    CreatedChallenge created = h.Create("alice");

    std::vector<AuditRow> audit = AuditOf(h.path, created.id);
    REQUIRE(audit.size() == 1);
    CHECK(audit[0].event == "create");
    CHECK(audit[0].outcome == "pending");
    CHECK(audit[0].user == "alice");
    CHECK(audit[0].client_ip == kIp);
    CHECK(audit[0].phone_masked == "+1206*****00");
  }

  TEST_CASE("the code is the one drawn from the random source, zero-padded") {
    Harness h;
    h.random.ScriptFor(1'000'000, {4242});

    CreatedChallenge created = h.Create();

    CHECK(h.CodeOf(created.id) == "004242");
    CHECK(h.Verify(created.id, "004242").status == VerifyStatus::kApproved);
  }

  TEST_CASE("the right code is approved once, then the challenge is used") {
    Harness h;
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);

    VerifyResult first = h.Verify(created.id, code);
    CHECK(first.status == VerifyStatus::kApproved);
    CHECK(first.attempts_remaining == 0);

    VerifyResult second = h.Verify(created.id, code);
    CHECK(second.status == VerifyStatus::kUsed);

    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.status == ChallengeStatus::kApproved);
    CHECK_FALSE(c.sealed_code.has_value());
    REQUIRE(c.ended_at.has_value());
    CHECK(*c.ended_at == h.clock.Now());
    CHECK(h.Trail(created.id) ==
          std::vector<std::string>{"create/pending", "verify/approved", "verify/used"});
  }

  TEST_CASE("approval fails the queued delivery so the code is never sent afterwards") {
    Harness h;
    CreatedChallenge created = h.Create();

    h.Verify(created.id, h.CodeOf(created.id));

    std::optional<Delivery> delivery = LatestDelivery(*h.store, created.id);
    REQUIRE(delivery.has_value());
    CHECK(delivery->state == DeliveryState::kFailed);
  }

  TEST_CASE("wrong codes are denied with attempts counting down, then the challenge locks") {
    Harness h(Settings(3));
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);
    std::string wrong = WrongCode(code);

    VerifyResult first = h.Verify(created.id, wrong);
    CHECK(first.status == VerifyStatus::kDenied);
    CHECK(first.attempts_remaining == 2);

    VerifyResult second = h.Verify(created.id, wrong);
    CHECK(second.status == VerifyStatus::kDenied);
    CHECK(second.attempts_remaining == 1);

    VerifyResult last = h.Verify(created.id, wrong);
    CHECK(last.status == VerifyStatus::kDenied);
    CHECK(last.attempts_remaining == 0);

    VerifyResult right = h.Verify(created.id, code);
    CHECK(right.status == VerifyStatus::kLocked);

    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.status == ChallengeStatus::kLocked);
    CHECK(c.attempts == 3);
    CHECK_FALSE(c.sealed_code.has_value());
    CHECK(h.Trail(created.id) == std::vector<std::string>{"create/pending", "verify/denied",
                                                          "verify/denied", "verify/denied",
                                                          "verify/locked"});
  }

  TEST_CASE("a wrong code then the right one is approved while attempts remain") {
    Harness h(Settings(3));
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);

    CHECK(h.Verify(created.id, WrongCode(code)).status == VerifyStatus::kDenied);
    CHECK(h.Verify(created.id, WrongCode(code)).status == VerifyStatus::kDenied);
    CHECK(h.Verify(created.id, code).status == VerifyStatus::kApproved);
  }

  TEST_CASE("malformed codes are denied and count as attempts") {
    Harness h(Settings(5));
    CreatedChallenge created = h.Create();

    int remaining = 5;
    for (const char* bad : {"12345", "abcdef", "", " 12345"}) {
      CAPTURE(bad);
      VerifyResult result = h.Verify(created.id, bad);
      CHECK(result.status == VerifyStatus::kDenied);
      CHECK(result.attempts_remaining == --remaining);
    }
    CHECK(LoadChallenge(*h.store, created.id).attempts == 4);
  }

  TEST_CASE(
      "a code that arrived as a JSON number is a failed attempt, even with the right digits") {
    Harness h(Settings(3));
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);

    VerifyResult number = h.Verify(created.id, "", false);
    CHECK(number.status == VerifyStatus::kDenied);
    CHECK(number.attempts_remaining == 2);

    VerifyResult digits_but_not_text = h.Verify(created.id, code, false);
    CHECK(digits_but_not_text.status == VerifyStatus::kDenied);
    CHECK(digits_but_not_text.attempts_remaining == 1);

    CHECK(LoadChallenge(*h.store, created.id).attempts == 2);
  }

  TEST_CASE("the right code is approved 1 ms before expires_at and expired at expires_at") {
    Harness h;
    CreatedChallenge alice = h.Create("alice");
    CreatedChallenge bob = h.Create("bob");
    REQUIRE(alice.expires_at == bob.expires_at);
    std::string alice_code = h.CodeOf(alice.id);
    std::string bob_code = h.CodeOf(bob.id);

    h.clock.Set(alice.expires_at - 1);
    CHECK(h.Verify(alice.id, alice_code).status == VerifyStatus::kApproved);

    h.clock.Set(bob.expires_at);
    VerifyResult late = h.Verify(bob.id, bob_code);
    CHECK(late.status == VerifyStatus::kExpired);

    Challenge c = LoadChallenge(*h.store, bob.id);
    CHECK(c.status == ChallengeStatus::kExpired);
    CHECK(c.attempts == 0);  // an expired challenge compares no code
    CHECK_FALSE(c.sealed_code.has_value());
    CHECK(h.Verify(bob.id, bob_code).status == VerifyStatus::kExpired);
    CHECK(h.Trail(bob.id) ==
          std::vector<std::string>{"create/pending", "verify/expired", "verify/expired"});
  }

  TEST_CASE("a new challenge for the same user supersedes the pending one") {
    Harness h;
    CreatedChallenge old_one = h.Create("alice");
    std::string old_code = h.CodeOf(old_one.id);
    h.clock.Advance(1000);

    CreatedChallenge new_one = h.Create("alice");

    VerifyResult result = h.Verify(old_one.id, old_code);
    CHECK(result.status == VerifyStatus::kCanceled);
    CHECK(result.reason == "superseded");

    Challenge old_stored = LoadChallenge(*h.store, old_one.id);
    CHECK(old_stored.status == ChallengeStatus::kSuperseded);
    CHECK_FALSE(old_stored.sealed_code.has_value());
    REQUIRE(old_stored.ended_at.has_value());
    CHECK(*old_stored.ended_at == h.clock.Now());

    std::optional<Delivery> old_delivery = LatestDelivery(*h.store, old_one.id);
    REQUIRE(old_delivery.has_value());
    CHECK(old_delivery->state == DeliveryState::kFailed);
    CHECK(old_delivery->error == "superseded");

    CHECK(h.Verify(new_one.id, h.CodeOf(new_one.id)).status == VerifyStatus::kApproved);
  }

  TEST_CASE("superseding is audited on the old challenge, naming the new one") {
    Harness h;
    CreatedChallenge old_one = h.Create("alice");
    CreatedChallenge new_one = h.Create("alice");

    std::vector<AuditRow> audit = AuditOf(h.path, old_one.id);
    REQUIRE(audit.size() == 2);
    CHECK(audit[1].event == "supersede");
    CHECK(audit[1].outcome == "superseded");
    CHECK(audit[1].detail.find(new_one.id) != std::string::npos);
  }

  TEST_CASE("a new challenge supersedes only the same user's challenges") {
    Harness h;
    CreatedChallenge bob = h.Create("bob");

    h.Create("alice");

    CHECK(LoadChallenge(*h.store, bob.id).status == ChallengeStatus::kPending);
    CHECK(h.Verify(bob.id, h.CodeOf(bob.id)).status == VerifyStatus::kApproved);
  }

  TEST_CASE("VerifyByUser verifies against the user's most recent challenge") {
    Harness h;
    CreatedChallenge first = h.Create("alice");
    std::string first_code = h.CodeOf(first.id);
    h.clock.Advance(1);
    CreatedChallenge second = h.Create("alice");
    std::string second_code = h.CodeOf(second.id);
    REQUIRE(first_code != second_code);

    Result<VerifyResult> old_code = h.service.VerifyByUser("alice", {first_code, true}, kIp);
    REQUIRE(old_code.ok());
    CHECK(old_code->challenge_id == second.id);
    CHECK(old_code->status == VerifyStatus::kDenied);

    Result<VerifyResult> right = h.service.VerifyByUser("alice", {second_code, true}, kIp);
    REQUIRE(right.ok());
    CHECK(right->challenge_id == second.id);
    CHECK(right->status == VerifyStatus::kApproved);

    Result<VerifyResult> again = h.service.VerifyByUser("alice", {second_code, true}, kIp);
    REQUIRE(again.ok());
    CHECK(again->status == VerifyStatus::kUsed);
  }

  TEST_CASE("VerifyByUser finds the newest challenge after the clock steps back") {
    Harness h;
    CreatedChallenge first = h.Create("alice");
    h.clock.Advance(-120'000);
    CreatedChallenge second = h.Create("alice");
    REQUIRE(second.created_at < first.created_at);
    std::string second_code = h.CodeOf(second.id);

    Result<VerifyResult> right = h.service.VerifyByUser("alice", {second_code, true}, kIp);

    REQUIRE(right.ok());
    CHECK(right->challenge_id == second.id);
    CHECK(right->status == VerifyStatus::kApproved);
  }

  TEST_CASE("VerifyByUser with no challenge is no_challenge") {
    Harness h;
    h.Create("alice");

    Result<VerifyResult> result = h.service.VerifyByUser("bob", {"123456", true}, kIp);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == "no_challenge");
  }

  TEST_CASE("VerifyById with an unknown or malformed id is challenge_not_found") {
    Harness h;
    h.Create("alice");

    for (const std::string& id : {std::string("ch_") + std::string(26, 'a'), std::string("nope"),
                                  std::string(""), std::string("ch_../../etc/passwd")}) {
      CAPTURE(id);
      Result<VerifyResult> result = h.service.VerifyById(id, {"123456", true}, kIp);
      REQUIRE_FALSE(result.ok());
      CHECK(result.error().code == "challenge_not_found");
    }
  }

  TEST_CASE("Resend coalesces with a queued, unsent delivery") {
    Harness h;
    CreatedChallenge created = h.Create();
    REQUIRE(h.wakes.load() == 1);

    Status resent = h.service.Resend(created.id, kIp);

    CHECK(resent.ok());
    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM deliveries WHERE challenge_id = ?1", {created.id}) == 1);
    CHECK(h.wakes.load() == 1);
    CHECK(h.Trail(created.id) == std::vector<std::string>{"create/pending", "resend/queued"});
  }

  TEST_CASE("Resend queues another delivery of the same code once the first was sent") {
    Harness h(Settings(3));
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);
    h.MarkSent(created.id);
    CHECK(h.Verify(created.id, WrongCode(code)).status == VerifyStatus::kDenied);
    h.clock.Advance(30'000);

    Status resent = h.service.Resend(created.id, kIp);

    REQUIRE(resent.ok());
    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM deliveries WHERE challenge_id = ?1", {created.id}) == 2);
    std::optional<Delivery> latest = LatestDelivery(*h.store, created.id);
    CHECK(latest->state == DeliveryState::kQueued);
    CHECK(latest->next_attempt_at == h.clock.Now());
    CHECK(h.wakes.load() == 2);

    CHECK(h.CodeOf(created.id) == code);
    CHECK(LoadChallenge(*h.store, created.id).attempts == 1);  // attempts are not reset
    CHECK(h.Verify(created.id, WrongCode(code)).attempts_remaining == 1);
  }

  TEST_CASE("Resend refuses a challenge that has ended") {
    Harness h;

    SUBCASE("approved") {
      CreatedChallenge created = h.Create();
      h.Verify(created.id, h.CodeOf(created.id));
      Status resent = h.service.Resend(created.id, kIp);
      REQUIRE_FALSE(resent.ok());
      CHECK(resent.error().code == "challenge_not_pending");
      CHECK(LatestDelivery(*h.store, created.id)->state == DeliveryState::kFailed);
      CHECK(h.Trail(created.id).back() == "resend/refused");
    }
    SUBCASE("canceled") {
      CreatedChallenge created = h.Create();
      REQUIRE(h.service.Cancel(created.id, kIp).ok());
      Status resent = h.service.Resend(created.id, kIp);
      REQUIRE_FALSE(resent.ok());
      CHECK(resent.error().code == "challenge_not_pending");
    }
    SUBCASE("expired, which ends it for good") {
      CreatedChallenge created = h.Create();
      h.clock.Set(created.expires_at);
      Status resent = h.service.Resend(created.id, kIp);
      REQUIRE_FALSE(resent.ok());
      CHECK(resent.error().code == "challenge_not_pending");
      Challenge c = LoadChallenge(*h.store, created.id);
      CHECK(c.status == ChallengeStatus::kExpired);
      CHECK_FALSE(c.sealed_code.has_value());
    }

    CHECK(h.wakes.load() == 1);
  }

  TEST_CASE("Resend of an unknown challenge is challenge_not_found") {
    Harness h;
    Status resent = h.service.Resend("ch_" + std::string(26, 'b'), kIp);
    REQUIRE_FALSE(resent.ok());
    CHECK(resent.error().code == "challenge_not_found");

    Status malformed = h.service.Resend("bogus", kIp);
    REQUIRE_FALSE(malformed.ok());
    CHECK(malformed.error().code == "challenge_not_found");
  }

  TEST_CASE("Cancel ends a pending challenge as canceled") {
    Harness h;
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);

    REQUIRE(h.service.Cancel(created.id, kIp).ok());

    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.status == ChallengeStatus::kCanceled);
    CHECK_FALSE(c.sealed_code.has_value());
    CHECK(LatestDelivery(*h.store, created.id)->state == DeliveryState::kFailed);
    CHECK(LatestDelivery(*h.store, created.id)->error == "canceled");

    VerifyResult result = h.Verify(created.id, code);
    CHECK(result.status == VerifyStatus::kCanceled);
    CHECK(result.reason == "canceled");
    CHECK(h.Trail(created.id) ==
          std::vector<std::string>{"create/pending", "cancel/canceled", "verify/canceled"});
  }

  TEST_CASE("Cancel of a challenge that already ended leaves it as it is") {
    Harness h;
    CreatedChallenge created = h.Create();
    h.Verify(created.id, h.CodeOf(created.id));
    TimeMs ended_at = *LoadChallenge(*h.store, created.id).ended_at;
    h.clock.Advance(5000);

    Status canceled = h.service.Cancel(created.id, kIp);

    CHECK(canceled.ok());
    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.status == ChallengeStatus::kApproved);
    CHECK(*c.ended_at == ended_at);
    CHECK(h.Trail(created.id).back() == "cancel/unchanged");

    REQUIRE(h.service.Cancel(created.id, kIp).ok());
    CHECK(LoadChallenge(*h.store, created.id).status == ChallengeStatus::kApproved);
  }

  TEST_CASE("Cancel of an unknown challenge is challenge_not_found") {
    Harness h;
    Status canceled = h.service.Cancel("ch_" + std::string(26, 'c'), kIp);
    REQUIRE_FALSE(canceled.ok());
    CHECK(canceled.error().code == "challenge_not_found");
  }

  TEST_CASE("Get shows the challenge and its latest delivery without the hash or sealed code") {
    Harness h;
    CreatedChallenge created = h.Create();

    Result<ChallengeView> view = h.service.Get(created.id);

    REQUIRE(view.ok());
    CHECK(view->challenge.id == created.id);
    CHECK(view->challenge.status == ChallengeStatus::kPending);
    CHECK(view->challenge.code_hash.empty());
    CHECK_FALSE(view->challenge.sealed_code.has_value());
    REQUIRE(view->delivery.has_value());
    CHECK(view->delivery->state == DeliveryState::kQueued);
    CHECK(h.Trail(created.id).size() == 1);  // reads are not audited decisions
  }

  TEST_CASE("Get shows an expired challenge as expired without writing it") {
    Harness h;
    CreatedChallenge created = h.Create();
    h.clock.Set(created.expires_at);

    Result<ChallengeView> view = h.service.Get(created.id);

    REQUIRE(view.ok());
    CHECK(view->challenge.status == ChallengeStatus::kExpired);
    CHECK(LoadChallenge(*h.store, created.id).status == ChallengeStatus::kPending);
  }

  TEST_CASE("Get of an unknown challenge is challenge_not_found") {
    Harness h;
    Result<ChallengeView> view = h.service.Get("ch_" + std::string(26, 'd'));
    REQUIRE_FALSE(view.ok());
    CHECK(view.error().code == "challenge_not_found");
  }

  TEST_CASE("ExpireDue ends pending challenges past their deadline and erases their codes") {
    Harness h;
    CreatedChallenge early = h.Create("alice");
    h.clock.Advance(10'000);
    CreatedChallenge late = h.Create("bob");
    CreatedChallenge approved = h.Create("carol");
    h.Verify(approved.id, h.CodeOf(approved.id));
    h.clock.Set(early.expires_at);

    Result<int> first = h.service.ExpireDue(100);

    REQUIRE(first.ok());
    CHECK(*first == 1);
    Challenge e = LoadChallenge(*h.store, early.id);
    CHECK(e.status == ChallengeStatus::kExpired);
    CHECK_FALSE(e.sealed_code.has_value());
    CHECK(LatestDelivery(*h.store, early.id)->state == DeliveryState::kFailed);
    CHECK(LatestDelivery(*h.store, early.id)->error == "expired");
    CHECK(h.Trail(early.id).back() == "expire/expired");

    CHECK(LoadChallenge(*h.store, late.id).status == ChallengeStatus::kPending);
    CHECK(LoadChallenge(*h.store, approved.id).status == ChallengeStatus::kApproved);

    h.clock.Set(late.expires_at);
    Result<int> second = h.service.ExpireDue(100);
    REQUIRE(second.ok());
    CHECK(*second == 1);
    CHECK(*h.service.ExpireDue(100) == 0);
  }

  TEST_CASE("ExpireDue ends at most `limit` challenges per call") {
    Harness h;
    for (const char* user : {"a", "b", "c"})
      h.Create(user);
    h.clock.Advance(300'000);

    CHECK(*h.service.ExpireDue(2) == 2);
    CHECK(*h.service.ExpireDue(2) == 1);
    CHECK(*h.service.ExpireDue(2) == 0);
  }

  TEST_CASE("every decision writes one audit row, and none holds the code or the full phone") {
    Harness h(Settings(2));
    CreatedChallenge a = h.Create("alice");
    std::string code = h.CodeOf(a.id);
    h.Verify(a.id, WrongCode(code));
    REQUIRE(h.service.Resend(a.id, kIp).ok());
    h.Verify(a.id, code);
    REQUIRE(h.service.Cancel(a.id, kIp).ok());
    Status refused = h.service.Resend(a.id, kIp);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "challenge_not_pending");

    CHECK(h.Trail(a.id) == std::vector<std::string>{"create/pending", "verify/denied",
                                                    "resend/queued", "verify/approved",
                                                    "cancel/unchanged", "resend/refused"});

    for (const AuditRow& row : AuditOf(h.path, a.id)) {
      for (const std::string& column :
           {row.event, row.outcome, row.user, row.client_ip, row.phone_masked, row.detail}) {
        CHECK(column.find(code) == std::string::npos);
        CHECK(column.find(kPhone) == std::string::npos);
      }
      CHECK(row.phone_masked == "+1206*****00");
    }
  }

  TEST_CASE("20 concurrent verifies of the right code approve exactly once") {
    Harness h;
    CreatedChallenge created = h.Create();
    std::string code = h.CodeOf(created.id);

    std::vector<VerifyResult> results = RunTogether<VerifyResult>(20, [&](int) {
      return h.service.VerifyById(created.id, {code, true}, kIp);
    });

    CHECK(CountStatus(results, VerifyStatus::kApproved) == 1);
    CHECK(CountStatus(results, VerifyStatus::kUsed) == 19);
    CHECK(LoadChallenge(*h.store, created.id).attempts == 1);
  }

  TEST_CASE("20 concurrent wrong codes with max_attempts 5 compare exactly 5 codes") {
    Harness h(Settings(5));
    CreatedChallenge created = h.Create();
    std::string wrong = WrongCode(h.CodeOf(created.id));

    std::vector<VerifyResult> results = RunTogether<VerifyResult>(20, [&](int) {
      return h.service.VerifyById(created.id, {wrong, true}, kIp);
    });

    CHECK(CountStatus(results, VerifyStatus::kDenied) == 5);
    CHECK(CountStatus(results, VerifyStatus::kLocked) == 15);
    std::vector<int> remaining;
    for (const VerifyResult& r : results) {
      if (r.status == VerifyStatus::kDenied) remaining.push_back(r.attempts_remaining);
    }
    std::sort(remaining.begin(), remaining.end());
    CHECK(remaining == std::vector<int>{0, 1, 2, 3, 4});
    Challenge c = LoadChallenge(*h.store, created.id);
    CHECK(c.attempts == 5);
    CHECK(c.status == ChallengeStatus::kLocked);
  }

  TEST_CASE("concurrent creates for one user leave exactly one pending challenge") {
    Harness h;
    // Real randomness: FakeRandom's counter, shared by threads drawing at once, could hand
    // two challenges the same id.
    SodiumRandom random;
    ChallengeService service = h.ServiceWith(random);

    std::vector<CreatedChallenge> created =
        RunTogether<CreatedChallenge>(10, [&](int) { return service.Create(UsRequest("alice")); });

    CHECK(created.size() == 10);

    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges WHERE user = 'alice'") == 10);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges WHERE user = 'alice' AND status = "
                     "'pending'") == 1);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges WHERE sealed_code IS NOT NULL") == 1);
  }

  TEST_CASE("storage errors are passed on and nothing is queued") {
    InitSodium();
    FailingStore store;
    CodeKeys keys(TestMasterKey());
    FakeClock clock;
    FakeRandom random;
    Limiter limiter(NoLimits());
    int wakes = 0;
    RecordingMetrics metrics;
    ChallengeService service(
        store, keys, clock, random, limiter, Settings(), [&] { ++wakes; }, metrics);

    Result<CreatedChallenge> created = service.Create(UsRequest("alice"));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "storage_unavailable");
    CHECK(wakes == 0);

    Result<VerifyResult> verified = service.VerifyById("ch_" + std::string(26, 'a'), {}, "");
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.error().code == "storage_unavailable");
    CHECK(service.Cancel("ch_" + std::string(26, 'a'), "").error().code == "storage_unavailable");
    CHECK_FALSE(service.ExpireDue(10).ok());
    CHECK(metrics.events().empty());  // a failed transaction is no outcome and no answer
  }

  TEST_CASE("metrics: creates, supersedes, verify answers and the outcomes they end in") {
    Harness h(Settings(2));
    std::string first = h.Create("alice").id;
    std::string second = h.Create("alice").id;
    std::string code = h.CodeOf(second);

    h.Verify(first, h.CodeOf(second));  // canceled: it was superseded
    h.Verify(second, WrongCode(code));
    h.Verify(second, code);
    h.Verify(second, code);  // used

    std::string locked = h.Create("bob").id;
    h.Verify(locked, WrongCode(h.CodeOf(locked)));
    h.Verify(locked, WrongCode(h.CodeOf(locked)));  // the last attempt locks it
    h.Verify(locked, "000000");

    CHECK(h.metrics.events() == std::map<std::string, int>{{"challenge:created", 3},
                                                           {"challenge:superseded", 1},
                                                           {"challenge:approved", 1},
                                                           {"challenge:locked", 1},
                                                           {"verification:canceled", 1},
                                                           {"verification:denied", 3},
                                                           {"verification:approved", 1},
                                                           {"verification:used", 1},
                                                           {"verification:locked", 1}});
  }

  TEST_CASE("metrics: unknown challenges and users are no_challenge answers") {
    Harness h;
    CHECK_FALSE(h.service.VerifyById("not-an-id", {"123456", true}, kIp).ok());
    CHECK_FALSE(h.service.VerifyById("ch_" + std::string(26, 'a'), {"123456", true}, kIp).ok());
    CHECK_FALSE(h.service.VerifyByUser("nobody", {"123456", true}, kIp).ok());

    CHECK(h.metrics.events() == std::map<std::string, int>{{"verification:no_challenge", 3}});
  }

  TEST_CASE("metrics: cancel and expiry count the challenges they end, once") {
    Harness h;
    std::string canceled = h.Create("alice").id;
    std::string expiring = h.Create("bob").id;
    std::string resent = h.Create("carol").id;
    REQUIRE(h.service.Cancel(canceled, kIp).ok());
    REQUIRE(h.service.Cancel(canceled, kIp).ok());  // already ended: unchanged

    h.clock.Advance(300'000);
    CHECK(h.service.Resend(resent, kIp).error().code == "challenge_not_pending");
    Result<int> swept = h.service.ExpireDue(10);
    REQUIRE(swept.ok());
    CHECK(*swept == 1);
    CHECK(h.service.ExpireDue(10).ok());
    CHECK(h.Verify(expiring, "000000").status == VerifyStatus::kExpired);

    std::map<std::string, int> events = h.metrics.events();
    CHECK(events["challenge:canceled"] == 1);
    CHECK(events["challenge:expired"] == 2);
    CHECK(events["verification:expired"] == 1);
  }

}  // TEST_SUITE
