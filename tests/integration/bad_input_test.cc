// Bad input over real HTTP: every one is a 4xx application/problem+json with a stable code,
// never a 5xx, and never costs or grants more than the rules say.

#include <string>
#include <vector>

#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

struct BadBody {
  const char* what;
  std::string body;
  const char* code;
  const char* field;  // "" when the problem names no field
};

std::string LongUser(std::size_t bytes) {
  return std::string(bytes, 'u');
}

TEST_CASE("bad create bodies are 400 problems with stable codes") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();

  std::vector<BadBody> cases = {
      {"malformed JSON", R"({"user":"alice","phone":)", "invalid_json", ""},
      {"not JSON at all", "user=alice&phone=%2B12065550100", "invalid_json", ""},
      {"empty body", "", "invalid_json", ""},
      {"whitespace body", " \n\t ", "invalid_json", ""},
      {"trailing garbage", R"({"user":"alice","phone":"+12065550100"} x)", "invalid_json", ""},
      {"array body", R"(["alice","+12065550100"])", "invalid_body", ""},
      {"string body", R"("alice")", "invalid_body", ""},
      {"number body", "42", "invalid_body", ""},
      {"null body", "null", "invalid_body", ""},
      {"missing user", R"({"phone":"+12065550100"})", "missing_field", "user"},
      {"empty user", R"({"user":"","phone":"+12065550100"})", "missing_field", "user"},
      {"null user", R"({"user":null,"phone":"+12065550100"})", "invalid_field", "user"},
      {"numeric user", R"({"user":42,"phone":"+12065550100"})", "invalid_field", "user"},
      {"object user", R"({"user":{},"phone":"+12065550100"})", "invalid_field", "user"},
      {"user with a trailing space", R"({"user":"alice ","phone":"+12065550100"})", "invalid_field",
       "user"},
      {"user with a newline", R"({"user":"ali\nce","phone":"+12065550100"})", "invalid_field",
       "user"},
      {"over-long user", R"({"user":")" + LongUser(257) + R"(","phone":"+12065550100"})",
       "invalid_field", "user"},
      {"unknown field", R"({"user":"alice","phone":"+12065550100","admin":true})", "unknown_field",
       "admin"},
      {"misspelt field", R"({"user":"alice","phnoe":"+12065550100"})", "unknown_field", "phnoe"},
      {"missing phone", R"({"user":"alice"})", "invalid_phone", "phone"},
      {"null phone", R"({"user":"alice","phone":null})", "invalid_phone", "phone"},
      {"empty phone", R"({"user":"alice","phone":""})", "invalid_phone", "phone"},
      {"letters phone", R"({"user":"alice","phone":"abc"})", "invalid_phone", "phone"},
      {"country code only", R"({"user":"alice","phone":"+1"})", "invalid_phone", "phone"},
      {"two digits", R"({"user":"alice","phone":"12"})", "invalid_phone", "phone"},
      {"leading zero", R"({"user":"alice","phone":"+02065550100"})", "invalid_phone", "phone"},
      {"too many digits", R"({"user":"alice","phone":"+1206555010012345"})", "invalid_phone",
       "phone"},
      {"numeric phone", R"({"user":"alice","phone":12065550100})", "invalid_phone", "phone"},
      {"bad client_ip", R"({"user":"alice","phone":"+12065550100","client_ip":"1.2.3"})",
       "invalid_field", "client_ip"},
      {"bad locale", R"({"user":"alice","phone":"+12065550100","locale":"english!"})",
       "invalid_field", "locale"},
  };

  for (const BadBody& c : cases) {
    INFO("case: ", c.what, " body: ", c.body.substr(0, 120));
    HttpReply reply = PostRaw(client, "/v1/challenges", c.body);
    CheckProblem(reply, 400, c.code);
    if (*c.field != '\0') CHECK(reply.str("field") == c.field);
  }

  // None of them created anything or sent anything.
  CheckProblem(VerifyByUser(client, "alice", "123456"), 404, "no_challenge");
  CHECK(sidecar.AllSms().empty());

  // The boundaries on the accepted side.
  HttpReply longest =
      PostJson(client, "/v1/challenges", {{"user", LongUser(256)}, {"phone", kAlicePhone}});
  CHECK(longest.status == 202);
  HttpReply optional_nulls =
      PostRaw(client, "/v1/challenges",
              R"({"user":"alice","phone":"+12065550100","client_ip":null,"locale":null})");
  CHECK(optional_nulls.status == 202);
  HttpReply with_all = PostJson(client, "/v1/challenges",
                                {{"user", "erin"},
                                 {"phone", kAlicePhone},
                                 {"client_ip", "::FFFF:10.0.0.1"},
                                 {"locale", "pt-BR"}});
  CHECK(with_all.status == 202);

  // Digits without "+" are read as a national number of the default region (US), so the
  // trunk prefix 1 makes this the same number as kAlicePhone.
  HttpReply national =
      PostRaw(client, "/v1/challenges", R"({"user":"frank","phone":"12065550100"})");
  INFO("national form: ", national.describe());
  REQUIRE(national.status == 202);
  CHECK(sidecar.WaitForSmsCount(national.str("challenge_id"), 1)[0].to == kAlicePhone);
}

TEST_CASE("bad verify bodies are 400 problems and cost no attempt") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  std::string by_id = ChallengePath(id) + "/verify";

  std::vector<BadBody> by_id_cases = {
      {"malformed JSON", R"({"code":)", "invalid_json", ""},
      {"empty body", "", "invalid_json", ""},
      {"array body", R"([")" + code + R"("])", "invalid_body", ""},
      {"string body", "\"" + code + "\"", "invalid_body", ""},
      {"missing code", "{}", "missing_field", "code"},
      {"empty code", R"({"code":""})", "missing_field", "code"},
      {"null code", R"({"code":null})", "invalid_field", "code"},
      {"boolean code", R"({"code":true})", "invalid_field", "code"},
      {"array code", R"({"code":[")" + code + R"("]})", "invalid_field", "code"},
      {"object code", R"({"code":{"value":")" + code + R"("}})", "invalid_field", "code"},
      {"user on the by-id route", R"({"code":")" + code + R"(","user":"alice"})", "unknown_field",
       "user"},
      {"unknown field", R"({"code":")" + code + R"(","trust_me":1})", "unknown_field", "trust_me"},
      {"bad client_ip", R"({"code":")" + code + R"(","client_ip":"localhost"})", "invalid_field",
       "client_ip"},
  };
  for (const BadBody& c : by_id_cases) {
    INFO("case: ", c.what, " body: ", c.body);
    HttpReply reply = PostRaw(client, by_id, c.body);
    CheckProblem(reply, 400, c.code);
    if (*c.field != '\0') CHECK(reply.str("field") == c.field);
  }

  std::vector<BadBody> by_user_cases = {
      {"missing user", R"({"code":")" + code + R"("})", "missing_field", "user"},
      {"empty user", R"({"user":"","code":")" + code + R"("})", "missing_field", "user"},
      {"numeric user", R"({"user":7,"code":")" + code + R"("})", "invalid_field", "user"},
      {"user with a leading space", R"({"user":" alice","code":")" + code + R"("})",
       "invalid_field", "user"},
      {"over-long user", R"({"user":")" + LongUser(257) + R"(","code":")" + code + R"("})",
       "invalid_field", "user"},
      {"missing code", R"({"user":"alice"})", "missing_field", "code"},
      {"empty code", R"({"user":"alice","code":""})", "missing_field", "code"},
      {"unknown field", R"({"user":"alice","code":")" + code + R"(","id":"x"})", "unknown_field",
       "id"},
  };
  for (const BadBody& c : by_user_cases) {
    INFO("case: ", c.what, " body: ", c.body.substr(0, 120));
    HttpReply reply = PostRaw(client, "/v1/verify", c.body);
    CheckProblem(reply, 400, c.code);
    if (*c.field != '\0') CHECK(reply.str("field") == c.field);
  }

  // Resend and cancel take only an optional client_ip.
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", R"({"force":true})"), 400,
               "unknown_field");
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", "[]"), 400, "invalid_body");
  CheckProblem(PostRaw(client, ChallengePath(id) + "/resend", "{"), 400, "invalid_json");
  CheckProblem(Send(client, "DELETE", ChallengePath(id), R"({"why":"x"})"), 400, "unknown_field");
  CheckProblem(Send(client, "DELETE", ChallengePath(id), "nope"), 400, "invalid_json");

  // Nothing above was an attempt, and nothing ended the challenge.
  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.str("status") == "pending");
  CHECK(view.integer("attempts_remaining") == 5);
  CHECK(VerifyById(client, id, code).str("status") == "approved");
}

// Full-width digits (U+FF10..U+FF19), which some keyboards produce.
std::string FullWidth(const std::string& digits) {
  std::string out;
  for (char d : digits) {
    out += "\xEF\xBC";
    out += static_cast<char>(0x90 + (d - '0'));
  }
  return out;
}

// Arabic-Indic digits (U+0660..U+0669).
std::string ArabicIndic(const std::string& digits) {
  std::string out;
  for (char d : digits) {
    out += "\xD9";
    out += static_cast<char>(0xA0 + (d - '0'));
  }
  return out;
}

TEST_CASE("codes that are not exactly the configured digits are failed attempts, never a match") {
  // Enough attempts for every variant, so the real code can be tried at the end; the user's
  // failure budget across challenges (10 an hour by default) would cut that short.
  SidecarProcess sidecar(WithLimits({{"user_failures", "[]"}}, "[code]\nmax_attempts = 15\n"));
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  REQUIRE(code.size() == 6);

  // Each is built from the REAL code, so a lenient comparison (trimming, numeric value,
  // Unicode digit folding, prefix match) would approve it.
  std::vector<std::pair<std::string, nlohmann::json>> variants = {
      {"first five digits", code.substr(0, 5)},
      {"last five digits", code.substr(1)},
      {"leading space", " " + code},
      {"trailing space", code + " "},
      {"trailing newline", code + "\n"},
      {"leading tab", "\t" + code},
      {"trailing NUL", code + std::string(1, '\0')},
      {"seven digits", code + "0"},
      {"leading zero added", "0" + code},
      {"plus sign", "+" + code},
      {"full-width digits", FullWidth(code)},
      {"Arabic-Indic digits", ArabicIndic(code)},
      {"JSON number", std::stoll(code)},
      {"JSON float", static_cast<double>(std::stoll(code))},
  };

  int expected_remaining = 15;
  for (const auto& [what, attempt] : variants) {
    --expected_remaining;
    HttpReply reply = VerifyById(client, id, attempt);
    INFO("variant: ", what, " sent: ", nlohmann::json(attempt).dump(),
         " reply: ", reply.describe());
    CHECK(reply.status == 200);
    CHECK(reply.str("status") == "denied");
    CHECK(reply.integer("attempts_remaining") == expected_remaining);
  }
  REQUIRE(expected_remaining == 1);

  // An over-long code is also just a wrong attempt, not an error; it takes the last one.
  HttpReply huge = VerifyById(client, id, code + std::string(100, '0'));
  CHECK(huge.status == 200);
  CHECK(huge.str("status") == "denied");
  CHECK(huge.integer("attempts_remaining") == 0);
  CHECK(VerifyById(client, id, code).str("status") == "locked");

  // Against a fresh challenge the real code still works after malformed attempts.
  std::string second = CreateChallenge(client, "alice");
  std::string second_code = sidecar.WaitForSms(second);
  CHECK(VerifyById(client, second, " " + second_code).str("status") == "denied");
  CHECK(VerifyById(client, second, std::stoll(second_code)).str("status") == "denied");
  HttpReply approved = VerifyById(client, second, second_code);
  INFO("real code: ", approved.describe());
  CHECK(approved.str("status") == "approved");
}

TEST_CASE("bodies over 16 KiB are refused with 413 payload_too_large") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();

  std::string base = R"({"user":"alice","phone":"+12065550100"})";
  std::string exactly_16k = base + std::string(16 * 1024 - base.size(), ' ');
  REQUIRE(exactly_16k.size() == 16 * 1024);
  HttpReply at_limit = PostRaw(client, "/v1/challenges", exactly_16k);
  INFO("16 KiB: ", at_limit.describe());
  CHECK(at_limit.status == 202);

  std::string over = exactly_16k + " ";
  CheckProblem(PostRaw(client, "/v1/challenges", over), 413, "payload_too_large");
  CheckProblem(PostRaw(client, "/v1/verify", std::string(64 * 1024, '{')), 413,
               "payload_too_large");
  std::string id = at_limit.str("challenge_id");
  CheckProblem(PostRaw(client, ChallengePath(id) + "/verify",
                       R"({"code":")" + std::string(20'000, '1') + R"("})"),
               413, "payload_too_large");

  // A refused body is not an attempt, and the server still serves.
  httplib::Client fresh = sidecar.client();
  CHECK(Get(fresh, ChallengePath(id)).integer("attempts_remaining") == 5);
}

TEST_CASE("unknown routes are 404 not_found") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  for (std::string path :
       {"/", "/v1", "/v1/", "/v2/challenges", "/v1/challenge", "/v1/challenges/",
        "/v1/challenges//verify", "/healthz/", "/v1/challenges/ch_x/verify/extra",
        "/v1/challenges/ch_x/approve", "/V1/CHALLENGES", "/v1/verify/alice"}) {
    INFO("GET ", path);
    CheckProblem(Get(client, path), 404, "not_found");
    INFO("POST ", path);
    CheckProblem(PostRaw(client, path, "{}"), 404, "not_found");
  }
}

TEST_CASE("wrong methods are 405 method_not_allowed with an Allow header") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");

  struct Case {
    std::string method;
    std::string path;
    std::string allow;
  };
  std::vector<Case> cases = {
      {"GET", "/v1/challenges", "POST"},
      {"PUT", "/v1/challenges", "POST"},
      {"DELETE", "/v1/challenges", "POST"},
      {"PATCH", "/v1/challenges", "POST"},
      {"GET", "/v1/verify", "POST"},
      {"PUT", "/v1/verify", "POST"},
      {"POST", "/healthz", "GET, HEAD"},
      {"DELETE", "/healthz", "GET, HEAD"},
      {"POST", ChallengePath(id), "GET, HEAD, DELETE"},
      {"PUT", ChallengePath(id), "GET, HEAD, DELETE"},
      {"PATCH", ChallengePath(id), "GET, HEAD, DELETE"},
      {"GET", ChallengePath(id) + "/verify", "POST"},
      {"DELETE", ChallengePath(id) + "/verify", "POST"},
      {"PUT", ChallengePath(id) + "/resend", "POST"},
      {"OPTIONS", "/v1/challenges", "POST"},
  };
  for (const Case& c : cases) {
    bool has_body = c.method != "GET" && c.method != "OPTIONS";
    std::string body = has_body ? R"({"user":"alice","phone":"+12065550100"})" : "";
    HttpReply reply = Send(client, c.method, c.path, body, has_body ? "application/json" : "");
    INFO(c.method, " ", c.path, ": ", reply.describe());
    CheckProblem(reply, 405, "method_not_allowed");
    CHECK(reply.header("Allow") == c.allow);
  }

  // None of the refused requests changed the challenge.
  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.str("status") == "pending");
  CHECK(view.integer("attempts_remaining") == 5);
}

TEST_CASE("request bodies must be application/json") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string body = R"({"user":"alice","phone":"+12065550100"})";

  for (std::string type :
       {"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
        "application/jsonp", "application/xml", "json"}) {
    INFO("Content-Type: ", type);
    CheckProblem(PostRaw(client, "/v1/challenges", body, type), 415, "unsupported_media_type");
    CheckProblem(PostRaw(client, "/v1/verify", R"({"user":"alice","code":"123456"})", type), 415,
                 "unsupported_media_type");
  }

  // A multipart type makes cpp-httplib parse the body itself before the API sees it; a body
  // that is not multipart is then refused by the library as a 400 bad_request problem
  // rather than 415. Either way it is a 4xx problem and nothing is created.
  for (const std::string& path : {std::string("/v1/challenges"), std::string("/v1/verify")}) {
    HttpReply multipart = PostRaw(client, path, body, "multipart/form-data; boundary=x");
    INFO(path, " multipart: ", multipart.describe());
    REQUIRE(multipart.ok());
    CHECK((multipart.status == 415 || multipart.status == 400));
    CHECK(multipart.content_type.rfind("application/problem+json", 0) == 0);
    std::string code = multipart.str("code");
    CHECK((code == "unsupported_media_type" || code == "bad_request"));
  }
  CheckProblem(VerifyByUser(client, "alice", "123456"), 404, "no_challenge");

  // Parameters and case do not matter.
  HttpReply with_charset =
      PostRaw(client, "/v1/challenges", body, "application/json; charset=utf-8");
  CHECK(with_charset.status == 202);
  HttpReply upper = PostRaw(client, "/v1/challenges", body, "Application/JSON");
  CHECK(upper.status == 202);
}

TEST_CASE("the server survives a burst of garbage and still serves") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::vector<std::string> garbage = {
      std::string("\xff\xfe\x00\x01", 4),
      "{\"user\":\"\xc3\x28\",\"phone\":\"+12065550100\"}",  // invalid UTF-8
      "{\"user\":\"alice\",\"phone\":\"+12065550100\",\"user\":\"bob\"}",
      std::string(8000, '['),
      "{\"user\":\"a\\u0000b\",\"phone\":\"+12065550100\"}",
      "{\"user\":\"alice\",\"phone\":\"\\uD800\"}",
      "1e99999",
  };
  for (const std::string& body : garbage) {
    for (const char* path : {"/v1/challenges", "/v1/verify"}) {
      HttpReply reply = PostRaw(client, path, body);
      INFO(path, " body: ",
           nlohmann::json(body)
               .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)
               .substr(0, 200),
           " reply: ", reply.describe());
      REQUIRE(reply.ok());
      CHECK(reply.status < 500);
      if (reply.status >= 400) {
        CHECK(reply.content_type.rfind("application/problem+json", 0) == 0);
        CHECK(!reply.str("code").empty());
      }
    }
  }
  CHECK(Get(client, "/healthz").status == 200);
  std::string id = CreateChallenge(client, "alice");
  CHECK(VerifyById(client, id, sidecar.WaitForSms(id)).str("status") == "approved");
}

}  // namespace
}  // namespace sidecar::testing
