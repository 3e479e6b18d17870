#include "providers/console_provider.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::ReadWholeFile;
using sidecar::testing::TempDir;

namespace {

// A file to stand in for stdout.
struct Output {
  Output() : fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {
    REQUIRE(fd >= 0);
  }
  ~Output() { ::close(fd); }

  TempDir dir;
  std::string path = dir.File("stdout.txt");
  int fd;
};

}  // namespace

TEST_SUITE("console_provider") {
  TEST_CASE("each message is written as one block naming the number and the challenge") {
    Output out;
    ConsoleProvider provider(out.fd);
    CHECK(provider.name() == "console");

    SendOutcome outcome = provider.Send({"+12065550100", "123456 is your code", "ch_one"});

    CHECK(outcome.kind == SendOutcome::Kind::kSent);
    CHECK(ReadWholeFile(out.path) ==
          "--- SMS to +12065550100 (challenge ch_one)\n123456 is your code\n---\n");
  }

  TEST_CASE("a write that fails asks for a retry") {
    Output out;
    int read_only = ::open(out.path.c_str(), O_RDONLY | O_CLOEXEC);  // write(2) fails: EBADF
    REQUIRE(read_only >= 0);
    ConsoleProvider provider(read_only);

    SendOutcome outcome = provider.Send({"+12065550100", "123456", "ch"});

    CHECK(outcome.kind == SendOutcome::Kind::kRetry);
    CHECK_FALSE(outcome.reason.empty());
    CHECK(outcome.reason.find("123456") == std::string::npos);
    ::close(read_only);
  }

  TEST_CASE("messages from concurrent senders stay whole") {
    Output out;
    ConsoleProvider provider(out.fd);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          provider.Send({"+12065550100", std::string(200, static_cast<char>('a' + t)), "ch"});
        }
      });
    }
    for (std::thread& thread : threads)
      thread.join();

    std::string text = ReadWholeFile(out.path);
    std::string block_header = "--- SMS to +12065550100 (challenge ch)\n";
    std::size_t blocks = 0;
    for (std::size_t at = 0; at < text.size(); ++blocks) {
      REQUIRE(text.compare(at, block_header.size(), block_header) == 0);
      at += block_header.size();
      std::string body = text.substr(at, 200);
      CHECK(body == std::string(200, body[0]));
      at += 200;
      REQUIRE(text.compare(at, 5, "\n---\n") == 0);
      at += 5;
    }
    CHECK(blocks == 100);
  }

}  // TEST_SUITE
