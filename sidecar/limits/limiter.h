#pragma once

// Abuse limits: what protects the SMS bill and the codes.
//
// Send limits (user, phone, client IP, region, global) count each SMS a create or resend
// would queue. Failure limits (user, client IP) count wrong codes across all challenges,
// so opening new challenges never buys new guesses. Each limit is a list of rules
// "COUNT/WINDOW"; all must hold.
//
// The algorithm is an exact sliding log: a request is refused when a rule already has
// COUNT events in the last WINDOW. A key never holds more than the largest COUNT of its
// rules, older events are pruned as they fall out of the longest window, and every check
// is an indexed read-modify-write inside the caller's store transaction, so concurrent
// requests can never overshoot (the store serialises transactions).
//
// The SMS-pumping guard tracks sends and approvals per region per minute. When a region's
// sends in the last hour reach `floor` and approvals/sends falls below `min_conversion`,
// the region is suspended for `cool_off`; afterwards it is judged only on what came after.
//
// The Limiter holds no state of its own; everything is in the store. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "limits/rate_rule.h"
#include "store/store.h"

namespace sidecar {

struct PumpingSettings {
  bool enabled = true;
  int floor = 20;
  double min_conversion = 0.2;
  std::int64_t cool_off_ms = 60LL * 60 * 1000;
};

struct LimitSettings {
  std::int64_t resend_cooldown_ms = 30'000;
  std::vector<RateRule> user_sends = {{5, 15LL * 60 * 1000}, {10, 24LL * 60 * 60 * 1000}};
  std::vector<RateRule> phone_sends = {{5, 15LL * 60 * 1000}, {10, 24LL * 60 * 60 * 1000}};
  std::vector<RateRule> ip_sends = {{20, 60LL * 60 * 1000}};
  std::vector<RateRule> region_sends = {{100, 60LL * 60 * 1000}};
  std::vector<RateRule> global_sends = {{60, 60LL * 1000}};
  std::vector<RateRule> user_failures = {{10, 60LL * 60 * 1000}};
  std::vector<RateRule> ip_failures = {{50, 60LL * 60 * 1000}};
  std::vector<std::string> exempt_numbers;  // E.164, exempt from send limits
  PumpingSettings pumping;
};

// Consecutive failures of one user without a success, whatever the configuration.
inline constexpr int kMaxConsecutiveFailures = 100;

struct Refusal {
  std::string limit;  // the problem code: "phone_sends", "region_suspended", ...
  std::int64_t retry_after_ms = 0;
  bool region_newly_suspended = false;  // this request tripped the pumping guard
};

struct SendSubject {
  std::string user;
  std::string phone;      // E.164
  std::string client_ip;  // canonical; may be empty: the per-IP limits are then not applied.
                          // IPv6 addresses count per /64 prefix.
  std::string region;
};

class Limiter {
 public:
  explicit Limiter(LimitSettings settings);

  // Checks every send limit for one SMS; when all pass, counts it and returns nullopt.
  // Exempt numbers pass without being counted.
  Result<std::optional<Refusal>> AdmitSend(StoreTx& tx, const SendSubject& subject,
                                           TimeMs now) const;

  // Checks the failure budgets before a code is compared.
  Result<std::optional<Refusal>> CheckVerify(StoreTx& tx, const std::string& user,
                                             const std::string& client_ip, TimeMs now) const;

  // Counts one wrong code against the user and the client IP.
  Status RecordFailure(StoreTx& tx, const std::string& user, const std::string& client_ip,
                       TimeMs now) const;

  // True for the exempt numbers: their sends are not counted, so neither are their
  // approvals (pass "" as the region), or a test number would hide a pumped region.
  bool IsExempt(const std::string& phone) const;

  // A success clears the user's earlier failures and counts towards the region's conversion.
  Status RecordApproval(StoreTx& tx, const std::string& user, const std::string& region,
                        TimeMs now) const;

  // Drops what no rule can look at any more. Called from housekeeping.
  Status Prune(StoreTx& tx, TimeMs now) const;

  std::int64_t resend_cooldown_ms() const { return settings_.resend_cooldown_ms; }

 private:
  struct Scope {
    const char* name;
    const std::vector<RateRule>* rules;
  };

  Result<std::optional<Refusal>> CheckScope(StoreTx& tx, const Scope& scope, const std::string& key,
                                            TimeMs now) const;
  Status CountIn(StoreTx& tx, const Scope& scope, const std::string& key, TimeMs now) const;
  Result<std::optional<Refusal>> CheckPumping(StoreTx& tx, const std::string& region,
                                              TimeMs now) const;
  std::vector<std::pair<Scope, std::string>> SendScopes(const SendSubject& subject) const;
  std::int64_t LongestFailureWindow() const;

  const LimitSettings settings_;
};

}  // namespace sidecar
