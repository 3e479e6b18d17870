#pragma once

// Parsing and validation of request bodies: pure functions from bytes to typed requests,
// so they can be tested and fuzzed without a server. Every failure is an Error whose code
// is one of the API's problem codes and whose field names the offending input.
//
// Rules shared by all bodies: the body is one JSON object of at most 16 KiB; unknown
// fields are refused ("unknown_field") so a misspelt optional field is never silently
// ignored; optional fields may be null, which means absent.

#include <string>

#include "challenges/challenge_service.h"
#include "common/result.h"
#include "phone/phone_validator.h"

namespace sidecar {

inline constexpr std::size_t kMaxBodyBytes = 16 * 1024;
inline constexpr std::size_t kMaxUserBytes = 256;

// {"user", "phone", "client_ip"?, "locale"?}. The phone is parsed, normalised to E.164 and
// checked by `phones` before anything else looks at it. Errors: invalid_json, invalid_body,
// missing_field, invalid_field, unknown_field, invalid_phone, region_not_allowed.
Result<CreateRequest> ParseCreateRequest(const std::string& body, const PhoneValidator& phones);

struct VerifyRequest {
  std::string user;  // only for POST /v1/verify
  CodeAttempt attempt;
  std::string client_ip;
};

// {"code", "client_ip"?} and, when `with_user`, "user". A code given as a JSON number is an
// attempt that cannot match; a code of any other non-string type is "invalid_field".
Result<VerifyRequest> ParseVerifyRequest(const std::string& body, bool with_user);

// {"client_ip"?}, or an empty body. Used by resend and cancel.
Result<std::string> ParseOptionalClientIp(const std::string& body);

}  // namespace sidecar
