#include "http/problem.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

using namespace sidecar;
using nlohmann::json;

namespace {

json BodyOf(const Problem& problem) {
  json body = json::parse(problem.body, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(body.is_discarded());
  REQUIRE(body.is_object());
  return body;
}

}  // namespace

TEST_SUITE("problem") {
  TEST_CASE("each error code has its HTTP status") {
    const std::pair<const char*, int> table[] = {
        {"invalid_json", 400},         {"invalid_body", 400},
        {"missing_field", 400},        {"invalid_field", 400},
        {"unknown_field", 400},        {"invalid_phone", 400},
        {"bad_request", 400},          {"not_found", 404},
        {"challenge_not_found", 404},  {"no_challenge", 404},
        {"method_not_allowed", 405},   {"challenge_not_pending", 409},
        {"payload_too_large", 413},    {"unsupported_media_type", 415},
        {"storage_unavailable", 503},  {"conflict", 503},
        {"internal_error", 500},       {"region_not_allowed", 403},
        {"resend_cooldown", 429},      {"user_sends", 429},
        {"phone_sends", 429},          {"ip_sends", 429},
        {"region_sends", 429},         {"global_sends", 429},
        {"region_suspended", 429},     {"user_failures", 429},
        {"ip_failures", 429},          {"storage_full", 503},
        {"database_unavailable", 503}, {"database_full", 503},
    };
    for (const auto& [code, status] : table) {
      CAPTURE(code);
      CHECK(StatusForErrorCode(code) == status);
    }
  }

  TEST_CASE("codes not in the table are internal errors") {
    for (const char* code : {"", "usage", "unseal_failed", "schema_too_new", "Invalid_json"}) {
      CAPTURE(code);
      CHECK(StatusForErrorCode(code) == 500);
    }
  }

  TEST_CASE("the body is problem+json with type, title, status, detail and code") {
    Problem problem =
        MakeProblem(MakeError("invalid_phone", "phone must be E.164", "phone"), "/v1/challenges");

    CHECK(problem.status == 400);
    json body = BodyOf(problem);
    CHECK(body["type"] == "urn:otp-sidecar:problem:invalid_phone");
    CHECK(body["title"].is_string());
    CHECK_FALSE(body["title"].get<std::string>().empty());
    CHECK(body["status"] == 400);
    CHECK(body["detail"] == "phone must be E.164");
    CHECK(body["code"] == "invalid_phone");
    CHECK(body["field"] == "phone");
    CHECK(body["instance"] == "/v1/challenges");
  }

  TEST_CASE("field and instance are left out when empty") {
    json body = BodyOf(MakeProblem(MakeError("invalid_json", "not JSON"), ""));
    CHECK_FALSE(body.contains("field"));
    CHECK_FALSE(body.contains("instance"));
    CHECK(body.size() == 5);
  }

  TEST_CASE("a refusal by a limit has retry_after in whole seconds, rounded up") {
    for (const auto& [ms, seconds] : std::initializer_list<std::pair<std::int64_t, std::int64_t>>{
             {1, 1}, {999, 1}, {1000, 1}, {1001, 2}, {59'500, 60}, {3'600'000, 3600}}) {
      CAPTURE(ms);
      CHECK(RetryAfterSeconds(ms) == seconds);
      Error error = MakeError("phone_sends", "refused by the phone_sends limit");
      error.retry_after_ms = ms;
      Problem problem = MakeProblem(error, "/v1/challenges");
      CHECK(problem.status == 429);
      CHECK(BodyOf(problem)["retry_after"] == seconds);
    }
    CHECK_FALSE(BodyOf(MakeProblem(MakeError("phone_sends", "m"), "")).contains("retry_after"));
  }

  TEST_CASE("every status in the body matches the status returned") {
    for (const char* code : {"not_found", "method_not_allowed", "challenge_not_pending",
                             "payload_too_large", "unsupported_media_type", "conflict"}) {
      CAPTURE(code);
      Problem problem = MakeProblem(MakeError(code, "m"), "/x");
      CHECK(BodyOf(problem)["status"] == problem.status);
      CHECK(BodyOf(problem)["code"] == code);
    }
  }

  TEST_CASE("5xx problems never show the error's message") {
    const std::string secret = "SQL error in /srv/secret/otp.db: UPDATE challenges SET";
    for (const char* code :
         {"storage_unavailable", "storage_full", "conflict", "internal_error", "something_new"}) {
      CAPTURE(code);
      Problem problem = MakeProblem(MakeError(code, secret), "/v1/verify");
      CHECK(problem.status >= 500);
      CHECK(problem.body.find("/srv/secret") == std::string::npos);
      CHECK(problem.body.find("UPDATE") == std::string::npos);
      json body = BodyOf(problem);
      CHECK(body["detail"] == body["title"]);
    }
  }

  TEST_CASE("an unknown code is answered as internal_error") {
    json body = BodyOf(MakeProblem(MakeError("something_new", "oops"), ""));
    CHECK(body["code"] == "internal_error");
    CHECK(body["status"] == 500);
  }

  TEST_CASE("messages with quotes or invalid UTF-8 still make valid JSON") {
    Problem quoted = MakeProblem(MakeError("unknown_field", "\"x\\\" is not a field", "x\""), "");
    CHECK(BodyOf(quoted)["field"] == "x\"");

    Problem broken = MakeProblem(MakeError("unknown_field", "bad \xff byte", "\xfe"), "/\xff");
    json body = BodyOf(broken);
    CHECK(body["code"] == "unknown_field");
  }

}  // TEST_SUITE
