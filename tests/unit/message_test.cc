#include "delivery/message.h"

#include <doctest/doctest.h>

#include <string>

using namespace sidecar;

namespace {

MessageSettings Settings(std::string text, std::int64_t ttl_ms = 300'000, std::string domain = "") {
  return MessageSettings{std::move(text), "Acme", std::move(domain), ttl_ms, {}};
}

void CheckInvalid(const std::string& text) {
  CAPTURE(text);
  Status status = ValidateTemplate(text);
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().code == "invalid_template");
}

}  // namespace

TEST_SUITE("message") {
  TEST_CASE("RenderMessage fills {code}, {app} and {minutes}") {
    MessageSettings settings =
        Settings("{code} is your {app} verification code. It expires in {minutes} minutes.");

    CHECK(RenderMessage(settings, "012345") ==
          "012345 is your Acme verification code. It expires in 5 minutes.");
  }

  TEST_CASE("RenderMessage allows {app} and {minutes} more than once, in any order") {
    MessageSettings settings = Settings("{app}: {minutes} min. {app} code {code}", 120'000);
    CHECK(RenderMessage(settings, "999999") == "Acme: 2 min. Acme code 999999");
  }

  TEST_CASE("RenderMessage rounds minutes up, never promising less time than is left") {
    auto minutes = [](std::int64_t ttl_ms) {
      return RenderMessage(Settings("{code} {minutes}", ttl_ms), "123456");
    };

    CHECK(minutes(60'000) == "123456 1");
    CHECK(minutes(60'001) == "123456 2");
    CHECK(minutes(90'000) == "123456 2");
    CHECK(minutes(299'999) == "123456 5");
    CHECK(minutes(300'000) == "123456 5");
    CHECK(minutes(300'001) == "123456 6");
    CHECK(minutes(30'000) == "123456 1");
    CHECK(minutes(1'000) == "123456 1");
  }

  TEST_CASE("RenderMessage ends with the WebOTP line when a domain is set") {
    MessageSettings settings = Settings("{code} is your {app} code.", 300'000, "login.example.com");
    std::string text = RenderMessage(settings, "012345");

    CHECK(text.rfind("012345 is your Acme code.", 0) == 0);
    std::string last_line = text.substr(text.rfind('\n') + 1);
    CHECK(last_line == "@login.example.com #012345");
  }

  TEST_CASE("RenderMessage has no WebOTP line without a domain") {
    std::string text = RenderMessage(Settings("{code} is your {app} code."), "012345");
    CHECK(text == "012345 is your Acme code.");
    CHECK(text.find('@') == std::string::npos);
  }

  TEST_CASE("ValidateTemplate accepts the default template and {code} alone") {
    CHECK(
        ValidateTemplate("{code} is your {app} verification code. It expires in {minutes} minutes.")
            .ok());
    CHECK(ValidateTemplate("{code}").ok());
    CHECK(ValidateTemplate("Code: {code}. Not {app}? Ignore.").ok());
  }

  TEST_CASE("ValidateTemplate refuses templates without {code} exactly once") {
    CheckInvalid("Your {app} code expires in {minutes} minutes.");
    CheckInvalid("{code} {code}");
    CheckInvalid("{app}{code}{minutes}{code}");
  }

  TEST_CASE("ValidateTemplate refuses unknown placeholders") {
    CheckInvalid("{code} {foo}");
    CheckInvalid("{code} {}");
    CheckInvalid("{CODE}");
    CheckInvalid("{code} { app }");
    CheckInvalid("{{code}}");
  }

  TEST_CASE("ValidateTemplate refuses an unclosed brace") {
    CheckInvalid("{code} expires in {minutes");
    CheckInvalid("{code} {");
    CheckInvalid("{code");
  }

  TEST_CASE("ValidateTemplate refuses empty and over-long templates") {
    CheckInvalid("");

    std::string longest = "{code}" + std::string(480 - 6, 'x');
    CHECK(ValidateTemplate(longest).ok());
    CheckInvalid(longest + "x");
  }

  TEST_CASE("ValidateWebOtpDomain accepts lower-case host names") {
    CHECK(ValidateWebOtpDomain("example.com").ok());
    CHECK(ValidateWebOtpDomain("login.example-1.com").ok());
    CHECK(ValidateWebOtpDomain("localhost").ok());
  }

  TEST_CASE("ValidateWebOtpDomain refuses what is not a lower-case host name") {
    for (const char* domain : {"", "Example.com", "-example.com", ".example.com", "example.com.",
                               "exa mple.com", "example.com/login", "https://example.com",
                               "example.com:443", "ex\xc3\xa4mple.com", "example.com #1"}) {
      CAPTURE(domain);
      Status status = ValidateWebOtpDomain(domain);
      REQUIRE_FALSE(status.ok());
      CHECK(status.error().code == "invalid_domain");
    }
  }

}  // TEST_SUITE
