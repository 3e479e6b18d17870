#include "http/api.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "challenges/challenge_service.h"
#include "common/time_format.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;
using nlohmann::json;

namespace {

constexpr const char* kCreateBody =
    R"({"user": "alice", "phone": "+1 206-555-0100", "client_ip": "192.0.2.9"})";

std::string HeaderOf(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

json JsonOf(const HttpResponse& response) {
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(!body.is_discarded(), response.body);
  return body;
}

// The problem+json answer `response` must be: its status, code and (if given) field.
void CheckProblem(const HttpResponse& response, int status, const std::string& code,
                  const std::string& field = "") {
  CAPTURE(response.body);
  CHECK(response.status == status);
  CHECK(response.content_type == "application/problem+json");
  json body = JsonOf(response);
  CHECK(body["code"] == code);
  CHECK(body["status"] == status);
  if (!field.empty()) CHECK(body["field"] == field);
}

// An Api over the shared service fixture, with US numbers allowed (the default PhoneSettings).
struct Harness : ServiceFixture {
  explicit Harness(LimitSettings limits = NoLimits())
      : ServiceFixture(TestChallengeSettings(), std::move(limits)) {}

  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& body = "",
                    const std::string& content_type = "application/json") {
    return api.Handle(HttpRequest{method, path, content_type, body});
  }

  std::string Create(const std::string& body = kCreateBody) {
    HttpResponse response = Call("POST", "/v1/challenges", body);
    REQUIRE_MESSAGE(response.status == 202, response.body);
    return JsonOf(response)["challenge_id"].get<std::string>();
  }

  HttpResponse VerifyById(const std::string& id, const std::string& code_json) {
    return Call("POST", "/v1/challenges/" + id + "/verify", "{\"code\": " + code_json + "}");
  }

  PhoneValidator phones{PhoneSettings{}};
  Api api{service, phones, clock};
};

std::string Quoted(const std::string& text) {
  return "\"" + text + "\"";
}

const std::string kUnknownId = "ch_" + std::string(26, 'z');

}  // namespace

TEST_SUITE("api") {
  TEST_CASE("GET /healthz answers ok") {
    Harness h;
    HttpResponse response = h.Call("GET", "/healthz");
    CHECK(response.status == 200);
    CHECK(response.content_type == "application/json");
    CHECK(JsonOf(response)["status"] == "ok");
  }

  TEST_CASE("GET /metrics answers the page in the Prometheus text format") {
    struct Page final : MetricsPage {
      std::string Render() override { return "# TYPE demo_total counter\ndemo_total 1\n"; }
    } page;
    Harness h;
    Api api(h.service, h.phones, h.clock, nullptr, page);

    for (const char* method : {"GET", "HEAD"}) {
      HttpResponse response = api.Handle(HttpRequest{method, "/metrics", "", ""});
      CHECK(response.status == 200);
      CHECK(response.content_type == "text/plain; version=0.0.4; charset=utf-8");
      CHECK(response.body == "# TYPE demo_total counter\ndemo_total 1\n");
    }
    // The page is served whatever Content-Type a scraper sends.
    CHECK(api.Handle(HttpRequest{"GET", "/metrics", "text/plain", ""}).status == 200);
    CHECK(api.Handle(HttpRequest{"GET", "/metrics/", "", ""}).status == 404);
  }

  TEST_CASE("RouteOf names the pattern a path is served by, never the id") {
    const std::string id = kUnknownId;
    CHECK(RouteOf("/healthz") == "/healthz");
    CHECK(RouteOf("/metrics") == "/metrics");
    CHECK(RouteOf("/v1/challenges") == "/v1/challenges");
    CHECK(RouteOf("/v1/verify") == "/v1/verify");
    CHECK(RouteOf("/v1/challenges/" + id) == "/v1/challenges/{id}");
    CHECK(RouteOf("/v1/challenges/anything") == "/v1/challenges/{id}");
    CHECK(RouteOf("/v1/challenges/" + id + "/verify") == "/v1/challenges/{id}/verify");
    CHECK(RouteOf("/v1/challenges/" + id + "/resend") == "/v1/challenges/{id}/resend");
    for (const char* path : {"/", "", "/v1", "/v1/challenges/", "/v1/challenges//verify",
                             "/v1/challenges/x/unknown", "/healthz/", "/v1/verify/x", "/METRICS"}) {
      CAPTURE(path);
      CHECK(RouteOf(path) == "other");
    }
  }

  TEST_CASE("every route ApiRoutes lists is answered without 404 or 405") {
    Harness h;
    for (const auto& [route, method] : ApiRoutes()) {
      CAPTURE(route);
      CAPTURE(method);
      std::string path = route;
      std::string::size_type at = path.find("{id}");
      if (at != std::string::npos) path.replace(at, 4, kUnknownId);
      CHECK(RouteOf(path) == route);
      HttpResponse response = h.Call(method, path, method == "POST" ? "{}" : "");
      CHECK(response.status != 405);
      if (route.find("{id}") == std::string::npos) CHECK(response.status != 404);
    }
  }

  TEST_CASE("unknown paths are 404 not_found with the path as instance") {
    Harness h;
    for (const char* path : {"/", "/v1", "/v2/challenges", "/v1/challenges/", "/healthz/",
                             "/v1/challenges/ch_x/unknown", "/v1/challenges/a/b/c",
                             "/v1/challenges//verify", "/V1/challenges", "/v1/verify/x"}) {
      CAPTURE(path);
      HttpResponse response = h.Call("GET", path);
      CheckProblem(response, 404, "not_found");
      CHECK(JsonOf(response)["instance"] == path);
    }
  }

  TEST_CASE("known paths with another method are 405 with Allow") {
    Harness h;
    const std::string id = kUnknownId;
    const struct {
      const char* method;
      std::string path;
      const char* allow;
    } cases[] = {
        {"GET", "/v1/challenges", "POST"},
        {"DELETE", "/v1/challenges", "POST"},
        {"PUT", "/v1/challenges/" + id, "GET, HEAD, DELETE"},
        {"POST", "/v1/challenges/" + id, "GET, HEAD, DELETE"},
        {"GET", "/v1/challenges/" + id + "/verify", "POST"},
        {"DELETE", "/v1/challenges/" + id + "/resend", "POST"},
        {"GET", "/v1/verify", "POST"},
        {"POST", "/healthz", "GET, HEAD"},
        {"POST", "/metrics", "GET, HEAD"},
        {"DELETE", "/metrics", "GET, HEAD"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.method);
      CAPTURE(c.path);
      HttpResponse response = h.Call(c.method, c.path, "{}");
      CheckProblem(response, 405, "method_not_allowed");
      CHECK(HeaderOf(response, "Allow") == c.allow);
    }
  }

  TEST_CASE("bodies that are not application/json are 415 and nothing is created") {
    Harness h;
    for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                             "text/json", "multipart/form-data"}) {
      CAPTURE(type);
      CheckProblem(h.Call("POST", "/v1/challenges", kCreateBody, type), 415,
                   "unsupported_media_type");
      CheckProblem(h.Call("POST", "/v1/verify", R"({"user": "a", "code": "1"})", type), 415,
                   "unsupported_media_type");
    }

    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges") == 0);
  }

  TEST_CASE("application/json is accepted with parameters, any case, or a missing type") {
    Harness h;
    for (const char* type :
         {"application/json", "application/json; charset=utf-8", "Application/JSON", ""}) {
      CAPTURE(type);
      CHECK(h.Call("POST", "/v1/challenges", kCreateBody, type).status == 202);
    }
  }

  TEST_CASE("POST /v1/challenges is 202 with the id, status and an RFC 3339 UTC deadline") {
    Harness h;
    h.clock.Set(1'780'000'000'000);  // 2026-05-28T20:26:40Z

    HttpResponse response = h.Call("POST", "/v1/challenges", kCreateBody);

    CHECK(response.status == 202);
    CHECK(response.content_type == "application/json");
    json body = JsonOf(response);
    CHECK(ChallengeService::LooksLikeChallengeId(body["challenge_id"].get<std::string>()));
    CHECK(body["status"] == "pending");
    CHECK(body["expires_at"] == "2026-05-28T20:31:40Z");
    CHECK(std::regex_match(body["expires_at"].get<std::string>(),
                           std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")));
    CHECK(body["expires_in"] == 300);
    CHECK(response.body.find(h.CodeOf(body["challenge_id"].get<std::string>())) ==
          std::string::npos);
  }

  TEST_CASE("POST /v1/challenges stores the normalised phone and canonical client ip") {
    Harness h;
    std::string id = h.Create(R"({"user": "bob", "phone": "+1 (206) 555.0100",
                                "client_ip": "::FFFF:192.0.2.1"})");

    Challenge c = LoadChallenge(*h.store, id);
    CHECK(c.user == "bob");
    CHECK(c.phone == "+12065550100");
    CHECK(c.region == "US");
    CHECK(c.client_ip == "192.0.2.1");
  }

  TEST_CASE("POST /v1/challenges gives every way of writing one number the same phone") {
    Harness h;
    for (const char* phone :
         {"+1 206 555 0100", "+1-206-555-0100", "(206) 555-0100", "+12065550100 "}) {
      CAPTURE(phone);
      std::string id = h.Create(std::string(R"({"user": "alice", "phone": ")") + phone + "\"}");
      CHECK(LoadChallenge(*h.store, id).phone == "+12065550100");
    }
  }

  TEST_CASE("invalid and premium-rate phones are 400 invalid_phone, other regions 403") {
    Harness h;
    for (const char* phone :
         {"null", "\"\"", "\"abc\"", "\"+1\"", "\"12\"", "\"+1 900 555 0100\""}) {
      CAPTURE(phone);
      CheckProblem(h.Call("POST", "/v1/challenges",
                          std::string(R"({"user": "alice", "phone": )") + phone + "}"),
                   400, "invalid_phone", "phone");
    }
    HttpResponse french =
        h.Call("POST", "/v1/challenges", R"({"user": "alice", "phone": "+33 6 12 34 56 78"})");
    CheckProblem(french, 403, "region_not_allowed", "phone");
    CHECK(HeaderOf(french, "Retry-After").empty());

    SqlReader reader(h.path);
    CHECK(reader.Int("SELECT COUNT(*) FROM challenges") == 0);
  }

  TEST_CASE("a bad create body is a 4xx problem naming the field") {
    Harness h;
    CheckProblem(h.Call("POST", "/v1/challenges", R"({"user": "alice"})"), 400, "invalid_phone",
                 "phone");
    CheckProblem(h.Call("POST", "/v1/challenges", R"({"user": "alice", "phone": "abc"})"), 400,
                 "invalid_phone", "phone");
    CheckProblem(h.Call("POST", "/v1/challenges", R"({"phone": "+12065550100"})"), 400,
                 "missing_field", "user");
    CheckProblem(
        h.Call("POST", "/v1/challenges", R"({"user": "a", "phone": "+12065550100", "x": 1})"), 400,
        "unknown_field", "x");
    CheckProblem(h.Call("POST", "/v1/challenges", "{"), 400, "invalid_json");
    CheckProblem(h.Call("POST", "/v1/challenges", "[]"), 400, "invalid_body");
    CheckProblem(h.Call("POST", "/v1/challenges", std::string(17 * 1024, ' ')), 413,
                 "payload_too_large");
  }

  TEST_CASE("GET /v1/challenges/{id} shows the challenge without its code or hash") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    h.clock.Advance(100'000);

    HttpResponse response = h.Call("GET", "/v1/challenges/" + id);

    CHECK(response.status == 200);
    json body = JsonOf(response);
    CHECK(body["challenge_id"] == id);
    CHECK(body["status"] == "pending");
    CHECK(body["user"] == "alice");
    CHECK(body["phone"] == "+1206*****00");
    CHECK(body["attempts_remaining"] == 5);
    CHECK(body["expires_in"] == 200);
    CHECK(body["ended_at"].is_null());
    CHECK(body["delivery"]["state"] == "queued");
    CHECK(body["delivery"]["provider"] == "console");
    CHECK(body["delivery"]["attempts"] == 0);
    CHECK(body["delivery"]["sent_at"].is_null());

    CHECK_FALSE(body.contains("code"));
    CHECK_FALSE(body.contains("code_hash"));
    CHECK_FALSE(body.contains("sealed_code"));
    CHECK(response.body.find(code) == std::string::npos);
    CHECK(response.body.find("+12065550100") == std::string::npos);
  }

  TEST_CASE("GET shows attempts, the end and the deadline as the challenge moves on") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    h.VerifyById(id, Quoted("x"));
    CHECK(JsonOf(h.Call("GET", "/v1/challenges/" + id))["attempts_remaining"] == 4);

    h.VerifyById(id, Quoted(code));
    json approved = JsonOf(h.Call("GET", "/v1/challenges/" + id));

    CHECK(approved["status"] == "approved");
    CHECK(approved["attempts_remaining"] == 0);
    CHECK(approved["expires_in"] == 0);
    CHECK(approved["ended_at"] == FormatRfc3339(h.clock.Now()));
    CHECK(approved.dump().find(code) == std::string::npos);
  }

  TEST_CASE("GET shows an expired challenge as expired") {
    Harness h;
    std::string id = h.Create();
    h.clock.Advance(300'000);

    json body = JsonOf(h.Call("GET", "/v1/challenges/" + id));
    CHECK(body["status"] == "expired");
    CHECK(body["expires_in"] == 0);
  }

  TEST_CASE("HEAD reads like GET") {
    Harness h;
    std::string id = h.Create();
    CHECK(h.Call("HEAD", "/v1/challenges/" + id).status == 200);
  }

  TEST_CASE("GET of an unknown or malformed id is 404 challenge_not_found") {
    Harness h;
    CheckProblem(h.Call("GET", "/v1/challenges/" + kUnknownId), 404, "challenge_not_found");
    CheckProblem(h.Call("GET", "/v1/challenges/abc"), 404, "challenge_not_found");
    CheckProblem(h.Call("GET", "/v1/challenges/%2e%2e"), 404, "challenge_not_found");
  }

  TEST_CASE("DELETE cancels with 204 and no body") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    HttpResponse response = h.Call("DELETE", "/v1/challenges/" + id);

    CHECK(response.status == 204);
    CHECK(response.body.empty());
    CHECK(response.content_type.empty());
    CHECK(JsonOf(h.Call("GET", "/v1/challenges/" + id))["status"] == "canceled");

    json verify = JsonOf(h.VerifyById(id, Quoted(code)));
    CHECK(verify["status"] == "canceled");
    CHECK(verify["reason"] == "canceled");

    CHECK(h.Call("DELETE", "/v1/challenges/" + id).status == 204);
  }

  TEST_CASE("DELETE takes an optional client_ip body and refuses other fields") {
    Harness h;
    std::string id = h.Create();

    CheckProblem(h.Call("DELETE", "/v1/challenges/" + id, R"({"why": "x"})"), 400, "unknown_field",
                 "why");
    CHECK(LoadChallenge(*h.store, id).status == ChallengeStatus::kPending);

    CHECK(h.Call("DELETE", "/v1/challenges/" + id, R"({"client_ip": "::1"})").status == 204);
    CHECK(AuditOf(h.path, id).back().client_ip == "::1");
  }

  TEST_CASE("DELETE of an unknown challenge is 404") {
    Harness h;
    CheckProblem(h.Call("DELETE", "/v1/challenges/" + kUnknownId), 404, "challenge_not_found");
  }

  TEST_CASE("POST /v1/challenges/{id}/verify answers approved, then used") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    HttpResponse response = h.VerifyById(id, Quoted(code));

    CHECK(response.status == 200);
    json body = JsonOf(response);
    CHECK(body["status"] == "approved");
    CHECK(body["challenge_id"] == id);
    CHECK_FALSE(body.contains("attempts_remaining"));
    CHECK(JsonOf(h.VerifyById(id, Quoted(code)))["status"] == "used");
  }

  TEST_CASE("a wrong code is denied with attempts_remaining, and so is a numeric code") {
    Harness h;
    h.random.ScriptFor(1'000'000,
                       {123456});  // no leading zero, so the code is also a valid JSON number
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    REQUIRE(code == "123456");

    json wrong = JsonOf(h.VerifyById(id, Quoted("654321")));
    CHECK(wrong["status"] == "denied");
    CHECK(wrong["attempts_remaining"] == 4);

    json number = JsonOf(h.VerifyById(id, code));  // the right digits, as a JSON number
    CHECK(number["status"] == "denied");
    CHECK(number["attempts_remaining"] == 3);
  }

  TEST_CASE("a code of the wrong type is 400 invalid_field and costs no attempt") {
    Harness h;
    std::string id = h.Create();

    for (const char* code : {"true", "null", "{}", "[]"}) {
      CAPTURE(code);
      CheckProblem(h.VerifyById(id, code), 400, "invalid_field", "code");
    }
    CHECK(LoadChallenge(*h.store, id).attempts == 0);
  }

  TEST_CASE("verify of an unknown challenge is 404") {
    Harness h;
    CheckProblem(h.VerifyById(kUnknownId, Quoted("123456")), 404, "challenge_not_found");
    CheckProblem(h.VerifyById("nope", Quoted("123456")), 404, "challenge_not_found");
  }

  TEST_CASE("a superseded challenge verifies as canceled with reason superseded") {
    Harness h;
    std::string old_id = h.Create();
    std::string old_code = h.CodeOf(old_id);
    h.Create();

    json body = JsonOf(h.VerifyById(old_id, Quoted(old_code)));
    CHECK(body["status"] == "canceled");
    CHECK(body["reason"] == "superseded");
  }

  TEST_CASE("POST /v1/verify verifies the user's latest challenge") {
    Harness h;
    std::string id = h.Create();
    std::string code = h.CodeOf(id);

    HttpResponse response =
        h.Call("POST", "/v1/verify", R"({"user": "alice", "code": ")" + code + "\"}");

    CHECK(response.status == 200);
    json body = JsonOf(response);
    CHECK(body["status"] == "approved");
    CHECK(body["challenge_id"] == id);
  }

  TEST_CASE("POST /v1/verify for a user without a challenge is 404 no_challenge") {
    Harness h;
    CheckProblem(h.Call("POST", "/v1/verify", R"({"user": "nobody", "code": "123456"})"), 404,
                 "no_challenge");
    CheckProblem(h.Call("POST", "/v1/verify", R"({"code": "123456"})"), 400, "missing_field",
                 "user");
  }

  TEST_CASE("POST /v1/challenges/{id}/resend is 202, and 409 once the challenge ended") {
    Harness h;
    std::string id = h.Create();

    HttpResponse resent = h.Call("POST", "/v1/challenges/" + id + "/resend");
    CHECK(resent.status == 202);
    CHECK(JsonOf(resent)["challenge_id"] == id);
    CHECK(JsonOf(resent)["status"] == "pending");

    h.VerifyById(id, Quoted(h.CodeOf(id)));
    CheckProblem(h.Call("POST", "/v1/challenges/" + id + "/resend"), 409, "challenge_not_pending");
    CheckProblem(h.Call("POST", "/v1/challenges/" + kUnknownId + "/resend"), 404,
                 "challenge_not_found");
    CheckProblem(h.Call("POST", "/v1/challenges/" + id + "/resend", R"({"x": 1})"), 400,
                 "unknown_field", "x");
  }

  TEST_CASE("a create refused by a send limit is 429 with Retry-After and retry_after") {
    LimitSettings limits = NoLimits();
    limits.phone_sends = {{1, 60'000}};
    Harness h(limits);
    h.Create();
    h.clock.Advance(1500);  // the first send leaves the window in 58.5 s

    HttpResponse refused =
        h.Call("POST", "/v1/challenges", R"({"user": "bob", "phone": "+12065550100"})");

    CheckProblem(refused, 429, "phone_sends");
    CHECK(HeaderOf(refused, "Retry-After") == "59");  // seconds, rounded up
    CHECK(JsonOf(refused)["retry_after"] == 59);
    CHECK(JsonOf(refused)["instance"] == "/v1/challenges");

    h.clock.Advance(58'500);
    CHECK(h.Call("POST", "/v1/challenges", R"({"user": "bob", "phone": "+12065550100"})").status ==
          202);
  }

  TEST_CASE("a resend within the cooldown is 429 resend_cooldown with Retry-After") {
    LimitSettings limits = NoLimits();
    limits.resend_cooldown_ms = 30'000;
    Harness h(limits);
    std::string id = h.Create();
    h.MarkSent(id);
    h.clock.Advance(10'000);

    HttpResponse refused = h.Call("POST", "/v1/challenges/" + id + "/resend");

    CheckProblem(refused, 429, "resend_cooldown");
    CHECK(HeaderOf(refused, "Retry-After") == "20");
    CHECK(JsonOf(refused)["retry_after"] == 20);
    h.clock.Advance(20'000);
    CHECK(h.Call("POST", "/v1/challenges/" + id + "/resend").status == 202);
  }

  TEST_CASE("a verify locked by the user's failure budget is 200 locked with Retry-After") {
    LimitSettings limits = NoLimits();
    limits.user_failures = {{2, 3'600'000}};
    Harness h(limits);
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    h.clock.Advance(1000);
    CHECK(JsonOf(h.VerifyById(id, Quoted(WrongCode(code))))["status"] == "denied");
    h.clock.Advance(1000);
    CHECK(JsonOf(h.VerifyById(id, Quoted(WrongCode(code))))["status"] == "denied");
    h.clock.Advance(1000);

    HttpResponse locked = h.VerifyById(id, Quoted(code));  // the right code

    CHECK(locked.status == 200);
    CHECK(locked.content_type == "application/json");
    json body = JsonOf(locked);
    CHECK(body["status"] == "locked");
    CHECK(body["reason"] == "user_failures");
    CHECK(body["challenge_id"] == id);
    CHECK(body["retry_after"] == 3598);  // the first failure leaves the hour in 3598 s
    CHECK(HeaderOf(locked, "Retry-After") == "3598");
    CHECK_FALSE(body.contains("attempts_remaining"));

    // By user, the same answer.
    HttpResponse by_user =
        h.Call("POST", "/v1/verify", R"({"user": "alice", "code": ")" + code + "\"}");
    CHECK(by_user.status == 200);
    CHECK(JsonOf(by_user)["status"] == "locked");
    CHECK(JsonOf(by_user)["reason"] == "user_failures");
    CHECK(HeaderOf(by_user, "Retry-After") == "3598");
  }

  TEST_CASE("a verify refused by the address's failure budget is 429 ip_failures") {
    LimitSettings limits = NoLimits();
    limits.ip_failures = {{1, 60'000}};
    Harness h(limits);
    std::string id = h.Create();
    std::string code = h.CodeOf(id);
    std::string from_ip = R"(, "client_ip": "198.51.100.4"})";
    h.Call("POST", "/v1/challenges/" + id + "/verify",
           "{\"code\": " + Quoted(WrongCode(code)) + from_ip);

    HttpResponse refused =
        h.Call("POST", "/v1/challenges/" + id + "/verify", "{\"code\": " + Quoted(code) + from_ip);

    CheckProblem(refused, 429, "ip_failures");
    CHECK(HeaderOf(refused, "Retry-After") == "60");
    CHECK(JsonOf(refused)["retry_after"] == 60);
    CHECK(JsonOf(h.VerifyById(id, Quoted(code)))["status"] == "approved");  // no address
  }

  TEST_CASE("problems that are not limit refusals carry no Retry-After") {
    Harness h;
    HttpResponse missing = h.Call("GET", "/v1/challenges/" + kUnknownId);
    CheckProblem(missing, 404, "challenge_not_found");
    CHECK(HeaderOf(missing, "Retry-After").empty());
    CHECK_FALSE(JsonOf(missing).contains("retry_after"));

    std::string id = h.Create();
    HttpResponse denied = h.VerifyById(id, Quoted(WrongCode(h.CodeOf(id))));
    CHECK(HeaderOf(denied, "Retry-After").empty());
    CHECK_FALSE(JsonOf(denied).contains("retry_after"));
  }

  TEST_CASE("storage failures are 503 with a generic detail, the message goes to the log") {
    InitSodium();
    FailingStore store(MakeError("storage_unavailable", "disk I/O error in /srv/secret/otp.db"));
    CodeKeys keys(TestMasterKey());
    FakeClock clock;
    FakeRandom random;
    Limiter limiter(NoLimits());
    ChallengeService service(store, keys, clock, random, limiter, ChallengeSettings{}, [] {});
    PhoneValidator phones(PhoneSettings{});
    Api api(service, phones, clock);
    HttpResponse response;

    std::string log = CaptureStderr([&] {
      response = api.Handle(HttpRequest{"POST", "/v1/challenges", "application/json", kCreateBody});
    });

    CheckProblem(response, 503, "storage_unavailable");
    CHECK(HeaderOf(response, "Retry-After") == "1");
    CHECK(response.body.find("/srv/secret") == std::string::npos);
    CHECK(log.find("/srv/secret/otp.db") != std::string::npos);
    CHECK(log.find("level=error") != std::string::npos);
  }

  TEST_CASE("GET /readyz answers ready, or 503 with the readiness check's code") {
    Harness h;
    Status readiness = OkStatus();
    Api api(h.service, h.phones, h.clock, [&] { return readiness; });
    auto call = [&](const std::string& method) {
      return api.Handle(HttpRequest{method, "/readyz", "", ""});
    };

    HttpResponse ready = call("GET");
    CHECK(ready.status == 200);
    CHECK(JsonOf(ready)["status"] == "ready");

    for (const char* code : {"database_unavailable", "database_full", "delivery_worker_stalled"}) {
      CAPTURE(code);
      readiness = MakeError(code, "details for the log only: /srv/otp.db");
      HttpResponse response = call("GET");
      CheckProblem(response, 503, code);
      CHECK(JsonOf(response)["instance"] == "/readyz");
      CHECK(response.body.find("/srv/otp.db") == std::string::npos);
    }

    CheckProblem(call("POST"), 405, "method_not_allowed");
    CHECK(h.Call("GET", "/readyz").status == 200);  // no check given: ready while serving
  }

}  // TEST_SUITE
