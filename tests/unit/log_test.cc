#include "common/log.h"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::CaptureStderr;

namespace {

constexpr const char* kTs = "2026-12-03T20:53:24.123Z";

std::string Line(std::initializer_list<LogField> fields) {
  return FormatLogLine(kTs, LogLevel::kInfo, "http", "request", fields);
}

// Reads a logfmt line back as its (key, value) pairs, undoing the quoting: what a log
// collector does. Returns an empty list when the line is not well formed.
std::vector<std::pair<std::string, std::string>> ParseLogfmt(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::size_t i = 0;
  while (i < line.size()) {
    std::size_t eq = line.find('=', i);
    if (eq == std::string::npos) return {};
    std::string key = line.substr(i, eq - i);
    std::string value;
    i = eq + 1;
    if (i < line.size() && line[i] == '"') {
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] != '\\') {
          value += line[i];
        } else if (line[++i] == 'n') {
          value += '\n';
        } else if (line[i] == 'x') {
          value += static_cast<char>(std::stoi(line.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          value += line[i];
        }
      }
      if (i >= line.size()) return {};  // no closing quote
      ++i;
    } else {
      std::size_t end = line.find(' ', i);
      if (end == std::string::npos) end = line.size();
      value = line.substr(i, end - i);
      i = end;
    }
    pairs.emplace_back(key, value);
    if (i < line.size() && line[i] != ' ') return {};
    ++i;
  }
  return pairs;
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

  TEST_CASE("every value reads back exactly as it was logged, however it is quoted") {
    const std::vector<std::string> values = {
        "plain",       "two words", "\"",     "\\",        "ends with \\",
        "say \"hi\"",  "k=v",       "a\nb",   "tab\there", "\r\x01\x7f",
        "caf\xc3\xa9", " lead",     "trail ", "\"\\\"\\",  "level=error msg=x"};
    for (const std::string& value : values) {
      CAPTURE(value);
      std::string line = FormatLogLine(kTs, LogLevel::kWarn, "http", "m s", {{"v", value}}, "r-1");
      CHECK(line.find('\n') == std::string::npos);
      std::vector<std::pair<std::string, std::string>> expected = {
          {"ts", kTs},    {"level", "warn"},     {"subsystem", "http"},
          {"msg", "m s"}, {"request_id", "r-1"}, {"v", value}};
      CHECK(ParseLogfmt(line) == expected);
    }
  }

  TEST_CASE("FormatLogLine writes the request id right after msg, or not at all") {
    CHECK(FormatLogLine(kTs, LogLevel::kInfo, "http", "request", {{"status", "200"}}, "abc") ==
          "ts=2026-12-03T20:53:24.123Z level=info subsystem=http msg=request request_id=abc "
          "status=200");
    CHECK(FormatLogLine(kTs, LogLevel::kInfo, "http", "request", {{"status", "200"}}, "")
              .find("request_id") == std::string::npos);
  }

  TEST_CASE("a ScopedRequestId tags the lines of its own thread while it lives, and nests") {
    std::string written = CaptureStderr([] {
      Log(LogLevel::kInfo, "test", "before");
      {
        ScopedRequestId outer("outer-1");
        Log(LogLevel::kInfo, "test", "in_outer");
        {
          ScopedRequestId inner("inner-2");
          Log(LogLevel::kInfo, "test", "in_inner");
          std::thread([] { Log(LogLevel::kInfo, "test", "other_thread"); }).join();
        }
        Log(LogLevel::kInfo, "test", "back_in_outer");
      }
      Log(LogLevel::kInfo, "test", "after");
    });

    CHECK(written.find("msg=before\n") != std::string::npos);
    CHECK(written.find("msg=in_outer request_id=outer-1\n") != std::string::npos);
    CHECK(written.find("msg=in_inner request_id=inner-2\n") != std::string::npos);
    CHECK(written.find("msg=other_thread\n") != std::string::npos);
    CHECK(written.find("msg=back_in_outer request_id=outer-1\n") != std::string::npos);
    CHECK(written.find("msg=after\n") != std::string::npos);
  }

}  // TEST_SUITE
