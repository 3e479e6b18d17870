#include "limits/rate_rule.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("rate_rule") {
  TEST_CASE("ParseRateRule reads COUNT/DURATION") {
    Result<RateRule> five = ParseRateRule("5/15m");
    REQUIRE(five.ok());
    CHECK(five->count == 5);
    CHECK(five->window_ms == 15 * 60 * 1000);

    CHECK(ParseRateRule("10/1d")->window_ms == 86'400'000);
    CHECK(ParseRateRule("60/1m")->count == 60);
    CHECK(ParseRateRule("1/1s")->window_ms == 1000);
  }

  TEST_CASE("ParseRateRule accepts counts 1 to 100000 and windows 1s to 30d") {
    CHECK(ParseRateRule("1/1m").ok());
    CHECK(ParseRateRule("100000/1m")->count == kMaxRuleCount);
    CHECK(ParseRateRule("5/1000ms")->window_ms == 1000);
    CHECK(ParseRateRule("5/30d")->window_ms == 30LL * 86'400'000);
  }

  TEST_CASE("ParseRateRule refuses anything else with invalid_rate") {
    for (const char* text : {"",          "5",
                             "/15m",      "5/",
                             "0/1m",      "-1/1m",
                             "100001/1m", "5/999ms",
                             "5/31d",     "5/0s",
                             "5/15",      "5/15x",
                             "5//15m",    "5/15m/2",
                             " 5/15m",    "5/15m ",
                             "5 /15m",    "+5/15m",
                             "five/15m",  "5.5/1m",
                             "5-15m",     "99999999999999/1m"}) {
      CAPTURE(text);
      Result<RateRule> rule = ParseRateRule(text);
      REQUIRE_FALSE(rule.ok());
      CHECK(rule.error().code == "invalid_rate");
    }
  }

  TEST_CASE("RateRule::ToString writes the count and the window in seconds") {
    CHECK(ParseRateRule("5/15m")->ToString() == "5/900s");
    CHECK(ParseRateRule("10/1d")->ToString() == "10/86400s");
  }

}  // TEST_SUITE
