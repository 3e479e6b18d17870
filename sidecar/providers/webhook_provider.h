#pragma once

// A signed JSON webhook, for an operator's own SMS gateway:
//   POST {url}
//   Content-Type: application/json
//   X-OTP-Sidecar-Timestamp: <unix seconds>
//   X-OTP-Sidecar-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//   {"to": "+12065550100", "body": "...", "challenge_id": "ch_...", "sent_at": "...Z"}
//
// The timestamp is the clock's time at Send, in whole seconds, and sent_at the same time in
// RFC 3339 UTC with milliseconds. A receiver recomputes the HMAC over the raw body it got,
// compares in constant time and refuses timestamps too far from its own clock.
//
// Any 2xx is sent (message_id from a JSON "id" in the answer, if any); 429 is a retry
// after Retry-After; 401 and 403 are permanent provider failures; other 4xx permanent;
// 5xx and connection failures retry; no answer after the request was written is unknown.
// In detail, as for Twilio (see twilio_provider.h): Retry-After is whole seconds, capped at
// one hour; a certificate that does not verify is a permanent provider failure before
// anything is sent; a closed connection is a retry before the request was written and
// unknown after; 1xx and 3xx (redirects are not followed) and an unusable url are permanent
// provider failures. Each Send opens its own connection; the timeouts bound each wait.
//
// Reasons are one line of at most 200 bytes: the status and the answer's JSON "error" or
// "message", if any. The secret never appears in a reason or a log line; should an answer
// quote the secret, the message text, its code or the recipient, they are redacted.
//
// Thread-safe: Send may run on several delivery threads at once. Never throws.
// REQUIRES: SIGPIPE is ignored (OpenSSL writes to a closed connection without MSG_NOSIGNAL).

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "providers/provider.h"

namespace sidecar {

struct WebhookSettings {
  std::string url;      // http:// or https://
  std::string secret;   // already read from its file
  std::string ca_file;  // for https; empty: the system CA store
  std::int64_t connect_timeout_ms = 3000;
  std::int64_t request_timeout_ms = 10'000;
};

// The signature header value for `body` sent at `timestamp` (exposed for receivers' tests).
std::string WebhookSignature(const std::string& secret, const std::string& timestamp,
                             const std::string& body);

class WebhookProvider final : public SmsProvider {
 public:
  WebhookProvider(WebhookSettings settings, const Clock& clock);

  const std::string& name() const override { return name_; }
  SendOutcome Send(const SmsMessage& message) override;

 private:
  std::string name_ = "webhook";
  WebhookSettings settings_;
  const Clock& clock_;
};

}  // namespace sidecar
