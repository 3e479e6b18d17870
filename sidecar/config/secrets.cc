#include "config/secrets.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sidecar {
namespace {

constexpr std::size_t kMaxSecretSize = 64 * 1024;

Error SecretError(const std::string& what) {
  return MakeError("invalid_secret", what);
}

std::string ResolvePath(const std::string& file) {
  std::string credential = CredentialPath(file);
  return credential.empty() ? file : credential;
}

Result<std::string> WithoutTrailingNewline(std::string secret, const std::string& source) {
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (secret.empty()) return SecretError(source + " is empty");
  return secret;
}

// Reads at most kMaxSecretSize + 1 bytes so that an over-long file is noticed without
// reading all of it.
Result<std::string> ReadAll(int fd, const std::string& source) {
  std::string content(kMaxSecretSize + 1, '\0');
  std::size_t size = 0;
  while (size < content.size()) {
    ssize_t n = ::read(fd, &content[size], content.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      sodium_memzero(&content[0], content.size());
      return SecretError(source + " cannot be read: " + std::strerror(errno));
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }

  if (size > kMaxSecretSize) {
    sodium_memzero(&content[0], content.size());
    return SecretError(source + " is larger than 64 KiB");
  }
  std::string secret(content.data(), size);
  sodium_memzero(&content[0], content.size());
  return secret;
}

Result<std::string> ReadSecretFile(const std::string& file) {
  std::string path = ResolvePath(file);
  std::string source = "secret file " + path;
  // Symbolic links are followed: credential stores (systemd, container secrets) often
  // present a secret as a link; the checks below apply to the file it leads to.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SecretError(source + " cannot be opened: " + std::strerror(errno));

  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return SecretError(source + " is not a regular file");
  }
  if ((st.st_mode & 0077) != 0) {
    ::close(fd);
    return SecretError(source + " is accessible by group or others; run chmod 600 on it");
  }

  Result<std::string> content = ReadAll(fd, source);
  ::close(fd);
  if (!content.ok()) return content.error();
  return WithoutTrailingNewline(std::move(content).value(), source);
}

Result<std::string> ReadSecretVariable(const std::string& env_name) {
  std::string source = "environment variable " + env_name;
  const char* value = std::getenv(env_name.c_str());
  if (value == nullptr) return SecretError(source + " is not set");
  return WithoutTrailingNewline(value, source);
}

}  // namespace

std::string CredentialPath(const std::string& name) {
  const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
  if (name.empty() || name.front() == '/' || credentials == nullptr || *credentials == '\0') {
    return "";
  }
  return std::string(credentials) + "/" + name;
}

Result<std::string> ReadSecret(const std::string& file, const std::string& env_name) {
  if (!file.empty()) return ReadSecretFile(file);
  if (!env_name.empty()) return ReadSecretVariable(env_name);
  return SecretError("neither a secret file nor an environment variable is named");
}

}  // namespace sidecar
