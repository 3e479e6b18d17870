#include "config/key_file.h"

#include <doctest/doctest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::InitSodium;
using sidecar::testing::ReadWholeFile;
using sidecar::testing::TempDir;
using sidecar::testing::WriteWholeFile;

namespace {

constexpr const char* kHexKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

unsigned FileMode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Writes `content` to `path` with exactly `mode`.
void WriteKey(const std::string& path, const std::string& content, unsigned mode = 0600) {
  WriteWholeFile(path, content);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

bool IsLowerHex(const std::string& text) {
  return text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void CheckRefused(const std::string& path, bool create_if_missing = false) {
  Result<MasterKey> key = LoadOrCreateKeyFile(path, create_if_missing);
  REQUIRE_FALSE(key.ok());
  CHECK(key.error().code == "invalid_key_file");
  CHECK(key.error().message.find(path) != std::string::npos);
}

}  // namespace

TEST_SUITE("key_file") {
  TEST_CASE("a missing key file is created with mode 0600 and 64 hex characters") {
    InitSodium();
    TempDir dir;
    std::string path = dir.File("otp-sidecar.key");

    Result<MasterKey> key = LoadOrCreateKeyFile(path, true);
    REQUIRE_MESSAGE(key.ok(), (key.ok() ? "" : key.error().message));

    CHECK(FileMode(path) == 0600);
    std::string content = ReadWholeFile(path);
    REQUIRE(content.size() == 65);
    CHECK(content.back() == '\n');
    CHECK(IsLowerHex(content.substr(0, 64)));

    MasterKey from_file{};
    REQUIRE(sodium_hex2bin(from_file.data(), from_file.size(), content.data(), 64, nullptr, nullptr,
                           nullptr) == 0);
    CHECK(from_file == *key);
  }

  TEST_CASE("the key file is reused on the next load, unchanged") {
    InitSodium();
    TempDir dir;
    std::string path = dir.File("otp-sidecar.key");
    Result<MasterKey> first = LoadOrCreateKeyFile(path, true);
    REQUIRE(first.ok());
    std::string bytes = ReadWholeFile(path);

    Result<MasterKey> second = LoadOrCreateKeyFile(path, true);
    REQUIRE(second.ok());
    CHECK(*second == *first);
    CHECK(ReadWholeFile(path) == bytes);

    Result<MasterKey> third = LoadOrCreateKeyFile(path, false);
    REQUIRE(third.ok());
    CHECK(*third == *first);
  }

  TEST_CASE("two new key files hold different keys") {
    InitSodium();
    TempDir dir;
    Result<MasterKey> a = LoadOrCreateKeyFile(dir.File("a.key"), true);
    Result<MasterKey> b = LoadOrCreateKeyFile(dir.File("b.key"), true);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a != *b);
  }

  TEST_CASE("an existing key file is read as written, with or without the newline") {
    TempDir dir;
    std::string with_newline = dir.File("a.key");
    std::string without = dir.File("b.key");
    WriteKey(with_newline, std::string(kHexKey) + "\n");
    WriteKey(without, kHexKey);

    Result<MasterKey> a = LoadOrCreateKeyFile(with_newline, false);
    Result<MasterKey> b = LoadOrCreateKeyFile(without, false);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK((*a)[0] == 0x00);
    CHECK((*a)[1] == 0x11);
    CHECK((*a)[15] == 0xff);
    CHECK((*a)[31] == 0xff);
    CHECK(*a == *b);
  }

  TEST_CASE("a key file readable by group or others is refused") {
    TempDir dir;
    for (unsigned mode : {0644u, 0640u, 0604u, 0660u, 0602u, 0620u}) {
      CAPTURE(mode);
      std::string path = dir.File("open.key");
      WriteKey(path, std::string(kHexKey) + "\n", mode);

      CheckRefused(path);
      Result<MasterKey> key = LoadOrCreateKeyFile(path, true);
      REQUIRE_FALSE(key.ok());
      CHECK(key.error().message.find(kHexKey) == std::string::npos);
      CHECK(FileMode(path) == mode);  // left for the operator to fix
    }
  }

  TEST_CASE("a key file with bad content is refused") {
    TempDir dir;
    std::string path = dir.File("bad.key");
    const std::string hex = kHexKey;

    for (const std::string& content :
         {std::string(), std::string("\n"), hex.substr(0, 63), hex.substr(0, 63) + "\n", hex + "0",
          hex + "0\n", hex + "\n\n", hex + " ", hex + "\r\n", " " + hex, "zz" + hex.substr(2),
          hex.substr(0, 62) + "g0", hex + hex}) {
      CAPTURE(content);
      WriteKey(path, content);
      CheckRefused(path);
      CheckRefused(path, true);
    }
  }

  TEST_CASE("a missing key file is not created when create_if_missing is false") {
    TempDir dir;
    std::string path = dir.File("absent.key");

    CheckRefused(path, false);
    CHECK_FALSE(std::filesystem::exists(path));
  }

  TEST_CASE("a key file that is not a regular file is refused") {
    TempDir dir;
    std::string folder = dir.File("folder.key");
    std::filesystem::create_directory(folder);
    REQUIRE(::chmod(folder.c_str(), 0700) == 0);

    CheckRefused(folder, false);
    CheckRefused(folder, true);
  }

  TEST_CASE("a key file in a folder that does not exist cannot be created") {
    InitSodium();
    TempDir dir;
    std::string path = dir.File("no/such/folder/otp.key");

    CheckRefused(path, true);
  }

  TEST_CASE("LocateKeyFile takes a relative name from $CREDENTIALS_DIRECTORY when it is there") {
    TempDir dir;
    ::unsetenv("CREDENTIALS_DIRECTORY");
    KeyFileLocation plain = LocateKeyFile("master.key");
    CHECK(plain.path == "master.key");
    CHECK_FALSE(plain.credential);

    ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
    CHECK_FALSE(LocateKeyFile("master.key").credential);  // not there: a plain file
    WriteKey(dir.File("master.key"), kHexKey, 0400);
    KeyFileLocation credential = LocateKeyFile("master.key");
    CHECK(credential.path == dir.File("master.key"));
    CHECK(credential.credential);
    CHECK_FALSE(LocateKeyFile(dir.File("master.key")).credential);  // absolute: as given
    ::unsetenv("CREDENTIALS_DIRECTORY");
  }

}  // TEST_SUITE
