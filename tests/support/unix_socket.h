#pragma once

// A Unix socket bound at a path, held by the test the way another process (or systemd's
// socket unit) would hold it. Shared by the unit and the integration tests.

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sidecar::testing {

inline sockaddr_un UnixSocketAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  return address;
}

// Binds `path` (listening when `listen` is set, with `mode` on the file); closed, leaving
// the file behind as a process killed with -9 does, when destroyed. Throws
// std::runtime_error when it cannot.
class BoundUnixSocket {
 public:
  BoundUnixSocket(const std::string& path, bool listen, mode_t mode = 0660) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address = UnixSocketAddress(path);
    bool ok = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
              ::chmod(path.c_str(), mode) == 0 && (!listen || ::listen(fd_, SOMAXCONN) == 0);
    if (!ok) {
      std::string why = std::strerror(errno);
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("cannot bind a Unix socket at " + path + ": " + why);
    }
  }
  ~BoundUnixSocket() { ::close(fd_); }
  BoundUnixSocket(const BoundUnixSocket&) = delete;
  BoundUnixSocket& operator=(const BoundUnixSocket&) = delete;

  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// True when something accepts connections on the Unix socket at `path`.
inline bool UnixSocketConnects(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address = UnixSocketAddress(path);
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// True when `path` is a socket file (symbolic links are not followed).
inline bool IsSocketFile(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace sidecar::testing
