#include "http/problem.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

namespace sidecar {
namespace {

struct ProblemKind {
  const char* code;
  int status;
  const char* title;
};

// The last entry is what an unknown code falls back to.
constexpr ProblemKind kProblems[] = {
    {"invalid_json", 400, "The body is not valid JSON"},
    {"invalid_body", 400, "The body must be a JSON object"},
    {"missing_field", 400, "A required field is missing or empty"},
    {"invalid_field", 400, "A field has the wrong type or form"},
    {"unknown_field", 400, "The body has a field this request does not take"},
    {"duplicate_field", 400, "The body gives a field more than once"},
    {"invalid_phone", 400, "The phone number is not valid"},
    {"bad_request", 400, "The request is malformed"},
    {"unauthorized", 401, "A valid bearer token is required"},
    {"not_found", 404, "No such endpoint"},
    {"challenge_not_found", 404, "No such challenge"},
    {"no_challenge", 404, "The user has no challenge"},
    {"region_not_allowed", 403, "Numbers of this country are not served"},
    {"method_not_allowed", 405, "Method not allowed on this endpoint"},
    {"challenge_not_pending", 409, "The challenge has ended"},
    {"payload_too_large", 413, "The body is larger than 16 KiB"},
    {"unsupported_media_type", 415, "Send the body as application/json"},
    {"resend_cooldown", 429, "The code was just sent; wait before resending"},
    {"user_sends", 429, "Too many codes sent to this user"},
    {"phone_sends", 429, "Too many codes sent to this phone number"},
    {"ip_sends", 429, "Too many codes requested from this address"},
    {"region_sends", 429, "Too many codes sent to this country"},
    {"global_sends", 429, "Too many codes sent overall"},
    {"region_suspended", 429, "SMS to this country are suspended"},
    {"user_failures", 429, "Too many wrong codes for this user"},
    {"ip_failures", 429, "Too many wrong codes from this address"},
    {"storage_unavailable", 503, "The database is unavailable; try again"},
    {"storage_full", 503, "The database is full"},
    {"database_unavailable", 503, "The database cannot be written"},
    {"database_full", 503, "The database is full"},
    {"delivery_worker_stalled", 503, "The delivery worker has stopped making progress"},
    {"conflict", 503, "A concurrent change got in the way; try again"},
    {"internal_error", 500, "Internal error"},
};

const ProblemKind& KindFor(const std::string& code) {
  for (const ProblemKind& kind : kProblems) {
    if (code == kind.code) return kind;
  }
  return kProblems[std::size(kProblems) - 1];
}

}  // namespace

int StatusForErrorCode(const std::string& code) {
  return KindFor(code).status;
}

std::int64_t RetryAfterSeconds(std::int64_t retry_after_ms) {
  // Rounded up: a caller that waits the advertised time must not be refused again.
  return std::max<std::int64_t>(1, (retry_after_ms + 999) / 1000);
}

Problem MakeProblem(const Error& error, const std::string& instance) {
  const ProblemKind& kind = KindFor(error.code);
  // Internal and storage details may name files or SQL; the caller gets the title only.
  bool expose_detail = kind.status < 500;

  nlohmann::json body = {
      {"type", std::string("urn:otp-sidecar:problem:") + kind.code},
      {"title", kind.title},
      {"status", kind.status},
      {"detail", expose_detail ? error.message : kind.title},
      {"code", kind.code},
  };
  if (!error.field.empty()) body["field"] = error.field;
  if (!instance.empty()) body["instance"] = instance;
  if (error.retry_after_ms > 0) body["retry_after"] = RetryAfterSeconds(error.retry_after_ms);
  return Problem{kind.status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

}  // namespace sidecar
