#include "common/time_format.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("time_format") {
  TEST_CASE("FormatRfc3339 writes UTC with second precision and a Z") {
    CHECK(FormatRfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(FormatRfc3339(1'780'000'000'000) == "2026-05-28T20:26:40Z");
    CHECK(FormatRfc3339(1'796'331'204'000) == "2026-12-03T20:53:24Z");
    CHECK(FormatRfc3339(1'709'208'000'000) == "2024-02-29T12:00:00Z");
  }

  TEST_CASE("FormatRfc3339 drops milliseconds rather than rounding them") {
    CHECK(FormatRfc3339(1'796'331'204'999) == "2026-12-03T20:53:24Z");
    CHECK(FormatRfc3339(999) == "1970-01-01T00:00:00Z");
  }

  TEST_CASE("FormatRfc3339Millis keeps three digits of milliseconds") {
    CHECK(FormatRfc3339Millis(0) == "1970-01-01T00:00:00.000Z");
    CHECK(FormatRfc3339Millis(1'796'331'204'123) == "2026-12-03T20:53:24.123Z");
    CHECK(FormatRfc3339Millis(1'796'331'204'007) == "2026-12-03T20:53:24.007Z");
  }

  TEST_CASE("times before the epoch floor to the previous second") {
    CHECK(FormatRfc3339(-1) == "1969-12-31T23:59:59Z");
    CHECK(FormatRfc3339Millis(-1) == "1969-12-31T23:59:59.999Z");
    CHECK(FormatRfc3339Millis(-1000) == "1969-12-31T23:59:59.000Z");
  }

  TEST_CASE("ParseDurationMs reads one positive integer and one unit") {
    CHECK(*ParseDurationMs("250ms") == 250);
    CHECK(*ParseDurationMs("30s") == 30'000);
    CHECK(*ParseDurationMs("5m") == 300'000);
    CHECK(*ParseDurationMs("1h") == 3'600'000);
    CHECK(*ParseDurationMs("1d") == 86'400'000);
    CHECK(*ParseDurationMs("90s") == 90'000);
  }

  TEST_CASE("ParseDurationMs refuses anything else with invalid_duration") {
    for (const char* text : {"",
                             "5",
                             "5x",
                             "-1s",
                             "0s",
                             "0ms",
                             "s",
                             "ms",
                             "1.5s",
                             " 5s",
                             "5s ",
                             "5 s",
                             "5S",
                             "+5s",
                             "1h30m",
                             "5sec",
                             "5mm",
                             "0x10s",
                             "99999999999999999999s",
                             "9223372036854775807d"}) {
      CAPTURE(text);
      Result<std::int64_t> parsed = ParseDurationMs(text);
      REQUIRE_FALSE(parsed.ok());
      CHECK(parsed.error().code == "invalid_duration");
    }
  }

}  // TEST_SUITE
