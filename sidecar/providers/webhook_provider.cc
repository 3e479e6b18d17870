#include "providers/webhook_provider.h"

#include <httplib.h>
#include <sodium.h>

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/time_format.h"
#include "providers/http_call.h"

namespace sidecar {
namespace {

using providers_internal::HttpAnswer;
using providers_internal::ParsedUrl;

constexpr const char* kTimestampHeader = "X-OTP-Sidecar-Timestamp";
constexpr const char* kSignatureHeader = "X-OTP-Sidecar-Signature";

std::string RequestBody(const SmsMessage& message, TimeMs now) {
  nlohmann::json body = {{"to", message.to},
                         {"body", message.body},
                         {"challenge_id", message.challenge_id},
                         {"sent_at", FormatRfc3339Millis(now)}};
  // Replacing invalid UTF-8 instead of throwing: Send must not throw.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpAnswer Post(const ParsedUrl& url, const WebhookSettings& settings,
                const httplib::Headers& headers, const std::string& body) {
  providers_internal::ClientSettings client{settings.ca_file, settings.connect_timeout_ms,
                                            settings.request_timeout_ms};
  return providers_internal::CallOnNewConnection(url, client, [&](httplib::ClientImpl& http) {
    return http.Post(url.rest, headers, body, "application/json");
  });
}

// The gateway's own id for the message, when its answer is a JSON object with an "id".
std::string MessageId(const std::string& body) {
  nlohmann::json answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto id = answer.is_object() ? answer.find("id") : answer.end();
  if (id == answer.end()) return "";
  if (id->is_string()) return id->get<std::string>();  // cleaned by OutcomeOfCall
  if (id->is_number_integer()) return std::to_string(id->get<std::int64_t>());
  return "";
}

// A JSON "error" or "message" string in a refusal, to tell operators why.
std::string Detail(const std::string& body) {
  nlohmann::json answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object()) return "";
  for (const char* key : {"error", "message"}) {
    auto text = answer.find(key);
    if (text != answer.end() && text->is_string()) return ": " + text->get<std::string>();
  }
  return "";
}

SendOutcome AnswerOutcome(const HttpAnswer& answer) {
  if (answer.status >= 200 && answer.status < 300) return SendOutcome::Sent(MessageId(answer.body));

  std::string what = "HTTP " + std::to_string(answer.status) + Detail(answer.body);
  if (answer.status == 401 || answer.status == 403) return SendOutcome::Permanent(what, true);
  if (answer.status == 429 || answer.status >= 500) {
    return SendOutcome::Retry(what, providers_internal::ParseRetryAfterMs(answer.retry_after));
  }
  if (answer.status >= 400) return SendOutcome::Permanent(what);
  // 1xx or 3xx: the url does not lead to the gateway (a redirect is not followed).
  return SendOutcome::Permanent("unexpected " + what, true);
}

// Besides the message, the secret, should an answer quote it back.
std::vector<std::string> Secrets(const WebhookSettings& settings, const SmsMessage& message) {
  std::vector<std::string> secrets = providers_internal::MessageSecrets(message);
  secrets.push_back(settings.secret);
  return secrets;
}

}  // namespace

std::string WebhookSignature(const std::string& secret, const std::string& timestamp,
                             const std::string& body) {
  // The init/update/final form takes a key of any length (standard HMAC); the one-shot
  // crypto_auth_hmacsha256 would require exactly 32 bytes.
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
  std::string signed_text = timestamp + "." + body;
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(signed_text.data()),
                                signed_text.size());
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof state);

  char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return std::string("v1=") + hex;
}

WebhookProvider::WebhookProvider(WebhookSettings settings, const Clock& clock)
    : settings_(std::move(settings)), clock_(clock) {}

SendOutcome WebhookProvider::Send(const SmsMessage& message) {
  Result<ParsedUrl> url = ParseWebhookUrl(settings_.url);
  if (!url.ok()) return SendOutcome::Permanent("url " + url.error().message, true);

  TimeMs now = clock_.Now();
  std::string timestamp = std::to_string(now / 1000);
  std::string body = RequestBody(message, now);
  httplib::Headers headers{{kTimestampHeader, timestamp},
                           {kSignatureHeader, WebhookSignature(settings_.secret, timestamp, body)}};

  HttpAnswer answer = Post(*url, settings_, headers, body);

  return providers_internal::OutcomeOfCall(answer, *url, AnswerOutcome,
                                           Secrets(settings_, message));
}

}  // namespace sidecar
