#pragma once

// Internal to providers/: what the providers that speak HTTP (Twilio, webhook) share. Reading
// their URL, making one call over a new connection, turning a call that got no answer into a
// SendOutcome, and cleaning reasons. Nothing outside providers/ includes this.

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/url.h"
#include "providers/provider.h"

namespace sidecar::providers_internal {

// The longest reason CleanReason returns, in bytes.
constexpr std::size_t kMaxReasonBytes = 200;
constexpr std::size_t kMaxMessageIdBytes = 128;

using sidecar::ParsedUrl;

// How a call reaches its server.
struct ClientSettings {
  std::string ca_file;  // for https; empty: the system CA store
  std::int64_t connect_timeout_ms = 3000;
  std::int64_t request_timeout_ms = 10'000;  // for each write and each read, not the whole call
};

// What came back from one call.
struct HttpAnswer {
  httplib::Error error = httplib::Error::Success;  // Success: status, body and retry_after hold
  long verify_result = 0;                          // for https: OpenSSL's X509_V_* verdict
  int status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header; empty when absent
};

// Sends one request with the client it is given, typically by calling its Post.
using HttpRequest = std::function<httplib::Result(httplib::ClientImpl& client)>;

// Makes a client for `url` over a new connection, with Nagle's algorithm off, the connect
// timeout, the request timeout for each wait on the socket and, for https, verification of the
// server's certificate and name against ca_file or the system CA store. Runs `request` with it
// once and returns the answer, copied out before the client goes away. Redirects are not
// followed. Thread-safe: calls share nothing.
HttpAnswer CallOnNewConnection(const ParsedUrl& url, const ClientSettings& settings,
                               const HttpRequest& request);

// The outcome of a call to `url` that got no HTTP answer, given the client's `error` (never
// Success) and, for https, OpenSSL's `verify_result`. A certificate that does not verify is a
// permanent provider failure, since nothing was sent. A failed read, which comes after the
// whole request was written, is unknown: the server may have acted on it. Anything else (no
// connection, a failed handshake, a failed write) is a retry. The reason names host:port and
// what failed.
SendOutcome OutcomeForTransportError(httplib::Error error, long verify_result,
                                     const ParsedUrl& url);

// Makes the outcome of an HTTP answer, once the server gave one.
using AnswerClassifier = SendOutcome (*)(const HttpAnswer& answer);

// What Send returns after a call to `url` that ended with `answer`: what `classify` makes of it
// when the server answered, what OutcomeForTransportError makes of it otherwise; in both cases
// with the reason cleaned of `secrets_to_redact` by CleanReason.
SendOutcome OutcomeOfCall(const HttpAnswer& answer, const ParsedUrl& url, AnswerClassifier classify,
                          const std::vector<std::string>& secrets_to_redact);

// The delay a Retry-After header asks for, in milliseconds and capped at one hour, when it is a
// whole number of seconds (at most 9 digits). 0 for anything else (absent, an HTTP date, a
// sign), which leaves the backoff to the delivery worker.
std::int64_t ParseRetryAfterMs(std::string_view header);

// `text` itself when it has at most `max_bytes` bytes; otherwise a prefix of it that ends on a
// UTF-8 character boundary followed by "...", at most `max_bytes` in all.
// REQUIRES: max_bytes >= 3.
std::string TruncateUtf8(std::string text, std::size_t max_bytes);

// What a reason must never show of `message`, should an answer quote it back: its text, each
// run of four or more digits in it (the code is one of them) and its recipient, with and
// without its "+".
std::vector<std::string> MessageSecrets(const SmsMessage& message);

// `id` when it is a plain token (at most kMaxMessageIdBytes of letters, digits and "-_.:")
// that quotes none of `secrets`; otherwise "". A provider's message id is shown on the challenge
// and stored, so an answer that echoes the request cannot smuggle the code in through it.
std::string CleanMessageId(const std::string& id, const std::vector<std::string>& secrets);

// `text` made fit for logs, audit rows and the challenge's delivery: each occurrence of each of
// `secrets_to_redact` replaced by "[redacted]" (the longer ones first, so that one inside
// another is not left half shown; empty ones are ignored), control characters turned into
// spaces and double quotes into single ones, then cut to kMaxReasonBytes by TruncateUtf8.
std::string CleanReason(std::string_view text, const std::vector<std::string>& secrets_to_redact);

}  // namespace sidecar::providers_internal
