#pragma once

// Files made read-only under a running sidecar, as a remount read-only would. Included only
// by tests/integration/*.cc.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace sidecar::testing {

// Makes files immutable (chattr +i) for as long as it lives: read-only even for root and
// even through descriptors opened before, as a remount read-only would. Needs root.
class ImmutableFiles {
 public:
  explicit ImmutableFiles(std::vector<std::string> paths) : paths_(std::move(paths)) {
    for (const std::string& path : paths_)
      REQUIRE_MESSAGE(SetImmutable(path, true), "cannot make " << path << " immutable");
  }
  ~ImmutableFiles() {
    for (const std::string& path : paths_)
      SetImmutable(path, false);
  }

 private:
  static bool SetImmutable(const std::string& path, bool on) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    ::close(fd);
    return ok;
  }

  std::vector<std::string> paths_;
};

}  // namespace sidecar::testing
