#pragma once

// A signed JSON webhook, for an operator's own SMS gateway:
//   POST {url}
//   Content-Type: application/json
//   X-OTP-Sidecar-Timestamp: <unix seconds>
//   X-OTP-Sidecar-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//   {"to": "+12065550100", "body": "...", "challenge_id": "ch_...", "sent_at": "...Z"}
//
// Any 2xx is sent (message_id from a JSON "id" in the answer, if any); 429 is a retry
// after Retry-After; 401 and 403 are permanent provider failures; other 4xx permanent;
// 5xx and connection failures retry; no answer after the request was written is unknown.
// The secret never appears in a reason or a log line.

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "providers/provider.h"

namespace sidecar {

struct WebhookSettings {
  std::string url;     // http:// or https://
  std::string secret;  // already read from its file
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
