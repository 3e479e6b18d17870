#include "common/log_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/log.h"
#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

// Puts the test process's own stderr back when the test ends.
class SavedStderr {
 public:
  SavedStderr() : saved_(::dup(STDERR_FILENO)) { REQUIRE(saved_ >= 0); }
  ~SavedStderr() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};

}  // namespace

TEST_SUITE("log_file") {
  TEST_CASE("log lines go to the file, and a second call follows a file moved away") {
    TempDir dir;
    std::string path = dir.File("sidecar.log");
    SavedStderr saved;

    REQUIRE(RedirectStderrTo(path).ok());
    Log(LogLevel::kError, "test", "first line");
    std::filesystem::rename(path, path + ".1");
    Log(LogLevel::kError, "test", "still the old file");
    REQUIRE(RedirectStderrTo(path).ok());
    Log(LogLevel::kError, "test", "second line");

    std::string old_file = ReadWholeFile(path + ".1");
    std::string new_file = ReadWholeFile(path);
    CHECK(old_file.find("msg=\"first line\"") != std::string::npos);
    CHECK(old_file.find("msg=\"still the old file\"") != std::string::npos);
    CHECK(new_file.find("msg=\"second line\"") != std::string::npos);
    CHECK(new_file.find("first line") == std::string::npos);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }

  TEST_CASE("an existing file is appended to") {
    TempDir dir;
    std::string path = dir.File("sidecar.log");
    WriteWholeFile(path, "earlier\n");
    SavedStderr saved;

    REQUIRE(RedirectStderrTo(path).ok());
    Log(LogLevel::kError, "test", "later");

    std::string text = ReadWholeFile(path);
    CHECK(text.rfind("earlier\n", 0) == 0);
    CHECK(text.find("msg=later") != std::string::npos);
  }

  TEST_CASE("a file that cannot be opened is an error and stderr stays as it was") {
    TempDir dir;
    std::string path = dir.File("missing-folder/sidecar.log");
    SavedStderr saved;
    struct stat before {};
    REQUIRE(::fstat(STDERR_FILENO, &before) == 0);

    Status redirected = RedirectStderrTo(path);

    REQUIRE_FALSE(redirected.ok());
    CHECK(redirected.error().code == "log_file");
    CHECK(redirected.error().message.find(path) != std::string::npos);
    struct stat after {};
    REQUIRE(::fstat(STDERR_FILENO, &after) == 0);
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_dev == before.st_dev);
  }
}
