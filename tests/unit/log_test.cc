#include "common/log.h"

#include <doctest/doctest.h>

#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::CaptureStderr;

namespace {

constexpr const char* kTs = "2026-12-03T20:53:24.123Z";

std::string Line(std::initializer_list<LogField> fields) {
  return FormatLogLine(kTs, LogLevel::kInfo, "http", "request", fields);
}

}  // namespace

TEST_SUITE("log") {
  TEST_CASE("FormatLogLine writes ts, level, subsystem, msg, then the fields in order") {
    CHECK(Line({{"method", "POST"}, {"status", "202"}}) ==
          "ts=2026-12-03T20:53:24.123Z level=info subsystem=http msg=request method=POST "
          "status=202");
  }

  TEST_CASE("FormatLogLine names every level") {
    CHECK(FormatLogLine(kTs, LogLevel::kDebug, "s", "m", {}).find(" level=debug ") !=
          std::string::npos);
    CHECK(FormatLogLine(kTs, LogLevel::kWarn, "s", "m", {}).find(" level=warn ") !=
          std::string::npos);
    CHECK(FormatLogLine(kTs, LogLevel::kError, "s", "m", {}).find(" level=error ") !=
          std::string::npos);
  }

  TEST_CASE("FormatLogLine quotes values with spaces, quotes, '=' or backslashes") {
    CHECK(Line({{"error", "disk full"}}).find(" error=\"disk full\"") != std::string::npos);
    CHECK(Line({{"error", "say \"hi\""}}).find(" error=\"say \\\"hi\\\"\"") != std::string::npos);
    CHECK(Line({{"detail", "a=b"}}).find(" detail=\"a=b\"") != std::string::npos);
    CHECK(Line({{"path", "C:\\x"}}).find(" path=\"C:\\\\x\"") != std::string::npos);
  }

  TEST_CASE("FormatLogLine quotes the message too") {
    std::string line = FormatLogLine(kTs, LogLevel::kError, "http", "request failed", {});
    CHECK(line == "ts=2026-12-03T20:53:24.123Z level=error subsystem=http msg=\"request failed\"");
  }

  TEST_CASE("FormatLogLine escapes newlines and control characters so one event is one line") {
    std::string line = Line({{"error", "line one\nline two\r\tend"}});

    CHECK(line.find('\n') == std::string::npos);
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.find('\t') == std::string::npos);
    CHECK(line.find(" error=\"line one\\nline two\\x0d\\x09end\"") != std::string::npos);
  }

  TEST_CASE("FormatLogLine cannot be tricked into a forged field") {
    std::string line = Line({{"user", "alice level=error"}});
    CHECK(line.find(" user=\"alice level=error\"") != std::string::npos);
  }

  TEST_CASE("FormatLogLine leaves out fields with empty values") {
    std::string line = Line({{"error", ""}, {"code", "x"}, {"detail", ""}});
    CHECK(line == "ts=2026-12-03T20:53:24.123Z level=info subsystem=http msg=request code=x");
  }

  TEST_CASE("ParseLogLevel reads the four names and nothing else") {
    LogLevel level = LogLevel::kInfo;
    CHECK(ParseLogLevel("debug", &level));
    CHECK(level == LogLevel::kDebug);
    CHECK(ParseLogLevel("warn", &level));
    CHECK(level == LogLevel::kWarn);
    CHECK(ParseLogLevel("error", &level));
    CHECK(level == LogLevel::kError);
    CHECK(ParseLogLevel("info", &level));
    CHECK(level == LogLevel::kInfo);

    for (const char* bad : {"", "INFO", "Info", "warning", "trace", "info "}) {
      CAPTURE(bad);
      CHECK_FALSE(ParseLogLevel(bad, &level));
      CHECK(level == LogLevel::kInfo);
    }
  }

  TEST_CASE("Log writes one line to stderr at or above the level set") {
    SetLogLevel(LogLevel::kWarn);

    std::string written = CaptureStderr([] {
      Log(LogLevel::kInfo, "test", "hidden", {{"k", "v"}});
      Log(LogLevel::kError, "test", "shown", {{"k", "v w"}});
    });
    SetLogLevel(LogLevel::kInfo);

    CHECK(written.find("hidden") == std::string::npos);
    REQUIRE(written.size() > 1);
    CHECK(written.back() == '\n');
    CHECK(written.find('\n') == written.size() - 1);
    CHECK(written.rfind("ts=", 0) == 0);
    CHECK(written.find(" level=error subsystem=test msg=shown k=\"v w\"") != std::string::npos);
  }

}  // TEST_SUITE
