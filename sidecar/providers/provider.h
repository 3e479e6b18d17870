#pragma once

// An SMS provider only sends: it takes a phone number and a text and says what happened.
// It knows nothing of the database, HTTP routes or challenges.

#include <cstdint>
#include <string>

namespace sidecar {

struct SmsMessage {
  std::string to;            // E.164, with its '+'
  std::string body;          // holds the code: never log it
  std::string challenge_id;  // for providers that pass a reference along
};

struct SendOutcome {
  enum class Kind {
    kSent,              // accepted; message_id may be set
    kRetry,             // try again after retry_after_ms (0: the worker picks a backoff)
    kPermanentFailure,  // this message will never go through this provider
    kUnknown,           // the provider may or may not have sent it
  };

  Kind kind = Kind::kSent;
  std::string message_id;
  std::int64_t retry_after_ms = 0;
  std::string reason;  // for operators and the challenge's delivery error; never secret
  // For kPermanentFailure: the provider itself is unusable (bad credentials, account
  // suspended, certificate does not verify), not this message; the worker fails over.
  bool provider_failure = false;

  static SendOutcome Sent(std::string id) { return {Kind::kSent, std::move(id), 0, "", false}; }
  static SendOutcome Retry(std::string why, std::int64_t after_ms = 0) {
    return {Kind::kRetry, "", after_ms, std::move(why), false};
  }
  static SendOutcome Permanent(std::string why, bool provider_failure = false) {
    return {Kind::kPermanentFailure, "", 0, std::move(why), provider_failure};
  }
  static SendOutcome Unknown(std::string why) {
    return {Kind::kUnknown, "", 0, std::move(why), false};
  }
};

class SmsProvider {
 public:
  virtual ~SmsProvider() = default;

  // The name used in configuration, audit rows and the challenge's delivery.
  virtual const std::string& name() const = 0;

  // Sends one message. May block on I/O; called only from the delivery worker, never from
  // a request thread. Must not throw.
  virtual SendOutcome Send(const SmsMessage& message) = 0;

  // True when sending one message twice costs nothing (a local file or the console): a send
  // interrupted by a crash is then simply repeated instead of being left "unknown".
  virtual bool repeats_are_harmless() const { return false; }
};

}  // namespace sidecar
