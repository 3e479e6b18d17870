#include "common/log_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sidecar {

Status RedirectStderrTo(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError("log_file", "cannot open log file " + path + ": " + std::strerror(errno));
  }

  // dup2 swaps the descriptor atomically: a concurrent write(2) lands wholly in the old
  // file or wholly in the new one.
  int swapped = ::dup2(fd, STDERR_FILENO);
  int saved_errno = errno;
  ::close(fd);
  if (swapped < 0) {
    return MakeError("log_file", "cannot log to " + path + ": " + std::strerror(saved_errno));
  }
  return OkStatus();
}

}  // namespace sidecar
