#pragma once

// The rules of a challenge: create, verify, resend, cancel, read, expire.
//
// A challenge is created pending with a fresh code. It ends exactly once: approved (the one
// verify that matched), locked (max_attempts wrong codes), expired (now >= expires_at),
// canceled (DELETE) or superseded (a newer challenge for the same user). When it ends its
// sealed code is erased and its queued deliveries fail. Every decision is written together
// with its audit row in one store transaction.
//
// Abuse limits are checked inside the same transaction as the change they guard (see
// limits/limiter.h): a send limit before a code is made, a failure budget before a code is
// compared. A refusal is still audited and committed; the caller gets an Error whose code
// names the limit and whose retry_after_ms says when to come back.
//
// The service never talks to an SMS provider: it queues deliveries in the store and calls
// `on_delivery_queued` after commit so the delivery worker wakes up.
//
// Outcomes, verify answers and refusals are counted in `metrics` once their transaction
// has committed, so a change that was rolled back is never counted. Thread-safe.

#include <functional>
#include <optional>
#include <string>

#include "codes/codes.h"
#include "codes/random.h"
#include "common/clock.h"
#include "common/result.h"
#include "limits/limiter.h"
#include "metrics/metrics.h"
#include "store/store.h"

namespace sidecar {

struct ChallengeSettings {
  int code_length = 6;
  std::int64_t ttl_ms = 5 * 60 * 1000;
  int max_attempts = 5;
  std::string first_provider = "console";  // the provider new deliveries start on
};

struct CreateRequest {
  std::string user;
  std::string phone;      // E.164, already validated
  std::string region;     // the phone's ISO 3166 region
  std::string locale;     // may be empty
  std::string client_ip;  // may be empty
};

struct CreatedChallenge {
  std::string id;
  TimeMs created_at = 0;
  TimeMs expires_at = 0;
};

// What the caller typed. A code that arrived as anything but a JSON string (a number, say)
// is still an attempt, but it can never match: `is_text` is false for it.
struct CodeAttempt {
  std::string text;
  bool is_text = true;
};

enum class VerifyStatus { kApproved, kDenied, kExpired, kLocked, kCanceled, kUsed };

// "approved", "denied", "expired", "locked", "canceled", "used".
std::string_view ToString(VerifyStatus status);

struct VerifyResult {
  std::string challenge_id;
  VerifyStatus status = VerifyStatus::kDenied;
  int attempts_remaining = 0;
  std::string reason;  // kCanceled: "canceled" or "superseded"; kLocked by budget: "user_failures"
  std::int64_t retry_after_ms = 0;  // kLocked by the user's failure budget: when it lifts
};

struct ChallengeView {
  Challenge challenge;               // status already "expired" if the deadline has passed
  std::optional<Delivery> delivery;  // the latest one
};

class ChallengeService {
 public:
  ChallengeService(Store& store, const CodeKeys& keys, const Clock& clock, RandomSource& random,
                   const Limiter& limiter, ChallengeSettings settings,
                   std::function<void()> on_delivery_queued, Metrics& metrics = NoMetrics());

  // Admits the send, supersedes the user's pending challenges, then stores a new one with
  // its first delivery. Errors: a send limit ("user_sends", "phone_sends", "ip_sends",
  // "region_sends", "global_sends", "region_suspended").
  Result<CreatedChallenge> Create(const CreateRequest& request);

  // Verifies against one challenge. A user past the failure budget gets kLocked with reason
  // "user_failures" without a comparison. Errors: "challenge_not_found", "ip_failures".
  Result<VerifyResult> VerifyById(const std::string& id, const CodeAttempt& attempt,
                                  const std::string& client_ip);

  // Verifies against the user's most recent challenge. Errors: "no_challenge", "ip_failures".
  Result<VerifyResult> VerifyByUser(const std::string& user, const CodeAttempt& attempt,
                                    const std::string& client_ip);

  // Queues the same code again; attempts are not reset. A queued, unsent delivery is not
  // duplicated. Errors: "challenge_not_found", "challenge_not_pending", "resend_cooldown"
  // and the send limits of Create.
  Status Resend(const std::string& id, const std::string& client_ip);

  // Ends a pending challenge as canceled; a challenge that already ended is left as it is.
  // Errors: "challenge_not_found".
  Status Cancel(const std::string& id, const std::string& client_ip);

  // Errors: "challenge_not_found".
  Result<ChallengeView> Get(const std::string& id);

  // Ends pending challenges whose deadline has passed, at most `limit` per call.
  // Returns how many ended.
  Result<int> ExpireDue(int limit);

  // Drops limit state no rule can look at any more.
  Status PruneLimits();

  // True when `id` has the shape of a challenge id; others cannot exist.
  static bool LooksLikeChallengeId(const std::string& id);

 private:
  Result<VerifyResult> Verify(const std::function<Result<std::optional<Challenge>>(StoreTx&)>& find,
                              const char* not_found_code, const CodeAttempt& attempt,
                              const std::string& client_ip);
  VerifyResult Decide(Challenge& challenge, const CodeAttempt& attempt, TimeMs now) const;
  Status Refuse(StoreTx& tx, const Challenge& challenge, const std::string& event,
                const Refusal& refusal, const std::string& client_ip, TimeMs now) const;
  // Ends `challenge` as `status` and appends the status to `ended`, to be counted once the
  // transaction commits (see CountEnded). Transaction bodies clear their list first, so a
  // backend that runs a body again after a conflict never counts an ending twice.
  Status End(StoreTx& tx, Challenge& challenge, ChallengeStatus status, TimeMs now,
             const std::string& why, std::vector<ChallengeStatus>& ended) const;
  void CountEnded(const std::vector<ChallengeStatus>& ended);
  // Counts a verify's answer: its status, "no_challenge" or "refused".
  Result<VerifyResult> Counted(Result<VerifyResult> result);
  AuditEvent Audit(const Challenge& challenge, std::string event, std::string outcome,
                   const std::string& client_ip, TimeMs now) const;

  Store& store_;
  const CodeKeys& keys_;
  const Clock& clock_;
  RandomSource& random_;
  const Limiter& limiter_;
  const ChallengeSettings settings_;
  const std::function<void()> on_delivery_queued_;
  Metrics& metrics_;
};

}  // namespace sidecar
