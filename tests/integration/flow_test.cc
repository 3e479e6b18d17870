// The challenge rules end to end: create, deliver, verify, lock, supersede, resend, cancel,
// expire, against the real binary with a real database and the file provider.

#include <chrono>
#include <ctime>

#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

TEST_CASE("create, deliver by SMS, verify by id, then the code is used") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();

  long long before = static_cast<long long>(std::time(nullptr));
  HttpReply created =
      PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  INFO("create: ", created.describe());
  REQUIRE(created.status == 202);
  CHECK(created.content_type.rfind("application/json", 0) == 0);
  std::string id = created.str("challenge_id");
  CHECK(id.rfind("ch_", 0) == 0);
  CHECK(id.size() == 29);
  CHECK(created.str("status") == "pending");
  CHECK(created.integer("expires_in") == 300);
  std::string expires_at = created.str("expires_at");
  CHECK(IsRfc3339Utc(expires_at));
  CHECK(expires_at.back() == 'Z');
  long long expires = ParseRfc3339Seconds(expires_at);
  CHECK(expires >= before + 300 - 2);
  CHECK(expires <= static_cast<long long>(std::time(nullptr)) + 300 + 2);
  CHECK(created.json.find("code") == created.json.end());
  CHECK(created.header("X-Request-Id").size() > 0);

  std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 1);
  REQUIRE(sms.size() == 1);
  CHECK(sms[0].to == kAlicePhone);
  CHECK(IsRfc3339Utc(sms[0].sent_at));
  std::string code = sms[0].code;
  REQUIRE(code.size() == 6);
  CHECK(sms[0].body == code + " is your Example verification code. It expires in 5 minutes.");

  // The delivery is recorded as sent; poll, because the line is written before the row.
  HttpReply view;
  bool sent = PollUntil(
      [&] {
        view = Get(client, ChallengePath(id));
        return view.status == 200 && view.json.contains("delivery") &&
               view.json["delivery"].value("state", "") == "sent";
      },
      Millis(5000));
  INFO("GET: ", view.describe());
  REQUIRE(sent);
  CHECK(view.str("challenge_id") == id);
  CHECK(view.str("status") == "pending");
  CHECK(view.str("user") == "alice");
  CHECK(view.str("phone") == kAlicePhoneMasked);
  CHECK(view.integer("attempts_remaining") == 5);
  CHECK(view.str("expires_at") == expires_at);
  CHECK(IsRfc3339Utc(view.str("created_at")));
  CHECK(view.integer("expires_in") > 290);
  CHECK(view.integer("expires_in") <= 300);
  CHECK(view.json["ended_at"].is_null());
  const nlohmann::json& delivery = view.json["delivery"];
  CHECK(delivery.value("provider", "") == "file");
  CHECK(delivery.value("attempts", -1) == 1);
  CHECK(delivery["error"].is_null());
  REQUIRE(delivery["sent_at"].is_string());
  CHECK(IsRfc3339Utc(delivery["sent_at"].get<std::string>()));
  CHECK(view.json.find("code") == view.json.end());
  CHECK(view.body.find(code) == std::string::npos);
  CHECK(view.body.find(kAlicePhone) == std::string::npos);

  HttpReply approved = VerifyById(client, id, code);
  INFO("verify: ", approved.describe());
  CHECK(approved.status == 200);
  CHECK(approved.str("status") == "approved");
  CHECK(approved.str("challenge_id") == id);

  HttpReply again = VerifyById(client, id, code);
  CHECK(again.status == 200);
  CHECK(again.str("status") == "used");

  HttpReply by_user = VerifyByUser(client, "alice", code);
  CHECK(by_user.status == 200);
  CHECK(by_user.str("status") == "used");
  CHECK(by_user.str("challenge_id") == id);

  HttpReply ended = Get(client, ChallengePath(id));
  CHECK(ended.str("status") == "approved");
  CHECK(ended.integer("attempts_remaining") == 0);
  CHECK(ended.integer("expires_in") == 0);
  CHECK(ended.json["ended_at"].is_string());
  CHECK(ended.body.find(code) == std::string::npos);
}

TEST_CASE("POST /v1/verify approves the user's latest challenge") {
  // A UK mobile, so the regions served must include GB.
  SidecarProcess sidecar(WithConfig("[phone]\nallowed_regions = [\"US\", \"GB\"]\n"));
  httplib::Client client = sidecar.client();

  std::string id = CreateChallenge(client, "bob", kBobUkPhone);
  std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 1);
  CHECK(sms[0].to == kBobUkPhone);
  std::string code = sms[0].code;

  HttpReply wrong = VerifyByUser(client, "bob", WrongCode(code));
  CHECK(wrong.status == 200);
  CHECK(wrong.str("status") == "denied");
  CHECK(wrong.integer("attempts_remaining") == 4);
  CHECK(wrong.str("challenge_id") == id);

  // Another user's code is not bob's.
  CHECK(VerifyByUser(client, "alice", code).str("code") == "no_challenge");

  HttpReply approved = VerifyByUser(client, "bob", code);
  INFO("verify: ", approved.describe());
  CHECK(approved.status == 200);
  CHECK(approved.str("status") == "approved");
  CHECK(approved.str("challenge_id") == id);
  CHECK(VerifyByUser(client, "bob", code).str("status") == "used");
  CHECK(StatusOf(client, id) == "approved");
}

TEST_CASE("phone numbers are normalised to E.164 before sending") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "carol", "+1 (206) 555-0100");
  CHECK(sidecar.WaitForSmsCount(id, 1)[0].to == kAlicePhone);
}

TEST_CASE("wrong codes count down to a lock-out and then even the right code is refused") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  std::string wrong = WrongCode(code);

  for (int remaining = 4; remaining >= 0; --remaining) {
    HttpReply denied = VerifyById(client, id, wrong);
    INFO("remaining ", remaining, ": ", denied.describe());
    CHECK(denied.status == 200);
    CHECK(denied.str("status") == "denied");
    CHECK(denied.integer("attempts_remaining") == remaining);
  }

  HttpReply locked = VerifyById(client, id, code);
  INFO("after lock-out: ", locked.describe());
  CHECK(locked.status == 200);
  CHECK(locked.str("status") == "locked");
  CHECK(locked.json.find("attempts_remaining") == locked.json.end());
  CHECK(VerifyByUser(client, "alice", code).str("status") == "locked");

  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.str("status") == "locked");
  CHECK(view.integer("attempts_remaining") == 0);
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", ""), 409, "challenge_not_pending");
}

TEST_CASE("a configured max_attempts is honoured") {
  SidecarProcess sidecar(WithConfig("[code]\nmax_attempts = 2\n"));
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  CHECK(Get(client, ChallengePath(id)).integer("attempts_remaining") == 2);
  CHECK(VerifyById(client, id, WrongCode(code)).integer("attempts_remaining") == 1);
  CHECK(VerifyById(client, id, WrongCode(code)).integer("attempts_remaining") == 0);
  CHECK(VerifyById(client, id, code).str("status") == "locked");
}

TEST_CASE("a second challenge for the same user supersedes the first") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();

  std::string first = CreateChallenge(client, "alice");
  std::string first_code = sidecar.WaitForSms(first);
  std::string second = CreateChallenge(client, "alice");
  CHECK(second != first);
  std::string second_code = sidecar.WaitForSms(second);

  HttpReply old = VerifyById(client, first, first_code);
  INFO("old challenge: ", old.describe());
  CHECK(old.status == 200);
  CHECK(old.str("status") == "canceled");
  CHECK(old.str("reason") == "superseded");
  CHECK(StatusOf(client, first) == "superseded");

  // Another user's challenge is untouched by alice's.
  std::string other = CreateChallenge(client, "dave");
  std::string other_code = sidecar.WaitForSms(other);

  HttpReply fresh = VerifyById(client, second, second_code);
  INFO("new challenge: ", fresh.describe());
  CHECK(fresh.str("status") == "approved");
  CHECK(VerifyByUser(client, "dave", other_code).str("status") == "approved");

  // Only one SMS was ever sent for each.
  CHECK(sidecar.SmsFor(first).size() == 1);
  CHECK(sidecar.SmsFor(second).size() == 1);
}

TEST_CASE("resend sends the same code again and does not reset attempts") {
  // The shortest cooldown the configuration allows; each resend waits it out by polling.
  SidecarProcess sidecar(WithLimits({{"resend_cooldown", "\"1s\""}}));
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  CHECK(VerifyById(client, id, WrongCode(code)).integer("attempts_remaining") == 4);

  HttpReply resent = ResendWhenAllowed(client, id);
  INFO("resend: ", resent.describe());
  CHECK(resent.status == 202);
  CHECK(resent.str("challenge_id") == id);
  CHECK(resent.str("status") == "pending");

  std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 2);
  REQUIRE(sms.size() == 2);
  CHECK(sms[1].code == code);
  CHECK(sms[1].to == kAlicePhone);
  CHECK(sms[1].body == sms[0].body);

  CHECK(Get(client, ChallengePath(id)).integer("attempts_remaining") == 4);
  CHECK(VerifyById(client, id, WrongCode(code)).integer("attempts_remaining") == 3);

  // A resend body may name the client; anything else is refused.
  HttpReply with_ip = ResendWhenAllowed(client, id, R"({"client_ip":"10.1.2.3"})");
  INFO("resend with client_ip: ", with_ip.describe());
  CHECK(with_ip.status == 202);
  sidecar.WaitForSmsCount(id, 3);

  CHECK(VerifyById(client, id, code).str("status") == "approved");

  HttpReply late = PostRaw(client, ChallengePath(id) + "/resend", "");
  CheckProblem(late, 409, "challenge_not_pending");
  // Nothing more is sent for an ended challenge.
  CHECK(sidecar.SmsFor(id).size() == 3);
}

TEST_CASE("DELETE cancels a pending challenge") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  HttpReply deleted = Delete(client, ChallengePath(id));
  INFO("delete: ", deleted.describe());
  CHECK(deleted.status == 204);
  CHECK(deleted.body.empty());

  HttpReply verify = VerifyById(client, id, code);
  CHECK(verify.status == 200);
  CHECK(verify.str("status") == "canceled");
  CHECK(verify.str("reason") == "canceled");
  CHECK(StatusOf(client, id) == "canceled");

  // Canceling again leaves it as it is; resending is refused.
  CHECK(Delete(client, ChallengePath(id)).status == 204);
  CHECK(StatusOf(client, id) == "canceled");
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", ""), 409, "challenge_not_pending");

  // An approved challenge stays approved when deleted.
  std::string second = CreateChallenge(client, "alice");
  CHECK(VerifyById(client, second, sidecar.WaitForSms(second)).str("status") == "approved");
  CHECK(Delete(client, ChallengePath(second)).status == 204);
  CHECK(StatusOf(client, second) == "approved");
}

TEST_CASE("a challenge expires after the configured ttl") {
  SidecarProcess sidecar(WithConfig("[code]\nttl = \"1s\"\n"));
  httplib::Client client = sidecar.client();

  HttpReply created =
      PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  REQUIRE(created.status == 202);
  CHECK(created.integer("expires_in") == 1);
  std::string id = created.str("challenge_id");
  std::string code = sidecar.WaitForSms(id);
  // Rounded up: the message never promises less time than is left.
  CHECK(sidecar.SmsFor(id)[0].body.find("It expires in 1 minutes.") != std::string::npos);

  bool expired =
      PollUntil([&] { return StatusOf(client, id) == "expired"; }, Millis(5000), Millis(50));
  REQUIRE(expired);
  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.integer("expires_in") == 0);
  CHECK(view.integer("attempts_remaining") == 0);

  HttpReply verify = VerifyById(client, id, code);
  INFO("verify: ", verify.describe());
  CHECK(verify.status == 200);
  CHECK(verify.str("status") == "expired");
  CHECK(VerifyByUser(client, "alice", code).str("status") == "expired");
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", ""), 409, "challenge_not_pending");
  CHECK(StatusOf(client, id) == "expired");
}

TEST_CASE("unknown users and challenge ids are 404 problems") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();

  CheckProblem(VerifyByUser(client, "nobody", "123456"), 404, "no_challenge");

  for (const std::string& id : {UnissuedChallengeId(), std::string("nope"),
                                std::string("ch_0000000000000000000000000"), std::string("..")}) {
    INFO("id ", id);
    CheckProblem(Get(client, ChallengePath(id)), 404, "challenge_not_found");
    CheckProblem(VerifyById(client, id, "123456"), 404, "challenge_not_found");
    CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", ""), 404, "challenge_not_found");
    CheckProblem(Delete(client, ChallengePath(id)), 404, "challenge_not_found");
  }

  // A real challenge does not make other ids or users exist.
  std::string id = CreateChallenge(client, "alice");
  CheckProblem(VerifyByUser(client, "alice2", "123456"), 404, "no_challenge");
  CheckProblem(
      Get(client, ChallengePath(id.substr(0, id.size() - 1) + (id.back() == 'a' ? "b" : "a"))), 404,
      "challenge_not_found");
}

}  // namespace
}  // namespace sidecar::testing
