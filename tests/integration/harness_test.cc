// The harness's own promises that no other test shows: a sanitizer report in a sidecar's
// stderr is found, from the start of its line, among ordinary log lines; two sidecars can
// share one database and key.

#include <doctest/doctest.h>

#include <string>

#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

const std::string kLogLine =
    "ts=2026-12-04T18:35:45.014Z level=info subsystem=http msg=request status=202\n";

TEST_CASE("the harness finds every kind of sanitizer report in a sidecar's stderr") {
  const std::string reports[] = {
      "==9723==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000046496\n",
      "==11187==ERROR: LeakSanitizer: detected memory leaks\n",
      "../sidecar/delivery/delivery_worker.cc:344:44: runtime error: signed integer overflow\n",
      "==12==ERROR: UndefinedBehaviorSanitizer: SEGV on unknown address 0x000000000000\n",
      "WARNING: ThreadSanitizer: data race (pid=22343)\n",
      "FATAL: ThreadSanitizer: unexpected memory mapping 0x7f0000000000\n",
  };
  for (const std::string& report : reports) {
    CAPTURE(report);
    CHECK(SanitizerReport(kLogLine + report + kLogLine) == report + kLogLine);
  }
}

TEST_CASE("the harness finds no sanitizer report in ordinary log lines") {
  CHECK(SanitizerReport("") == "");
  CHECK(SanitizerReport(kLogLine + kLogLine) == "");
  CHECK(SanitizerReport("level=error msg=\"cannot record a delivery outcome\" error=busy\n") == "");
}

TEST_CASE("two sidecars share one database and key through SidecarOptions") {
  if (SkippedUnderSqlite("sidecars share a database on PostgreSQL only")) return;
  SidecarProcess first;
  SidecarOptions shared;
  shared.database = first.database();
  shared.key_file = first.key_path();
  SidecarProcess second(shared);
  CHECK(second.database() == first.database());
  CHECK(second.key_path() == first.key_path());

  // A challenge made through one verifies through the other. Either one's delivery worker
  // may send its SMS, into that sidecar's own file.
  httplib::Client one = first.client();
  httplib::Client two = second.client();
  std::string id = CreateChallenge(one, "alice");
  std::string code;
  REQUIRE(PollUntil(
      [&] {
        for (const SidecarProcess* sidecar : {&first, &second}) {
          std::vector<SmsRecord> sms = sidecar->SmsFor(id);
          if (!sms.empty()) code = sms.front().code;
        }
        return !code.empty();
      },
      Millis(10'000)));
  CHECK(VerifyById(two, id, code).str("status") == "approved");
  CHECK(VerifyById(one, id, code).str("status") == "used");
}

}  // namespace
}  // namespace sidecar::testing
