#pragma once

// Checks shared by the integration tests. Included only by tests/integration/*.cc.

#include <doctest/doctest.h>

#include <ctime>
#include <regex>
#include <string>

#include "support/http_client.h"
#include "support/sidecar_process.h"

namespace sidecar::testing {

inline constexpr const char* kAlicePhone = "+12065550100";
inline constexpr const char* kAlicePhoneMasked = "+1206*****00";

// Options for a sidecar with a TOML configuration and extra serve flags.
inline SidecarOptions WithConfig(std::string toml, std::vector<std::string> extra_args = {}) {
  SidecarOptions options;
  options.config_toml = std::move(toml);
  options.extra_args = std::move(extra_args);
  return options;
}

inline std::string ChallengePath(const std::string& id) { return "/v1/challenges/" + id; }

// A well-formed challenge id ("ch_" and 26 base32 characters) that was never issued.
inline std::string UnissuedChallengeId() { return "ch_" + std::string(26, 'a'); }

inline bool IsRfc3339Utc(const std::string& text) {
  static const std::regex kShape(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$)");
  return std::regex_match(text, kShape);
}

// Seconds since the epoch for "YYYY-MM-DDTHH:MM:SSZ", or -1.
inline long long ParseRfc3339Seconds(const std::string& text) {
  std::tm tm{};
  if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return -1;
  return static_cast<long long>(::timegm(&tm));
}

// A problem answer: the status, application/problem+json, and a body whose "code",
// "status" and "type" agree. Never a 5xx.
inline void CheckProblem(const HttpReply& reply, int status, const std::string& code) {
  INFO("reply: ", reply.describe());
  REQUIRE(reply.ok());
  CHECK(reply.status == status);
  CHECK(reply.status < 500);
  CHECK(reply.content_type.rfind("application/problem+json", 0) == 0);
  REQUIRE(reply.is_json_object());
  CHECK(reply.str("code") == code);
  CHECK(reply.integer("status") == status);
  CHECK(reply.str("type") == "urn:otp-sidecar:problem:" + code);
  CHECK(!reply.str("title").empty());
}

// POST /v1/challenges for `user`; REQUIREs a 202 and returns the challenge id.
inline std::string CreateChallenge(httplib::Client& client, const std::string& user,
                                   const std::string& phone = kAlicePhone) {
  HttpReply reply = PostJson(client, "/v1/challenges", {{"user", user}, {"phone", phone}});
  INFO("create reply: ", reply.describe());
  REQUIRE(reply.status == 202);
  std::string id = reply.str("challenge_id");
  REQUIRE(!id.empty());
  return id;
}

inline HttpReply VerifyById(httplib::Client& client, const std::string& id,
                            const nlohmann::json& code) {
  return PostJson(client, ChallengePath(id) + "/verify", {{"code", code}});
}

inline HttpReply VerifyByUser(httplib::Client& client, const std::string& user,
                              const nlohmann::json& code) {
  return PostJson(client, "/v1/verify", {{"user", user}, {"code", code}});
}

// A code of the same length that differs from `code` in its last digit.
inline std::string WrongCode(const std::string& code) {
  std::string wrong = code;
  wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
  return wrong;
}

// The challenge's status as GET reports it, or "" when the GET failed.
inline std::string StatusOf(httplib::Client& client, const std::string& id) {
  HttpReply reply = Get(client, ChallengePath(id));
  return reply.status == 200 ? reply.str("status") : "";
}

}  // namespace sidecar::testing
