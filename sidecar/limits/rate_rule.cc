#include "limits/rate_rule.h"

#include <charconv>

#include "common/time_format.h"

namespace sidecar {
namespace {

constexpr std::int64_t kMaxWindowMs = 30LL * 24 * 60 * 60 * 1000;

}  // namespace

std::string RateRule::ToString() const {
  return std::to_string(count) + "/" + std::to_string(window_ms / 1000) + "s";
}

Result<RateRule> ParseRateRule(std::string_view text) {
  auto invalid = [&] {
    return MakeError("invalid_rate", "\"" + std::string(text) +
                                         "\" is not a rate; write COUNT/DURATION, like \"5/15m\"");
  };

  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return invalid();

  int count = 0;
  const char* begin = text.data();
  auto [end, ec] = std::from_chars(begin, begin + slash, count);
  if (ec != std::errc() || end != begin + slash || count < 1 || count > kMaxRuleCount) {
    return invalid();
  }

  Result<std::int64_t> window = ParseDurationMs(text.substr(slash + 1));
  if (!window.ok() || *window < 1000 || *window > kMaxWindowMs) return invalid();
  return RateRule{count, *window};
}

}  // namespace sidecar
