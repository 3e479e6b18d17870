// Abuse limits through the real binary: phone validation before anything is counted or
// sent, the send limits per phone, user, client IP and region, the user's failure budget
// across challenges, the resend cooldown, the SMS-pumping guard, exempt numbers, and that
// all of it holds across a restart and under concurrent requests.

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "integration/parallel.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The first column of every row of `sql`, read from the sidecar's database while it runs.
std::vector<std::string> SqlColumn(const SidecarProcess& sidecar, const std::string& sql) {
  std::vector<std::string> values;
  for (const std::vector<std::string>& row : SqlReader(sidecar.database()).Rows(sql))
    values.push_back(row.at(0));
  return values;
}

long long SqlCount(const SidecarProcess& sidecar, const std::string& sql) {
  return SqlReader(sidecar.database()).Int(sql);
}

// Audit rows of refusals by `limit`.
long long RefusalRows(const SidecarProcess& sidecar, const std::string& limit,
                      const std::string& event = "create") {
  return SqlCount(sidecar,
                  "SELECT count(*) FROM audit_events WHERE outcome = 'refused' AND "
                  "event = '" +
                      event + "' AND detail LIKE 'limit=" + limit + " %'");
}

HttpReply Create(httplib::Client& client, const std::string& user, const nlohmann::json& phone,
                 const std::string& client_ip = "") {
  nlohmann::json body = {{"user", user}, {"phone", phone}};
  if (!client_ip.empty()) body["client_ip"] = client_ip;
  return PostJson(client, "/v1/challenges", body);
}

// Waits until the challenge's latest delivery has left the queue: a resend while it is
// still queued is folded into it and never reaches the cooldown.
void WaitUntilSent(const SidecarProcess& sidecar, httplib::Client& client, const std::string& id) {
  sidecar.WaitForSms(id);
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
}

// Every line of `text` that holds all of `parts`.
std::vector<std::string> LinesWith(const std::string& text, const std::vector<std::string>& parts) {
  std::vector<std::string> found;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    bool all = true;
    for (const std::string& part : parts)
      all = all && line.find(part) != std::string::npos;
    if (all) found.push_back(line);
    start = end + 1;
  }
  return found;
}

TEST_CASE("four spellings of one number share its phone_sends limit and all go to its E.164 form") {
  SidecarProcess sidecar(WithLimits({{"phone_sends", RateRules({"3/15m"})}, {"user_sends", "[]"}}));
  httplib::Client client = sidecar.client();

  const std::vector<std::string> spellings = {"+1 206 555 0100", "+1-206-555-0100",
                                              "(206) 555-0100", "+12065550100 "};
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 3; ++i) {
    HttpReply created = Create(client, "user" + std::to_string(i), spellings[i]);
    INFO("spelling \"", spellings[i], "\": ", created.describe());
    REQUIRE(created.status == 202);
    ids.push_back(created.str("challenge_id"));
  }
  HttpReply fourth = Create(client, "user3", spellings[3]);
  INFO("spelling \"", spellings[3], "\"");
  CheckRefusal(fourth, "phone_sends", 15 * 60);
  CheckProblem(VerifyByUser(client, "user3", "123456"), 404, "no_challenge");
  CHECK(RefusalRows(sidecar, "phone_sends") == 1);

  for (const std::string& id : ids)
    sidecar.WaitForSms(id);
  std::vector<SmsRecord> sms = sidecar.AllSms();
  CHECK(sms.size() == 3);
  for (const SmsRecord& record : sms)
    CHECK(record.to == kAlicePhone);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM challenges") == 3);
  CHECK(SqlCount(sidecar, "SELECT count(DISTINCT phone) FROM challenges") == 1);
}

TEST_CASE("invalid phone numbers are 400 invalid_phone before anything is made, counted or sent") {
  // Every send limit at one, so a single counted send would refuse the valid create below.
  SidecarProcess sidecar(WithLimits({{"user_sends", RateRules({"1/15m"})},
                                     {"phone_sends", RateRules({"1/15m"})},
                                     {"region_sends", RateRules({"1/1h"})},
                                     {"global_sends", RateRules({"1/1m"})}}));
  httplib::Client client = sidecar.client();

  const std::vector<nlohmann::json> invalid = {nullptr, "", "abc", "+1", "12", "+1 900 555 0100"};
  for (const nlohmann::json& phone : invalid) {
    HttpReply reply = Create(client, "alice", phone);
    INFO("phone ", phone.dump());
    CheckProblem(reply, 400, "invalid_phone");
    CHECK(reply.str("field") == "phone");
    CHECK(reply.header("Retry-After").empty());
  }

  CHECK(ReadFileBytes(sidecar.sms_path()).empty());
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM challenges") == 0);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM deliveries") == 0);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM limit_events") == 0);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM region_counts") == 0);
  CheckProblem(VerifyByUser(client, "alice", "123456"), 404, "no_challenge");

  // Nothing was counted: the one send each limit allows is still there.
  std::string id = CreateChallenge(client, "alice");
  sidecar.WaitForSms(id);
  // The worker sends oldest first, so anything queued by the invalid requests would be out.
  std::vector<SmsRecord> sms = sidecar.AllSms();
  REQUIRE(sms.size() == 1);
  CHECK(sms[0].challenge_id == id);
  CHECK(sms[0].to == kAlicePhone);

  // And the limits are live: the next create is refused.
  CheckRefusal(Create(client, "bob", kAlicePhone), "phone_sends", 15 * 60);
}

TEST_CASE("a number of a region that is not allowed is 403 region_not_allowed") {
  const std::string french_mobile = "+33 6 12 34 56 78";
  {
    SidecarProcess sidecar;  // only the default region, US
    httplib::Client client = sidecar.client();
    HttpReply refused = Create(client, "alice", french_mobile);
    CheckProblem(refused, 403, "region_not_allowed");
    CHECK(refused.str("field") == "phone");
    CHECK(SqlCount(sidecar, "SELECT count(*) FROM challenges") == 0);
    CHECK(SqlCount(sidecar, "SELECT count(*) FROM limit_events") == 0);

    // US numbers are still served, and only they reached the provider.
    std::string id = CreateChallenge(client, "alice");
    sidecar.WaitForSms(id);
    std::vector<SmsRecord> sms = sidecar.AllSms();
    REQUIRE(sms.size() == 1);
    CHECK(sms[0].to == kAlicePhone);
  }
  {
    SidecarProcess sidecar(WithConfig("[phone]\nallowed_regions = [\"US\", \"FR\"]\n"));
    httplib::Client client = sidecar.client();
    std::string id = CreateChallenge(client, "alice", french_mobile);
    std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 1);
    CHECK(sms[0].to == "+33612345678");
    CHECK(SqlColumn(sidecar, "SELECT region FROM challenges WHERE id = '" + id + "'") ==
          std::vector<std::string>{"FR"});
    CHECK(VerifyById(client, id, sms[0].code).str("status") == "approved");
    // US stays allowed next to FR.
    CreateChallenge(client, "bob");
  }
}

TEST_CASE(
    "20 wrong codes across challenges spend the user's failure budget and then even the right code "
    "is locked") {
  SidecarOptions options = LimitsOff("[code]\nmax_attempts = 5\n");
  options.limits = {{"user_failures", RateRules({"10/1h"})}};
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();

  int denied = 0;
  int budget_locked = 0;
  for (int round = 0; round < 4; ++round) {
    std::string id = CreateChallenge(client, "alice");
    std::string code = sidecar.WaitForSms(id);
    for (int i = 0; i < 5; ++i) {
      HttpReply reply = VerifyById(client, id, WrongCode(code));
      INFO("round ", round, " attempt ", i, ": ", reply.describe());
      REQUIRE(reply.status == 200);
      if (reply.str("status") == "denied") {
        ++denied;
        CHECK(budget_locked == 0);  // once the budget is spent it stays spent
      } else {
        CHECK(reply.str("status") == "locked");
        CHECK(reply.str("reason") == "user_failures");
        ++budget_locked;
      }
    }
  }
  CHECK(denied == 10);
  CHECK(budget_locked == 10);

  // A fresh challenge with the right code: locked by the budget, without a compare.
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  HttpReply locked = VerifyById(client, id, code);
  INFO("right code: ", locked.describe());
  CHECK(locked.status == 200);
  CHECK(locked.str("status") == "locked");
  CHECK(locked.str("reason") == "user_failures");
  CHECK(locked.str("challenge_id") == id);
  long long retry_after = locked.integer("retry_after");
  CHECK(retry_after > 3500);  // the oldest of the ten failures frees a slot in about an hour
  CHECK(retry_after <= 3600);
  CHECK(locked.header("Retry-After") == std::to_string(retry_after));
  CHECK(VerifyByUser(client, "alice", code).str("reason") == "user_failures");

  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.str("status") == "pending");
  CHECK(view.integer("attempts_remaining") == 5);
  CHECK(RefusalRows(sidecar, "user_failures", "verify") == 12);

  // The budget is the user's: another user on the same phone is not affected.
  std::string bob = CreateChallenge(client, "bob");
  CHECK(VerifyById(client, bob, sidecar.WaitForSms(bob)).str("status") == "approved");
}

TEST_CASE(
    "three wrong, a new challenge, three wrong, repeated, stops at the default budget of 10") {
  // Only the send limits are relaxed; user_failures keeps its default, 10 an hour.
  SidecarProcess sidecar(WithLimits({{"user_sends", "[]"}, {"phone_sends", "[]"}}));
  httplib::Client client = sidecar.client();

  int denied = 0;
  int rounds = 0;
  std::string last_id;
  std::string last_code;
  bool stopped = false;
  while (!stopped && rounds < 8) {
    ++rounds;
    last_id = CreateChallenge(client, "alice");
    last_code = sidecar.WaitForSms(last_id);
    for (int i = 0; i < 3 && !stopped; ++i) {
      HttpReply reply = VerifyById(client, last_id, WrongCode(last_code));
      INFO("round ", rounds, " attempt ", i, ": ", reply.describe());
      REQUIRE(reply.status == 200);
      if (reply.str("status") == "denied") {
        ++denied;
        CHECK(reply.integer("attempts_remaining") == 4 - i);
      } else {
        CHECK(reply.str("status") == "locked");
        CHECK(reply.str("reason") == "user_failures");
        CHECK(reply.integer("retry_after") > 0);
        stopped = true;
      }
    }
  }
  CHECK(stopped);
  CHECK(denied == 10);
  CHECK(rounds == 4);  // 3 + 3 + 3 + 1
  CHECK(VerifyById(client, last_id, last_code).str("status") == "locked");
  CHECK(VerifyByUser(client, "alice", last_code).str("reason") == "user_failures");
  CHECK(Get(client, ChallengePath(last_id)).integer("attempts_remaining") == 4);
}

TEST_CASE("send limits survive a restart") {
  SidecarProcess sidecar(WithLimits({{"phone_sends", RateRules({"2/15m"})}}));
  httplib::Client client = sidecar.client();
  CreateChallenge(client, "alice");
  CreateChallenge(client, "bob");

  sidecar.Restart();
  httplib::Client again = sidecar.client();
  CheckRefusal(Create(again, "carol", kAlicePhone), "phone_sends", 15 * 60);
  CHECK(RefusalRows(sidecar, "phone_sends") == 1);
  // Other numbers are unaffected.
  CreateChallenge(again, "carol", "+12065550101");
}

TEST_CASE("20 parallel creates for one phone admit exactly phone_sends of them") {
  SidecarProcess sidecar(WithLimits({{"phone_sends", RateRules({"5/15m"})}}));
  std::vector<HttpReply> replies = InParallel(sidecar, 20, [](httplib::Client& c, int i) {
    return Create(c, "user" + std::to_string(i), kAlicePhone);
  });

  int accepted = 0;
  int refused = 0;
  std::set<std::string> ids;
  for (const HttpReply& reply : replies) {
    INFO("reply: ", reply.describe());
    if (reply.status == 202) {
      ++accepted;
      ids.insert(reply.str("challenge_id"));
    } else {
      CheckRefusal(reply, "phone_sends", 15 * 60);
      ++refused;
    }
  }
  CHECK(accepted == 5);
  CHECK(refused == 15);
  CHECK(ids.size() == 5);

  for (const std::string& id : ids)
    sidecar.WaitForSms(id);
  CHECK(sidecar.AllSms().size() == 5);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM challenges") == 5);
  CHECK(RefusalRows(sidecar, "phone_sends") == 15);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM limit_events WHERE scope = 'phone_sends'") == 5);
}

TEST_CASE("a resend right after the send is 429 resend_cooldown with Retry-After") {
  SidecarProcess sidecar;  // the default cooldown, 30 s
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  WaitUntilSent(sidecar, client, id);

  HttpReply refused = PostRaw(client, ChallengePath(id) + "/resend", "");
  CheckRefusal(refused, "resend_cooldown", 30);
  CHECK(RefusalRows(sidecar, "resend_cooldown", "resend") == 1);
  CHECK(sidecar.SmsFor(id).size() == 1);
  CHECK(StatusOf(client, id) == "pending");  // the refusal ends nothing
}

TEST_CASE("with a 1s resend cooldown a resend is accepted once the cooldown has passed") {
  SidecarProcess sidecar(WithLimits({{"resend_cooldown", "\"1s\""}}));
  httplib::Client client = sidecar.client();
  auto before_create = SteadyClock::now();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  WaitUntilSent(sidecar, client, id);

  auto since_create = [&] {
    return std::chrono::duration_cast<Millis>(SteadyClock::now() - before_create);
  };
  Millis first_try_at = since_create();
  HttpReply first = PostRaw(client, ChallengePath(id) + "/resend", "");
  INFO("first resend ", first_try_at.count(), " ms after the create: ", first.describe());
  // Well inside the second it must be refused (a slow machine may have used it up).
  if (first_try_at < Millis(800)) CheckRefusal(first, "resend_cooldown", 1);

  HttpReply accepted =
      first.status == 202 ? first : ResendWhenAllowed(client, id, "", Millis(5000));
  Millis accepted_at = since_create();
  INFO("accepted ", accepted_at.count(), " ms after the create: ", accepted.describe());
  CHECK(accepted.status == 202);
  CHECK(accepted_at >= Millis(950));  // not before the cooldown (clocks may differ by ms)
  CHECK(accepted_at < Millis(4000));
  std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 2);
  CHECK(sms.size() == 2);
  CHECK(sms[1].code == code);
}

TEST_CASE(
    "a region whose sends are never verified is suspended and comes back after the cool-off") {
  SidecarProcess sidecar(WithLimits(
      {{"pumping.floor", "3"}, {"pumping.min_conversion", "0.5"}, {"pumping.cool_off", "\"2s\""}}));
  httplib::Client client = sidecar.client();
  for (int i = 0; i < 3; ++i) {
    CreateChallenge(client, "user" + std::to_string(i), "+1206555010" + std::to_string(i));
  }

  HttpReply suspended = Create(client, "user3", "+12065550103");
  CheckRefusal(suspended, "region_suspended", 2);
  CHECK(suspended.integer("retry_after") == 2);
  CHECK(SqlCount(sidecar,
                 "SELECT count(*) FROM audit_events WHERE event = 'region_suspend' "
                 "AND detail LIKE 'region=US %'") == 1);
  CHECK(RefusalRows(sidecar, "region_suspended") == 1);
  std::vector<std::string> warnings =
      LinesWith(sidecar.stderr_text(), {"level=warn", "subsystem=limits", "region=US"});
  INFO("stderr:\n", sidecar.stderr_text());
  CHECK(warnings.size() == 1);

  // While suspended, every number of the region is refused; the suspension is not renewed.
  HttpReply still = Create(client, "user4", "+12065550104");
  CheckRefusal(still, "region_suspended", 2);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM audit_events WHERE event = 'region_suspend'") == 1);

  // After the cool-off the region is judged only on what came after it.
  HttpReply after;
  auto started = SteadyClock::now();
  bool back = PollUntil(
      [&] {
        after = Create(client, "user4", "+12065550104");
        return after.status != 429 || after.str("code") != "region_suspended";
      },
      Millis(6000), Millis(100));
  INFO("after the cool-off: ", after.describe());
  CHECK(back);
  CHECK(after.status == 202);
  CHECK(std::chrono::duration_cast<Millis>(SteadyClock::now() - started) < Millis(4000));
  sidecar.WaitForSms(after.str("challenge_id"));
  CHECK(sidecar.AllSms().size() == 4);
}

TEST_CASE("after an hour-long suspension ends, the sends that follow are judged at once") {
  // The default cool-off of an hour cannot be waited for, so the suspension is written
  // into the database as if it had been set an hour ago and ended a moment ago.
  SidecarProcess sidecar(WithLimits({{"pumping.floor", "3"}, {"pumping.min_conversion", "0.5"}}));
  httplib::Client client = sidecar.client();
  long long until = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() -
                    1;
  ExecSql(sidecar.database(),
          "INSERT INTO region_suspensions (region, since, until) VALUES ('US', " +
              std::to_string(until - 3'600'000) + ", " + std::to_string(until) + ")");

  // The suspension is over...
  for (int i = 0; i < 3; ++i) {
    CreateChallenge(client, "user" + std::to_string(i), "+1206555010" + std::to_string(i));
  }
  // ...and three sends without a single approval trip the guard again, in the same minute.
  HttpReply again = Create(client, "user3", "+12065550103");
  INFO("fourth send after the suspension: ", again.describe());
  CheckRefusal(again, "region_suspended", 3600);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM audit_events WHERE event = 'region_suspend'") == 1);
}

TEST_CASE("ip_sends counts creates per client_ip") {
  SidecarProcess sidecar(WithLimits({{"ip_sends", RateRules({"2/1h"})}}));
  httplib::Client client = sidecar.client();

  REQUIRE(Create(client, "u1", kAlicePhone, "203.0.113.7").status == 202);
  REQUIRE(Create(client, "u2", "+12065550101", "203.0.113.7").status == 202);
  CheckRefusal(Create(client, "u3", "+12065550102", "203.0.113.7"), "ip_sends", 3600);
  CHECK(Create(client, "u3", "+12065550102", "198.51.100.9").status == 202);
  CHECK(Create(client, "u4", "+12065550103").status == 202);  // no client_ip: not applied
  CHECK(RefusalRows(sidecar, "ip_sends") == 1);

  // An address is compared in canonical form: these are one IPv6 address.
  REQUIRE(Create(client, "v1", "+12065550104", "2001:db8::7").status == 202);
  REQUIRE(Create(client, "v2", "+12065550105", "2001:DB8:0:0::7").status == 202);
  CheckRefusal(Create(client, "v3", "+12065550106", "2001:0db8::0007"), "ip_sends", 3600);
  CHECK(RefusalRows(sidecar, "ip_sends") == 2);
}

TEST_CASE("a number in exempt_numbers is never refused by phone_sends") {
  SidecarProcess sidecar(WithLimits({{"phone_sends", RateRules({"1/15m"})},
                                     {"user_sends", "[]"},
                                     // listed in another spelling: compared in E.164
                                     {"exempt_numbers", R"(["+1 (206) 555-0100"])"}}));
  httplib::Client client = sidecar.client();

  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(CreateChallenge(client, "user" + std::to_string(i),
                                  i % 2 == 0 ? kAlicePhone : "206-555-0100"));
  }
  for (const std::string& id : ids)
    sidecar.WaitForSms(id);
  std::vector<SmsRecord> sms = sidecar.AllSms();
  CHECK(sms.size() == 6);
  for (const SmsRecord& record : sms)
    CHECK(record.to == kAlicePhone);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM limit_events") == 0);  // nor counted

  // The limit itself is live for any other number.
  CreateChallenge(client, "other", "+12065550101");
  CheckRefusal(Create(client, "other2", "+12065550101"), "phone_sends", 15 * 60);
}

TEST_CASE("a caller that waits the advertised Retry-After is admitted again") {
  SidecarProcess sidecar(WithLimits({{"phone_sends", RateRules({"1/2s"})}, {"user_sends", "[]"}}));
  httplib::Client client = sidecar.client();
  CreateChallenge(client, "alice");

  auto refused_at = SteadyClock::now();
  long long seconds = CheckRefusal(Create(client, "bob", kAlicePhone), "phone_sends", 2);
  REQUIRE(seconds >= 1);

  // Rounded up, never down: by the advertised time (plus what a request takes) it passes.
  HttpReply admitted;
  bool ok = PollUntil(
      [&] {
        admitted = Create(client, "bob", kAlicePhone);
        return admitted.status == 202;
      },
      Millis(seconds * 1000 + 2000), Millis(25));
  auto waited = std::chrono::duration_cast<Millis>(SteadyClock::now() - refused_at);
  INFO("admitted after ", waited.count(), " ms, Retry-After was ", seconds, ": ",
       admitted.describe());
  CHECK(ok);
  CHECK(waited <= Millis(seconds * 1000 + 500));
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM limit_events WHERE scope = 'phone_sends'") <= 1);
}

TEST_CASE("an approval clears the user's failures, and the budget then counts afresh") {
  SidecarProcess sidecar(WithLimits({{"user_sends", "[]"}, {"phone_sends", "[]"}}));
  httplib::Client client = sidecar.client();

  // Nine wrong codes on two challenges, then the right one: still under the budget of 10.
  std::string first = CreateChallenge(client, "alice");
  std::string first_code = sidecar.WaitForSms(first);
  for (int i = 0; i < 5; ++i)
    REQUIRE(VerifyById(client, first, WrongCode(first_code)).str("status") == "denied");
  std::string second = CreateChallenge(client, "alice");
  std::string second_code = sidecar.WaitForSms(second);
  for (int i = 0; i < 4; ++i)
    REQUIRE(VerifyById(client, second, WrongCode(second_code)).str("status") == "denied");
  REQUIRE(VerifyById(client, second, second_code).str("status") == "approved");

  // Ten more wrong codes are compared again; the eleventh is not.
  int denied = 0;
  HttpReply last;
  for (int round = 0; round < 3 && last.str("status") != "locked"; ++round) {
    std::string id = CreateChallenge(client, "alice");
    std::string code = sidecar.WaitForSms(id);
    for (int i = 0; i < 4; ++i) {
      last = VerifyById(client, id, WrongCode(code));
      INFO("round ", round, " attempt ", i, ": ", last.describe());
      if (last.str("status") != "denied") break;
      ++denied;
    }
  }
  CHECK(denied == 10);
  CHECK(last.str("status") == "locked");
  CHECK(last.str("reason") == "user_failures");
}

TEST_CASE("ip_failures refuses wrong codes from one client_ip across users, as a 429") {
  SidecarProcess sidecar(WithLimits({{"ip_failures", RateRules({"3/1h"})}}));
  httplib::Client client = sidecar.client();
  const std::string guesser = "203.0.113.9";
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  auto verify = [&](const std::string& challenge, const std::string& attempt,
                    const std::string& ip) {
    return PostJson(client, ChallengePath(challenge) + "/verify",
                    {{"code", attempt}, {"client_ip", ip}});
  };
  for (int i = 0; i < 3; ++i) {
    HttpReply denied = verify(id, WrongCode(code), guesser);
    INFO("wrong ", i, ": ", denied.describe());
    CHECK(denied.str("status") == "denied");
  }
  CheckRefusal(verify(id, WrongCode(code), guesser), "ip_failures", 3600);
  CheckRefusal(verify(id, code, guesser), "ip_failures", 3600);  // not even the right code
  CHECK(Get(client, ChallengePath(id)).integer("attempts_remaining") == 2);  // no compare

  // Another user's challenge from the same address is refused as well.
  std::string bob = CreateChallenge(client, "bob", "+12065550101");
  std::string bob_code = sidecar.WaitForSms(bob);
  CheckRefusal(verify(bob, bob_code, guesser), "ip_failures", 3600);
  CHECK(RefusalRows(sidecar, "ip_failures", "verify") == 3);

  // From another address the codes are compared as usual.
  HttpReply other = verify(id, WrongCode(code), "198.51.100.1");
  CHECK(other.str("status") == "denied");
  CHECK(other.integer("attempts_remaining") == 1);
  CHECK(verify(id, code, "198.51.100.1").str("status") == "approved");
  CHECK(VerifyById(client, bob, bob_code).str("status") == "approved");  // no client_ip
}

TEST_CASE("a resend is a send: it is refused by phone_sends once the number has had its codes") {
  SidecarProcess sidecar(
      WithLimits({{"phone_sends", RateRules({"1/15m"})}, {"resend_cooldown", "\"1s\""}}));
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  WaitUntilSent(sidecar, client, id);

  HttpReply resend = ResendWhenAllowed(client, id);
  CheckRefusal(resend, "phone_sends", 15 * 60);
  CHECK(RefusalRows(sidecar, "phone_sends", "resend") == 1);
  CHECK(sidecar.SmsFor(id).size() == 1);
  CHECK(StatusOf(client, id) == "pending");
}

TEST_CASE(
    "the pumping guard lets a converting region through and suspends it when conversion drops") {
  SidecarProcess sidecar(WithLimits(
      {{"pumping.floor", "3"}, {"pumping.min_conversion", "0.5"}, {"pumping.cool_off", "\"2s\""}}));
  httplib::Client client = sidecar.client();
  auto phone = [](int i) { return "+1206555010" + std::to_string(i); };

  // Three sends, two of them verified: 2/3 converts.
  for (int i = 0; i < 3; ++i) {
    std::string id = CreateChallenge(client, "user" + std::to_string(i), phone(i));
    std::string code = sidecar.WaitForSms(id);
    if (i < 2) REQUIRE(VerifyById(client, id, code).str("status") == "approved");
  }
  // 2 of 3, then 2 of 4, still at min_conversion: both pass.
  CreateChallenge(client, "user3", phone(3));
  CreateChallenge(client, "user4", phone(4));
  // 2 of 5 is below one half.
  CheckRefusal(Create(client, "user5", phone(5)), "region_suspended", 2);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM audit_events WHERE event = 'region_suspend'") == 1);
}

TEST_CASE("region_sends and global_sends refuse with their own codes") {
  SidecarProcess sidecar(
      WithLimits({{"region_sends", RateRules({"2/1h"})}, {"global_sends", RateRules({"3/1m"})}},
                 "[phone]\nallowed_regions = [\"US\", \"FR\"]\n"));
  httplib::Client client = sidecar.client();
  CreateChallenge(client, "u1", "+12065550101");
  CreateChallenge(client, "u2", "+12065550102");
  CheckRefusal(Create(client, "u3", "+12065550103"), "region_sends", 3600);
  CreateChallenge(client, "f1", "+33612345678");  // another region: the third send overall
  CheckRefusal(Create(client, "f2", "+33612345679"), "global_sends", 60);
  CHECK(RefusalRows(sidecar, "region_sends") == 1);
  CHECK(RefusalRows(sidecar, "global_sends") == 1);
  CHECK(SqlCount(sidecar, "SELECT count(*) FROM challenges") == 3);
}

TEST_CASE("20 parallel wrong codes compare exactly the user's failure budget") {
  // max_attempts 20, so only the failure budget (default 10 an hour) can stop them.
  SidecarProcess sidecar(WithConfig("[code]\nmax_attempts = 20\n"));
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  std::vector<HttpReply> replies = InParallel(sidecar, 20, [&](httplib::Client& c, int i) {
    std::string wrong = std::to_string((std::stoll(code) + 1 + i) % 1'000'000);
    wrong = std::string(6 - wrong.size(), '0') + wrong;
    return VerifyById(c, id, wrong);
  });
  int denied = 0;
  int locked = 0;
  for (const HttpReply& reply : replies) {
    INFO("reply: ", reply.describe());
    CHECK(reply.status == 200);
    if (reply.str("status") == "denied") ++denied;
    if (reply.str("status") == "locked" && reply.str("reason") == "user_failures") ++locked;
  }
  CHECK(denied == 10);
  CHECK(locked == 10);
  CHECK(Get(client, ChallengePath(id)).integer("attempts_remaining") == 10);
  CHECK(VerifyById(client, id, code).str("reason") == "user_failures");
}

}  // namespace
}  // namespace sidecar::testing
