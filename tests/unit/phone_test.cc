#include "common/phone.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("phone") {
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
