#include "providers/file_provider.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using nlohmann::json;
using sidecar::testing::FakeClock;
using sidecar::testing::ReadWholeFile;
using sidecar::testing::TempDir;

namespace {

std::vector<json> Lines(const std::string& path) {
  std::istringstream in(ReadWholeFile(path));
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    REQUIRE_MESSAGE(!value.is_discarded(), line);
    out.push_back(value);
  }
  return out;
}

}  // namespace

TEST_SUITE("file_provider") {
  TEST_CASE("each message is appended as one JSON line with to, body, challenge_id and sent_at") {
    TempDir dir;
    std::string path = dir.File("sms.jsonl");
    FakeClock clock(1'796'331'204'123);
    FileProvider provider(path, clock);
    CHECK(provider.name() == "file");

    SendOutcome first = provider.Send({"+12065550100", "123456 is your code", "ch_one"});
    clock.Advance(1000);
    SendOutcome second = provider.Send({"+442079460958", "line one\nline \"two\"", "ch_two"});

    CHECK(first.kind == SendOutcome::Kind::kSent);
    CHECK(second.kind == SendOutcome::Kind::kSent);
    std::vector<json> lines = Lines(path);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == json{{"to", "+12065550100"},
                           {"body", "123456 is your code"},
                           {"challenge_id", "ch_one"},
                           {"sent_at", "2026-12-03T20:53:24.123Z"}});
    CHECK(lines[1]["body"] == "line one\nline \"two\"");
    CHECK(lines[1]["sent_at"] == "2026-12-03T20:53:25.123Z");
  }

  TEST_CASE("the file is created with mode 0600") {
    TempDir dir;
    std::string path = dir.File("sms.jsonl");
    FakeClock clock;
    FileProvider provider(path, clock);

    REQUIRE(provider.Send({"+12065550100", "x", "ch"}).kind == SendOutcome::Kind::kSent);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }

  TEST_CASE("a file that cannot be opened asks for a retry") {
    TempDir dir;
    FakeClock clock;
    FileProvider provider(dir.File("no/such/folder/sms.jsonl"), clock);

    SendOutcome outcome = provider.Send({"+12065550100", "123456", "ch"});

    CHECK(outcome.kind == SendOutcome::Kind::kRetry);
    CHECK_FALSE(outcome.reason.empty());
    CHECK(outcome.reason.find("123456") == std::string::npos);
  }

  TEST_CASE("the file may be deleted between messages") {
    TempDir dir;
    std::string path = dir.File("sms.jsonl");
    FakeClock clock;
    FileProvider provider(path, clock);
    provider.Send({"+12065550100", "first", "ch"});

    std::remove(path.c_str());
    provider.Send({"+12065550100", "second", "ch"});

    std::vector<json> lines = Lines(path);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["body"] == "second");
  }

  TEST_CASE("concurrent sends never interleave within a line") {
    TempDir dir;
    std::string path = dir.File("sms.jsonl");
    FakeClock clock;
    FileProvider provider(path, clock);
    std::vector<std::thread> threads;

    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          provider.Send({"+12065550100", std::string(300, static_cast<char>('a' + t)), "ch"});
        }
      });
    }
    for (std::thread& thread : threads) {
      thread.join();
    }

    std::vector<json> lines = Lines(path);
    CHECK(lines.size() == 200);
  }

  TEST_CASE("file provider: a body that is not valid UTF-8 is written with U+FFFD, never thrown") {
    TempDir dir;
    std::string path = dir.File("sms.jsonl");
    FakeClock clock;
    FileProvider provider(path, clock);

    SendOutcome outcome = provider.Send({"+12065550100", "123456 \xff\xfe is your code", "ch"});

    CHECK(outcome.kind == SendOutcome::Kind::kSent);
    std::vector<json> lines = Lines(path);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["body"] == "123456 \xEF\xBF\xBD\xEF\xBF\xBD is your code");
    CHECK(lines[0]["to"] == "+12065550100");
  }

}  // TEST_SUITE
