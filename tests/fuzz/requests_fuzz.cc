// Request bodies of the HTTP API, as api.cc handles them: every parser of a body
// (create, verify by user and by id, the optional client_ip of resend and cancel) and, for
// a refused body, the problem+json answer.
//
// Checks: no crash, leak or undefined behaviour, and
// - a refused body is never a 5xx ("bad input never makes the service answer 5xx"), and its
//   problem+json answer is one JSON object that names the same code;
// - an accepted create holds a user of 1-256 bytes without control characters or outer
//   spaces, a phone that validates to itself, and a client_ip in canonical form (read again,
//   it is unchanged);
// - an accepted verify holds a code attempt of at most 64 bytes, empty when it cannot match.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_check.h"
#include "http/api.h"
#include "http/problem.h"
#include "http/requests.h"

namespace {

using namespace sidecar;

const PhoneValidator& Phones() {
  static const PhoneValidator phones(PhoneSettings{"US", {"US", "CA", "GB"}});
  return phones;
}

void CheckRefusal(const Error& error) {
  FUZZ_CHECK(StatusForErrorCode(error.code) >= 400 && StatusForErrorCode(error.code) < 500);

  HttpResponse response = ProblemResponse(error, "/v1/challenges");
  nlohmann::json body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(body.is_object());
  FUZZ_CHECK(body["code"] == error.code);
}

void CheckClientIp(const std::string& client_ip) {
  if (client_ip.empty()) return;
  Result<std::string> again = ParseOptionalClientIp("{\"client_ip\": \"" + client_ip + "\"}");
  FUZZ_CHECK(again.ok() && *again == client_ip);
}

void CheckCreate(const std::string& body) {
  Result<CreateRequest> create = ParseCreateRequest(body, Phones());
  if (!create.ok()) return CheckRefusal(create.error());

  const std::string& user = create->user;
  FUZZ_CHECK(!user.empty() && user.size() <= kMaxUserBytes);
  FUZZ_CHECK(user.front() != ' ' && user.back() != ' ');
  for (unsigned char c : user)
    FUZZ_CHECK(c >= 0x20 && c != 0x7f);

  Result<PhoneNumberInfo> phone = Phones().Validate(create->phone);
  FUZZ_CHECK(phone.ok() && phone->e164 == create->phone && phone->region == create->region);
  CheckClientIp(create->client_ip);
}

void CheckVerify(const std::string& body, bool with_user) {
  Result<VerifyRequest> verify = ParseVerifyRequest(body, with_user);
  if (!verify.ok()) return CheckRefusal(verify.error());

  FUZZ_CHECK(with_user != verify->user.empty());
  FUZZ_CHECK(verify->attempt.text.size() <= 64);
  FUZZ_CHECK(verify->attempt.is_text || verify->attempt.text.empty());
  CheckClientIp(verify->client_ip);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);

  CheckCreate(body);
  CheckVerify(body, /*with_user=*/true);
  CheckVerify(body, /*with_user=*/false);

  Result<std::string> client_ip = ParseOptionalClientIp(body);
  if (client_ip.ok()) {
    CheckClientIp(*client_ip);
  } else {
    CheckRefusal(client_ip.error());
  }
  return 0;
}
