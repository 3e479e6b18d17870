#include "config/key_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/secrets.h"

namespace sidecar {
namespace {

constexpr std::size_t kHexSize = kMasterKeySize * 2;

Error KeyError(const std::string& path, const std::string& what) {
  return MakeError("invalid_key_file", "key file " + path + ": " + what);
}

Status CreateKeyFile(const std::string& path) {
  MasterKey key;
  crypto_kdf_keygen(key.data());
  char hex[kHexSize + 1];
  sodium_bin2hex(hex, sizeof hex, key.data(), key.size());
  sodium_memzero(key.data(), key.size());
  hex[kHexSize] = '\n';

  // O_EXCL: two sidecars starting together must not both write a key.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return OkStatus();
    return KeyError(path, std::string("cannot be created: ") + std::strerror(errno));
  }
  bool written =
      ::write(fd, hex, sizeof hex) == static_cast<ssize_t>(sizeof hex) && ::fsync(fd) == 0;
  sodium_memzero(hex, sizeof hex);
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return KeyError(path, "cannot be written");
  }
  return OkStatus();
}

Result<MasterKey> ReadKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return KeyError(path, std::string("cannot be opened: ") + std::strerror(errno));

  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return KeyError(path, "is not a regular file");
  }
  if ((st.st_mode & 0077) != 0) {
    ::close(fd);
    return KeyError(path, "is accessible by group or others; run chmod 600 on it");
  }

  char buffer[kHexSize + 2];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  std::size_t size = n < 0 ? 0 : static_cast<std::size_t>(n);
  if (size == kHexSize + 1 && buffer[kHexSize] == '\n') size = kHexSize;

  MasterKey key;
  std::size_t decoded = 0;
  const char* hex_end = nullptr;
  bool valid =
      size == kHexSize &&
      sodium_hex2bin(key.data(), key.size(), buffer, size, nullptr, &decoded, &hex_end) == 0 &&
      decoded == key.size() && hex_end == buffer + kHexSize;
  sodium_memzero(buffer, sizeof buffer);
  if (!valid) return KeyError(path, "must hold exactly 64 hex characters");
  return key;
}

}  // namespace

Result<MasterKey> LoadOrCreateKeyFile(const std::string& path, bool create_if_missing) {
  if (create_if_missing && ::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    Status created = CreateKeyFile(path);
    if (!created.ok()) return created.error();
  }
  return ReadKeyFile(path);
}

KeyFileLocation LocateKeyFile(const std::string& key_file) {
  std::string credential = CredentialPath(key_file);
  if (!credential.empty() && ::access(credential.c_str(), F_OK) == 0) return {credential, true};
  return {key_file, false};
}

}  // namespace sidecar
