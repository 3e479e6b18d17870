#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace sidecar {

// Formats `t` as RFC 3339 in UTC with second precision: "2026-12-03T20:53:24Z".
std::string FormatRfc3339(TimeMs t);

// Formats `t` as RFC 3339 in UTC with millisecond precision: "2026-12-03T20:53:24.123Z".
std::string FormatRfc3339Millis(TimeMs t);

// Parses a duration such as "30s", "5m", "1h", "1d" or "250ms" into milliseconds.
// One positive integer and one unit; anything else is an "invalid_duration" error.
Result<std::int64_t> ParseDurationMs(std::string_view text);

}  // namespace sidecar
