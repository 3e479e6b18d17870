#include "common/byte_size.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("byte_size") {
  TEST_CASE("ParseByteSize reads bytes, decimal and binary units") {
    CHECK(*ParseByteSize("0") == 0);
    CHECK(*ParseByteSize("1048576") == 1'048'576);
    CHECK(*ParseByteSize("512B") == 512);
    CHECK(*ParseByteSize("3kB") == 3'000);
    CHECK(*ParseByteSize("3KB") == 3'000);
    CHECK(*ParseByteSize("5MB") == 5'000'000);
    CHECK(*ParseByteSize("2GB") == 2'000'000'000);
    CHECK(*ParseByteSize("1TB") == 1'000'000'000'000);
    CHECK(*ParseByteSize("4KiB") == 4'096);
    CHECK(*ParseByteSize("512MiB") == 536'870'912);
    CHECK(*ParseByteSize("2GiB") == 2'147'483'648);
    CHECK(*ParseByteSize("1TiB") == 1'099'511'627'776);
    CHECK(*ParseByteSize("0MiB") == 0);
  }

  TEST_CASE("ParseByteSize refuses anything else with invalid_size") {
    for (const char* text : {"",           "MiB",   "-1",    "-1MiB", "+1MiB",
                             "1.5GB",      " 1MiB", "1MiB ", "1 MiB", "1M",
                             "1G",         "1k",    "1mib",  "1mb",   "1Mib",
                             "1MiBs",      "1KiBB", "0x10",  "1e6",   "99999999999999999999",
                             "9000000TiB", "1_000"}) {
      CAPTURE(text);
      Result<std::int64_t> parsed = ParseByteSize(text);
      REQUIRE_FALSE(parsed.ok());
      CHECK(parsed.error().code == "invalid_size");
      CHECK(parsed.error().message.find("\"512MiB\"") != std::string::npos);
    }
  }
}  // TEST_SUITE
