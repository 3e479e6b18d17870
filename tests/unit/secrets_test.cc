#include "config/secrets.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::ScopedEnv;
using sidecar::testing::TempDir;
using sidecar::testing::WriteWholeFile;

namespace {

constexpr const char* kVariable = "OTP_SIDECAR_TEST_SECRET";
constexpr const char* kSecret = "s3cr3t-Tw1l10-t0ken";

// Runs in `dir` for one scope.
class ScopedWorkingDirectory {
 public:
  explicit ScopedWorkingDirectory(const std::string& dir) {
    char* old = ::getcwd(nullptr, 0);
    REQUIRE(old != nullptr);
    old_ = old;
    std::free(old);
    REQUIRE(::chdir(dir.c_str()) == 0);
  }
  ~ScopedWorkingDirectory() { CHECK(::chdir(old_.c_str()) == 0); }

 private:
  std::string old_;
};

std::string WriteSecretFile(const std::string& path, const std::string& content,
                            mode_t mode = 0600) {
  WriteWholeFile(path, content);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

std::string ValueOf(const Result<std::string>& secret) {
  REQUIRE_MESSAGE(secret.ok(), (secret.ok() ? "" : secret.error().message));
  return secret.value();
}

void CheckRefused(const Result<std::string>& secret, const std::string& message_part) {
  REQUIRE_FALSE(secret.ok());
  CHECK(secret.error().code == "invalid_secret");
  CHECK_MESSAGE(secret.error().message.find(message_part) != std::string::npos,
                secret.error().message);
  CHECK(secret.error().message.find(kSecret) == std::string::npos);
}

}  // namespace

TEST_SUITE("secrets") {
  TEST_CASE("secret: a file is read and one trailing newline stripped") {
    TempDir dir;
    ScopedEnv no_credentials("CREDENTIALS_DIRECTORY", std::nullopt);

    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("a"), kSecret), "")) == kSecret);
    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("b"), std::string(kSecret) + "\n"), "")) ==
          kSecret);
    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("c"), std::string(kSecret) + "\n\n"), "")) ==
          std::string(kSecret) + "\n");
    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("d"), " spaced \n"), "")) == " spaced ");
    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("e"), "only-owner", 0400), "")) ==
          "only-owner");
  }

  TEST_CASE("secret: the environment variable is used when no file is named") {
    ScopedEnv variable(kVariable, std::string(kSecret) + "\n");

    CHECK(ValueOf(ReadSecret("", kVariable)) == kSecret);
  }

  TEST_CASE("secret: a named file wins over the environment variable") {
    TempDir dir;
    ScopedEnv variable(kVariable, "from-the-environment");

    CHECK(ValueOf(ReadSecret(WriteSecretFile(dir.File("token"), "from-the-file"), kVariable)) ==
          "from-the-file");
  }

  TEST_CASE("secret: a relative file is looked up in $CREDENTIALS_DIRECTORY when it is set") {
    TempDir credentials;
    TempDir working;
    WriteSecretFile(credentials.File("twilio-token"), "from-credentials\n");
    WriteSecretFile(working.File("twilio-token"), "from-working-directory\n");
    ScopedWorkingDirectory cwd(working.path());

    SUBCASE("set") {
      ScopedEnv set("CREDENTIALS_DIRECTORY", credentials.path());

      CHECK(ValueOf(ReadSecret("twilio-token", "")) == "from-credentials");
      // An absolute name is taken as it is.
      CHECK(ValueOf(ReadSecret(working.File("twilio-token"), "")) == "from-working-directory");
    }
    SUBCASE("not set") {
      ScopedEnv unset("CREDENTIALS_DIRECTORY", std::nullopt);

      CHECK(ValueOf(ReadSecret("twilio-token", "")) == "from-working-directory");
    }
    SUBCASE("set, but the credential is not there") {
      ScopedEnv set("CREDENTIALS_DIRECTORY", credentials.path());

      CheckRefused(ReadSecret("webhook-secret", ""), credentials.File("webhook-secret"));
    }
  }

  TEST_CASE("secret: a file readable by group or others is refused without showing it") {
    TempDir dir;
    for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
      CAPTURE(mode);
      std::string path = WriteSecretFile(dir.File("token"), kSecret, mode);

      Result<std::string> secret = ReadSecret(path, "");

      CheckRefused(secret, path);
      CheckRefused(secret, "chmod 600");
    }
  }

  TEST_CASE("secret: a missing file is refused, naming the file") {
    TempDir dir;
    ScopedEnv variable(kVariable, kSecret);

    Result<std::string> secret = ReadSecret(dir.File("missing"), kVariable);

    CheckRefused(secret, dir.File("missing"));
    CheckRefused(secret, "cannot be opened");
  }

  TEST_CASE("secret: empty secrets are refused") {
    TempDir dir;

    CheckRefused(ReadSecret(WriteSecretFile(dir.File("empty"), ""), ""), "is empty");
    CheckRefused(ReadSecret(WriteSecretFile(dir.File("newline"), "\n"), ""), "is empty");
    {
      ScopedEnv empty(kVariable, "");
      CheckRefused(ReadSecret("", kVariable), "environment variable OTP_SIDECAR_TEST_SECRET");
    }
    {
      ScopedEnv newline(kVariable, "\n");
      CheckRefused(ReadSecret("", kVariable), "is empty");
    }
  }

  TEST_CASE("secret: an unset variable, or no source at all, is refused") {
    ScopedEnv unset(kVariable, std::nullopt);

    CheckRefused(ReadSecret("", kVariable), "OTP_SIDECAR_TEST_SECRET is not set");
    CheckRefused(ReadSecret("", ""), "neither");
  }

  TEST_CASE("secret: a folder or an over-long file is refused") {
    TempDir dir;
    std::string folder = dir.File("folder");
    REQUIRE(::mkdir(folder.c_str(), 0700) == 0);
    std::string big =
        WriteSecretFile(dir.File("big"), std::string(kSecret) + std::string(70'000, 'x'));

    CheckRefused(ReadSecret(folder, ""), "not a regular file");
    CheckRefused(ReadSecret(big, ""), "larger than 64 KiB");
  }

  TEST_CASE("secret: a symbolic link is followed and the file it leads to is checked") {
    TempDir dir;
    std::string target = WriteSecretFile(dir.File("target"), kSecret);
    std::string link = dir.File("link");
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);

    CHECK(ValueOf(ReadSecret(link, "")) == kSecret);

    REQUIRE(::chmod(target.c_str(), 0644) == 0);
    CheckRefused(ReadSecret(link, ""), "group or others");
  }

}  // TEST_SUITE
