#include "phone/phone_validator.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace sidecar;

namespace {

PhoneSettings Regions(std::vector<std::string> allowed) {
  PhoneSettings settings;
  settings.allowed_regions = std::move(allowed);
  return settings;
}

void CheckInvalid(const PhoneValidator& validator, const std::string& input) {
  CAPTURE(input);
  Result<PhoneNumberInfo> info = validator.Validate(input);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == "invalid_phone");
  CHECK(info.error().field == "phone");
}

}  // namespace

TEST_SUITE("phone_validator") {
  TEST_CASE("the ways of writing one number all give the same E.164, region and type") {
    PhoneValidator validator(PhoneSettings{});

    for (const char* input : {"+12065550100", "+1 206 555 0100", "+1-206-555-0100",
                              "(206) 555-0100", "+12065550100 ", "+1 (206) 555-0100"}) {
      CAPTURE(input);
      Result<PhoneNumberInfo> info = validator.Validate(input);
      REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
      CHECK(info->e164 == "+12065550100");
      CHECK(info->region == "US");
      CHECK(info->type == "fixed_line_or_mobile");
    }
  }

  TEST_CASE("numbers without '+' are read in the default region") {
    PhoneSettings settings;
    settings.default_region = "GB";
    PhoneValidator validator(settings);

    Result<PhoneNumberInfo> info = validator.Validate("020 7946 0958");
    REQUIRE(info.ok());
    CHECK(info->e164 == "+442079460958");
    CHECK(info->region == "GB");
  }

  TEST_CASE("unparsable and invalid numbers are invalid_phone") {
    PhoneValidator validator(PhoneSettings{});
    for (const char* input : {"", "abc", "12", "+1", "+12065550100abc", "+1 206 555 0100#",
                              "+1 206 555 01", "+999123456789"}) {
      CheckInvalid(validator, input);
    }
  }

  TEST_CASE(
      "numbers longer than E.164's 15 digits are invalid_phone, though libphonenumber "
      "calls some valid") {
    PhoneSettings settings;
    settings.default_region = "DE";
    PhoneValidator validator(settings);

    // German fixed lines of 14 and 15 national digits: "+49" and 16 or 17 digits in all.
    for (const char* input : {"48004934938629 4", "+49480049349386294", "+4930123456789012"}) {
      CheckInvalid(validator, input);
      CHECK_FALSE(validator.Parse(input).ok());
    }

    // 15 digits in all is still a number.
    Result<PhoneNumberInfo> longest = validator.Validate("+493012345678901");
    REQUIRE(longest.ok());
    CHECK(longest->e164 == "+493012345678901");
  }

  TEST_CASE("invalid numbers stay invalid_phone when no type is blocked") {
    PhoneSettings settings;
    settings.blocked_types = {};
    PhoneValidator validator(settings);
    for (const char* input : {"+1 206 555 01", "+999123456789", "+1 206 055 0100"}) {
      CheckInvalid(validator, input);
      CHECK(validator.Validate(input).error().message.find("not a valid phone number") == 0);
    }
  }

  TEST_CASE("numbers with an extension are invalid_phone") {
    PhoneValidator validator(PhoneSettings{});
    CheckInvalid(validator, "+1 206 555 0100 ext. 5");
    CheckInvalid(validator, "+12065550100;ext=12");
    CheckInvalid(validator, "+1 206 555 0100 x12");
  }

  TEST_CASE("control characters and over-long input are invalid_phone") {
    PhoneValidator validator(PhoneSettings{});
    CheckInvalid(validator, "+1\n2065550100");
    CheckInvalid(validator, "+12065550100\r");
    CheckInvalid(validator, std::string("+1206555\0"
                                        "0100",
                                        13));
    CheckInvalid(validator, "+1 206 555 0100" + std::string(60, ' '));
  }

  TEST_CASE("numbers of a blocked type are invalid_phone") {
    PhoneValidator validator(PhoneSettings{});
    CheckInvalid(validator, "+19002001234");  // US premium rate

    PhoneSettings no_toll_free;
    no_toll_free.blocked_types = {"toll_free"};
    PhoneValidator strict(no_toll_free);
    CheckInvalid(strict, "+18002001234");
    CHECK(strict.Validate("+19002001234").ok());  // premium rate no longer blocked
  }

  TEST_CASE("valid numbers of other regions are region_not_allowed") {
    PhoneValidator us_only(PhoneSettings{});

    for (const char* input : {"+14165550100", "+442079460958", "+4930123456"}) {
      CAPTURE(input);
      Result<PhoneNumberInfo> info = us_only.Validate(input);
      REQUIRE_FALSE(info.ok());
      CHECK(info.error().code == "region_not_allowed");
      CHECK(info.error().field == "phone");
    }
  }

  TEST_CASE("allowed_regions opens other regions, and empty means the default region only") {
    PhoneValidator north_america(Regions({"US", "CA"}));
    CHECK(north_america.Validate("+14165550100")->region == "CA");
    CHECK(north_america.Validate("+12065550100")->region == "US");
    CHECK(north_america.Validate("+442079460958").error().code == "region_not_allowed");

    PhoneValidator canada_only(Regions({"CA"}));
    CHECK(canada_only.Validate("+12065550100").error().code == "region_not_allowed");
  }

  TEST_CASE("numbers of non-geographic networks are never in an allowed region") {
    PhoneValidator validator(Regions({"US", "GB", "DE"}));
    for (const char* input : {"+80012345678", "+881612345678"}) {
      CAPTURE(input);
      Result<PhoneNumberInfo> info = validator.Validate(input);
      REQUIRE_FALSE(info.ok());
      CHECK(info.error().code == "region_not_allowed");
    }
  }

  TEST_CASE("Parse normalises without the type and region checks") {
    PhoneValidator validator(PhoneSettings{});

    Result<PhoneNumberInfo> premium = validator.Parse("+1 900 200 1234");
    REQUIRE(premium.ok());
    CHECK(premium->e164 == "+19002001234");
    CHECK(premium->type == "premium_rate");

    Result<PhoneNumberInfo> abroad = validator.Parse("+44 20 7946 0958");
    REQUIRE(abroad.ok());
    CHECK(abroad->region == "GB");

    Result<PhoneNumberInfo> junk = validator.Parse("abc");
    REQUIRE_FALSE(junk.ok());
    CHECK(junk.error().code == "invalid_phone");
  }

  TEST_CASE("IsKnownRegion knows ISO 3166 codes libphonenumber supports") {
    CHECK(PhoneValidator::IsKnownRegion("US"));
    CHECK(PhoneValidator::IsKnownRegion("GB"));
    CHECK(PhoneValidator::IsKnownRegion("BR"));

    CHECK_FALSE(PhoneValidator::IsKnownRegion("us"));
    CHECK_FALSE(PhoneValidator::IsKnownRegion("XX"));
    CHECK_FALSE(PhoneValidator::IsKnownRegion("001"));
    CHECK_FALSE(PhoneValidator::IsKnownRegion(""));
  }

  TEST_CASE("KnownTypes lists every type IsKnownType accepts, including the default blocks") {
    std::vector<std::string> types = PhoneValidator::KnownTypes();

    for (const std::string& type : types)
      CHECK(PhoneValidator::IsKnownType(type));
    for (const std::string& blocked : PhoneSettings{}.blocked_types) {
      CAPTURE(blocked);
      CHECK(std::find(types.begin(), types.end(), blocked) != types.end());
    }
    CHECK(std::find(types.begin(), types.end(), "mobile") != types.end());
    CHECK_FALSE(PhoneValidator::IsKnownType("Mobile"));
    CHECK_FALSE(PhoneValidator::IsKnownType("satellite"));
    CHECK_FALSE(PhoneValidator::IsKnownType(""));
  }

  TEST_CASE("Validate may be called from many threads at once") {
    PhoneValidator validator(PhoneSettings{});
    std::atomic<int> right{0};
    std::vector<std::thread> threads;

    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 200; ++i) {
          Result<PhoneNumberInfo> info = validator.Validate("+1 206 555 0100");
          if (info.ok() && info->e164 == "+12065550100") right.fetch_add(1);
        }
      });
    }
    for (std::thread& thread : threads)
      thread.join();

    CHECK(right.load() == 8 * 200);
  }

}  // TEST_SUITE
