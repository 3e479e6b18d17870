#pragma once

// Logs to a file instead of stderr, logrotate style.

#include <string>

#include "common/result.h"

namespace sidecar {

// Opens `path` for appending (creating it with mode 0600: log lines name users) and puts
// it in place of stderr (file descriptor 2) with one dup2, so every later log line, and
// anything else written to stderr, goes there; a line is never split between two files.
// Calling it again with the same path reopens the file, which is how SIGHUP follows a
// file that logrotate moved away. On failure stderr is left as it was. Error code
// "log_file". Thread-safe.
Status RedirectStderrTo(const std::string& path);

}  // namespace sidecar
