#include "common/phone.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("phone") {
  TEST_CASE("NormalizeE164 keeps an E.164 number as it is") {
    CHECK(*NormalizeE164("+12065550100") == "+12065550100");
    CHECK(*NormalizeE164("+442079460958") == "+442079460958");
  }

  TEST_CASE("NormalizeE164 drops spaces, dots, hyphens and parentheses") {
    CHECK(*NormalizeE164("+1 206-555-0100") == "+12065550100");
    CHECK(*NormalizeE164("+1 (206) 555.0100") == "+12065550100");
    CHECK(*NormalizeE164("+44 20 7946 0958") == "+442079460958");
  }

  TEST_CASE("NormalizeE164 accepts 7 to 15 digits") {
    CHECK(*NormalizeE164("+1234567") == "+1234567");
    CHECK(*NormalizeE164("+123456789012345") == "+123456789012345");
  }

  TEST_CASE("NormalizeE164 refuses what is not an international number") {
    for (const char* text :
         {"", "abc", "+", "+1", "12", "+123456", "+1234567890123456", "12065550100", "+02065550100",
          "++12065550100", "1+2065550100", "+1206555010a", "+12065550100+", "+1 206 555 0100 x12",
          "+1/206/555/0100", "+1\t2065550100",
          "\xef\xbc\x8b\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95\xef\xbc\x96"
          "\xef\xbc\x97\xef\xbc\x98"}) {
      CAPTURE(text);
      Result<std::string> phone = NormalizeE164(text);
      REQUIRE_FALSE(phone.ok());
      CHECK(phone.error().code == "invalid_phone");
      CHECK(phone.error().field == "phone");
    }
  }

  TEST_CASE("MaskPhone keeps the '+', four leading and two trailing digits") {
    CHECK(MaskPhone("+12065550100") == "+1206*****00");
    CHECK(MaskPhone("+442079460958") == "+4420******58");
    CHECK(MaskPhone("+123456789012345") == "+1234*********45");
  }

  TEST_CASE("MaskPhone shows only '+' and the last two digits of short numbers") {
    CHECK(MaskPhone("+1234567") == "+*****67");
  }

  TEST_CASE("MaskPhone never shows the full number and keeps its length") {
    for (const char* phone : {"+1234567", "+12065550100", "+123456789012345"}) {
      CAPTURE(phone);
      std::string masked = MaskPhone(phone);
      CHECK(masked != phone);
      CHECK(masked.size() == std::string(phone).size());
      CHECK(masked.find('*') != std::string::npos);
    }
  }

}  // TEST_SUITE
