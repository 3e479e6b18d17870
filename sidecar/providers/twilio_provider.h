#pragma once

// Twilio Programmable Messaging:
//   POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json
// with HTTP basic auth (the account SID, or an API key SID, and its secret) and the form
// fields To (E.164 with its '+'), From or MessagingServiceSid, Body and, when set,
// StatusCallback. TLS verifies the server against the system CA store or `ca_file`.
//
// Answers:
//   2xx with a message "sid"                    -> sent, message_id = the sid
//   400 with Twilio code 21211 or 21614         -> permanent, reason "invalid_number"
//   400 with Twilio code 21610                  -> permanent, reason "recipient_opted_out"
//   400 with Twilio code 21408                  -> permanent, reason "region_blocked"
//   401, 403 (bad credentials, suspended)       -> permanent, provider_failure = true
//   other 4xx                                   -> permanent
//   429, or Twilio code 20429                   -> retry after Retry-After (else backoff)
//   5xx, connection refused or reset before the
//   request was written, TLS handshake failure  -> retry
//   certificate that does not verify            -> permanent, provider_failure = true
//   no answer after the request was written
//   (read timeout, connection closed)           -> unknown: it may have been sent
//   2xx without a "sid"                         -> unknown
//   1xx or 3xx (redirects are not followed)     -> permanent, provider_failure = true
//   unusable base_url or account_sid            -> permanent, provider_failure = true,
//                                                  without any request
//
// A connection the server closes without answering is a retry when the close arrives
// before the whole request was written, and unknown after; a server that accepts and closes
// at once may land on either side, depending on whether the close or the request's bytes
// win the race. Each Send opens its own connection (no keep-alive), so a stale pooled connection
// can never be mistaken for a lost answer. The timeouts bound each wait for the server
// (connecting, each write, each read), not the exchange as a whole.
//
// Reasons are one line of at most 200 bytes: the Twilio code and message, or what failed.
// The auth token never appears in a reason, a log line or an exception message; should an
// answer quote the token, the message text, its code or the recipient, they are redacted.
//
// Thread-safe: Send may run on several delivery threads at once. Never throws.
// REQUIRES: SIGPIPE is ignored (OpenSSL writes to a closed connection without MSG_NOSIGNAL).

#include <cstdint>
#include <string>

#include "providers/provider.h"

namespace sidecar {

struct TwilioSettings {
  std::string account_sid;            // "AC..."; in the URL path
  std::string api_key_sid;            // "SK..."; when set, the basic-auth user instead
  std::string auth_token;             // the secret itself, already read from its file
  std::string from;                   // "+12065550199", or empty with messaging_service_sid
  std::string messaging_service_sid;  // "MG..."
  std::string status_callback;        // optional URL
  std::string base_url = "https://api.twilio.com";
  std::string ca_file;  // empty: the system CA store
  std::int64_t connect_timeout_ms = 3000;
  std::int64_t request_timeout_ms = 10'000;
};

class TwilioProvider final : public SmsProvider {
 public:
  explicit TwilioProvider(TwilioSettings settings);

  const std::string& name() const override { return name_; }
  SendOutcome Send(const SmsMessage& message) override;

 private:
  std::string name_ = "twilio";
  TwilioSettings settings_;
};

}  // namespace sidecar
