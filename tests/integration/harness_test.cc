// The harness's own promises that no other test shows: a sanitizer report in a sidecar's
// stderr is found, from the start of its line, among ordinary log lines.

#include <doctest/doctest.h>

#include <string>

#include "support/sidecar_process.h"

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

}  // namespace
}  // namespace sidecar::testing
