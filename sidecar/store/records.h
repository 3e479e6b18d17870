#pragma once

// Plain records the store reads and writes. They carry data only; the rules that change
// them live in challenges/ and delivery/.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "codes/codes.h"
#include "common/clock.h"

namespace sidecar {

enum class ChallengeStatus { kPending, kApproved, kExpired, kLocked, kCanceled, kSuperseded };

// "pending", "approved", "expired", "locked", "canceled", "superseded".
std::string_view ToString(ChallengeStatus status);
bool ParseChallengeStatus(std::string_view text, ChallengeStatus* status);

struct Challenge {
  std::string id;
  std::string user;
  std::string phone;      // E.164
  std::string region;     // ISO 3166-1 alpha-2 of the phone, like "US"
  std::string locale;     // may be empty
  std::string client_ip;  // may be empty
  ChallengeStatus status = ChallengeStatus::kPending;
  Bytes code_hash;
  std::optional<Bytes> sealed_code;  // erased (nullopt) once the challenge has ended
  int attempts = 0;
  int max_attempts = 0;
  TimeMs created_at = 0;
  TimeMs expires_at = 0;
  std::optional<TimeMs> ended_at;
};

enum class DeliveryState { kQueued, kSending, kSent, kFailed, kUnknown };

// "queued", "sending", "sent", "failed", "unknown".
std::string_view ToString(DeliveryState state);
bool ParseDeliveryState(std::string_view text, DeliveryState* state);

struct Delivery {
  std::int64_t id = 0;
  std::string challenge_id;
  DeliveryState state = DeliveryState::kQueued;
  std::string provider;             // the provider that has it (or had it last)
  std::string provider_message_id;  // set once a provider accepted it
  int attempts = 0;                 // sends tried, over all providers
  int provider_attempts = 0;        // sends tried on `provider`
  std::string error;                // why it failed, for operators; never secret
  TimeMs created_at = 0;
  TimeMs next_attempt_at = 0;
  TimeMs updated_at = 0;
  std::optional<TimeMs> sent_at;
};

// A delivery the worker claimed, with the challenge it belongs to.
struct DeliveryJob {
  Delivery delivery;
  Challenge challenge;
};

// Sends and approvals of one region summed over a period.
struct RegionCounts {
  std::int64_t sends = 0;
  std::int64_t approvals = 0;
};

struct RegionSuspension {
  TimeMs since = 0;
  TimeMs until = 0;
};

struct FailureStreak {
  int failures = 0;
  TimeMs last_failure_at = 0;
};

struct AuditEvent {
  TimeMs time = 0;
  std::string event;  // "create", "deliver", "verify", "resend", "cancel", "expire", ...
  std::string user;
  std::string challenge_id;
  std::string outcome;  // "pending", "approved", "denied", "sent", "failed", ...
  std::string client_ip;
  std::string phone_masked;  // like "+1206*****00"; never the full number
  std::string detail;        // extra context for operators; never a code or key
};

// Figures about the store for monitoring, read at one moment.
struct StoreStats {
  std::int64_t outbox_depth = 0;         // deliveries queued (waiting to be sent or retried)
  std::int64_t database_size_bytes = 0;  // the database on disk, write-ahead log included
  std::int64_t transactions = 0;         // transactions run since start, failed ones included
  std::int64_t commits = 0;              // database commits since start (group commit: fewer)
};

}  // namespace sidecar
