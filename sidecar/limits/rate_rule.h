#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sidecar {

// "at most `count` events in any `window_ms` milliseconds", written "5/15m".
struct RateRule {
  int count = 0;
  std::int64_t window_ms = 0;

  std::string ToString() const;
};

inline constexpr int kMaxRuleCount = 100'000;

// Parses "COUNT/DURATION" ("5/15m", "10/1d", "60/1m"). COUNT is 1..100000; DURATION as in
// ParseDurationMs, at most 30 days. Errors: "invalid_rate".
Result<RateRule> ParseRateRule(std::string_view text);

}  // namespace sidecar
