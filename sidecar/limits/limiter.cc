#include "limits/limiter.h"

#include <arpa/inet.h>

#include <algorithm>

namespace sidecar {
namespace {

constexpr std::int64_t kHourMs = 60LL * 60 * 1000;
constexpr std::int64_t kMinuteMs = 60LL * 1000;
constexpr char kGlobalKey[] = "*";

std::int64_t LongestWindow(const std::vector<RateRule>& rules) {
  std::int64_t longest = 0;
  for (const RateRule& rule : rules)
    longest = std::max(longest, rule.window_ms);
  return longest;
}

// The key the per-IP limits count under. One IPv6 host usually holds a whole /64, and
// walking through it costs an attacker nothing, so IPv6 addresses count per /64 prefix.
std::string IpLimitKey(const std::string& client_ip) {
  unsigned char address[16];
  if (client_ip.find(':') == std::string::npos ||
      inet_pton(AF_INET6, client_ip.c_str(), address) != 1) {
    return client_ip;
  }

  std::fill(address + 8, address + 16, 0);
  char prefix[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, address, prefix, sizeof prefix);
  return std::string(prefix) + "/64";
}

}  // namespace

Limiter::Limiter(LimitSettings settings) : settings_(std::move(settings)) {}

std::vector<std::pair<Limiter::Scope, std::string>> Limiter::SendScopes(
    const SendSubject& subject) const {
  return {
      {{"user_sends", &settings_.user_sends}, subject.user},
      {{"phone_sends", &settings_.phone_sends}, subject.phone},
      {{"ip_sends", &settings_.ip_sends}, IpLimitKey(subject.client_ip)},
      {{"region_sends", &settings_.region_sends}, subject.region},
      {{"global_sends", &settings_.global_sends}, kGlobalKey},
  };
}

std::int64_t Limiter::LongestFailureWindow() const {
  // The consecutive-failure cap still needs a lock-out period when no rule is configured.
  return std::max(LongestWindow(settings_.user_failures), kHourMs);
}

Result<std::optional<Refusal>> Limiter::CheckScope(StoreTx& tx, const Scope& scope,
                                                   const std::string& key, TimeMs now) const {
  if (scope.rules->empty() || key.empty()) return std::optional<Refusal>();

  Result<std::vector<TimeMs>> times =
      tx.FindLimitEvents(scope.name, key, now - LongestWindow(*scope.rules));
  if (!times.ok()) return times.error();

  // The request waits for the longest of the rules it breaks.
  std::optional<Refusal> refusal;
  for (const RateRule& rule : *scope.rules) {
    auto first_in_window = std::upper_bound(times->begin(), times->end(), now - rule.window_ms);
    auto in_window = static_cast<int>(times->end() - first_in_window);
    if (in_window < rule.count) continue;

    // Once the (in_window - count + 1)-th event in the window ages out, one more fits.
    // Events stamped after `now` (a request that started later but committed first, or a
    // sidecar on a host whose clock runs ahead) never make the wait longer than the window.
    TimeMs frees_at = *(first_in_window + (in_window - rule.count)) + rule.window_ms;
    std::int64_t wait = std::clamp<std::int64_t>(frees_at - now, 1, rule.window_ms);
    if (!refusal || wait > refusal->retry_after_ms) refusal = Refusal{scope.name, wait, false};
  }
  return refusal;
}

Status Limiter::CountIn(StoreTx& tx, const Scope& scope, const std::string& key, TimeMs now) const {
  if (scope.rules->empty() || key.empty()) return OkStatus();
  Status added = tx.AddLimitEvent(scope.name, key, now);
  if (!added.ok()) return added;
  return tx.PruneLimitEvents(scope.name, key, now - LongestWindow(*scope.rules));
}

Result<std::optional<Refusal>> Limiter::CheckPumping(StoreTx& tx, const std::string& region,
                                                     TimeMs now) const {
  const PumpingSettings& pumping = settings_.pumping;
  if (!pumping.enabled || region.empty()) return std::optional<Refusal>();

  Result<std::optional<RegionSuspension>> suspension = tx.FindRegionSuspension(region);
  if (!suspension.ok()) return suspension.error();
  if (suspension->has_value() && (*suspension)->until > now) {
    return std::optional<Refusal>(Refusal{"region_suspended", (*suspension)->until - now, false});
  }

  // The hour is rounded out to whole minute buckets, so no send of the last hour is left
  // out; after a cool-off the region is judged only on what came after it.
  TimeMs after = now - kHourMs - kMinuteMs;
  // The minute bucket that holds `until` also holds the sends made after it, so it counts,
  // unless the suspension began in that same minute (it would then hold what tripped it).
  if (suspension->has_value()) {
    const RegionSuspension& last = **suspension;
    TimeMs until_bucket = last.until - last.until % kMinuteMs;
    after = std::max(after, until_bucket > last.since ? until_bucket - 1 : last.until);
  }
  Result<RegionCounts> counts = tx.SumRegionCounts(region, after);
  if (!counts.ok()) return counts.error();

  bool enough_traffic = counts->sends >= pumping.floor;
  bool converts = static_cast<double>(counts->approvals) >=
                  pumping.min_conversion * static_cast<double>(counts->sends);
  if (!enough_traffic || converts) return std::optional<Refusal>();

  Status saved = tx.SaveRegionSuspension(region, RegionSuspension{now, now + pumping.cool_off_ms});
  if (!saved.ok()) return saved.error();
  return std::optional<Refusal>(Refusal{"region_suspended", pumping.cool_off_ms, true});
}

bool Limiter::IsExempt(const std::string& phone) const {
  const auto& exempt = settings_.exempt_numbers;
  return std::find(exempt.begin(), exempt.end(), phone) != exempt.end();
}

Result<std::optional<Refusal>> Limiter::AdmitSend(StoreTx& tx, const SendSubject& subject,
                                                  TimeMs now) const {
  if (IsExempt(subject.phone)) return std::optional<Refusal>();

  auto scopes = SendScopes(subject);
  for (const auto& [scope, key] : scopes) {
    Result<std::optional<Refusal>> refused = CheckScope(tx, scope, key, now);
    if (!refused.ok() || refused->has_value()) return refused;
  }
  Result<std::optional<Refusal>> pumped = CheckPumping(tx, subject.region, now);
  if (!pumped.ok() || pumped->has_value()) return pumped;

  for (const auto& [scope, key] : scopes) {
    Status counted = CountIn(tx, scope, key, now);
    if (!counted.ok()) return counted.error();
  }
  if (!subject.region.empty()) {
    Status counted = tx.AddRegionCounts(subject.region, now - now % kMinuteMs, RegionCounts{1, 0});
    if (!counted.ok()) return counted.error();
  }
  return std::optional<Refusal>();
}

Result<std::optional<Refusal>> Limiter::CheckVerify(StoreTx& tx, const std::string& user,
                                                    const std::string& client_ip,
                                                    TimeMs now) const {
  Result<FailureStreak> streak = tx.FindFailureStreak(user);
  if (!streak.ok()) return streak.error();
  if (streak->failures >= kMaxConsecutiveFailures) {
    TimeMs until = streak->last_failure_at + LongestFailureWindow();
    if (until > now) return std::optional<Refusal>(Refusal{"user_failures", until - now, false});
  }

  Result<std::optional<Refusal>> user_refused =
      CheckScope(tx, Scope{"user_failures", &settings_.user_failures}, user, now);
  if (!user_refused.ok() || user_refused->has_value()) return user_refused;
  return CheckScope(tx, Scope{"ip_failures", &settings_.ip_failures}, IpLimitKey(client_ip), now);
}

Status Limiter::RecordFailure(StoreTx& tx, const std::string& user, const std::string& client_ip,
                              TimeMs now) const {
  Status counted = CountIn(tx, Scope{"user_failures", &settings_.user_failures}, user, now);
  if (counted.ok())
    counted = CountIn(tx, Scope{"ip_failures", &settings_.ip_failures}, IpLimitKey(client_ip), now);
  if (!counted.ok()) return counted;

  Result<FailureStreak> streak = tx.FindFailureStreak(user);
  if (!streak.ok()) return streak.error();
  FailureStreak next{std::min(streak->failures + 1, kMaxConsecutiveFailures), now};
  return tx.SaveFailureStreak(user, next);
}

Status Limiter::RecordApproval(StoreTx& tx, const std::string& user, const std::string& region,
                               TimeMs now) const {
  Status cleared = tx.ClearLimitEvents("user_failures", user);
  if (cleared.ok()) cleared = tx.ClearFailureStreak(user);
  if (!cleared.ok() || region.empty()) return cleared;
  return tx.AddRegionCounts(region, now - now % kMinuteMs, RegionCounts{0, 1});
}

Status Limiter::Prune(StoreTx& tx, TimeMs now) const {
  std::vector<Scope> scopes = {
      {"user_sends", &settings_.user_sends},     {"phone_sends", &settings_.phone_sends},
      {"ip_sends", &settings_.ip_sends},         {"region_sends", &settings_.region_sends},
      {"global_sends", &settings_.global_sends}, {"user_failures", &settings_.user_failures},
      {"ip_failures", &settings_.ip_failures},
  };
  for (const Scope& scope : scopes) {
    // A scope without rules keeps nothing at all.
    Status pruned = tx.PruneScope(scope.name, now - LongestWindow(*scope.rules));
    if (!pruned.ok()) return pruned;
  }

  // Streaks outlive their lock-out by a day so that a capped user cannot start afresh by
  // waiting out one window.
  return tx.PruneAbuseState(now - std::max(kHourMs, LongestFailureWindow()) - 24 * kHourMs);
}

}  // namespace sidecar
