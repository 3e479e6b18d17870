#include "common/time_format.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>

namespace sidecar {
namespace {

std::tm ToUtc(TimeMs t) {
  // Floor division so that times before the epoch still format sensibly.
  std::time_t seconds = static_cast<std::time_t>(t >= 0 ? t / 1000 : (t - 999) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return tm;
}

}  // namespace

std::string FormatRfc3339(TimeMs t) {
  std::tm tm = ToUtc(t);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buffer;
}

std::string FormatRfc3339Millis(TimeMs t) {
  std::tm tm = ToUtc(t);
  int millis = static_cast<int>(((t % 1000) + 1000) % 1000);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buffer;
}

Result<std::int64_t> ParseDurationMs(std::string_view text) {
  auto invalid = [&] {
    return MakeError("invalid_duration", "\"" + std::string(text) +
                                             "\" is not a duration; use a whole number and a "
                                             "unit, like \"30s\", \"5m\", \"1h\" or \"1d\"");
  };

  std::int64_t amount = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(begin, end, amount);
  if (ec != std::errc() || rest == begin || amount <= 0) return invalid();

  std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 60 * 60 * 1000;
  } else if (unit == "d") {
    scale = 24 * 60 * 60 * 1000;
  } else {
    return invalid();
  }

  if (amount > std::numeric_limits<std::int64_t>::max() / scale) return invalid();
  return amount * scale;
}

}  // namespace sidecar
