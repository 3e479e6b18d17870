#pragma once

// One line per event on stderr, logfmt: `ts=... level=info subsystem=http msg=request k=v ...`.
// Values with spaces, quotes or '=' are quoted; fields with empty values are left out.
// Callers must never pass a code, key or token as a field; phones are passed masked (see
// MaskPhone).

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace sidecar {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn" or "error". Returns false on anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

using LogField = std::pair<std::string_view, std::string>;

// Sets the lowest level that is written. Thread-safe.
void SetLogLevel(LogLevel level);

// Writes one line to stderr with a single write(2), so lines from threads never interleave.
void Log(LogLevel level, std::string_view subsystem, std::string_view message,
         std::initializer_list<LogField> fields = {});

// While it lives, every line logged on the constructing thread carries
// `request_id=<id>` right after `msg`, so that lines written deep inside a request (a
// refusal by a limit, a storage error) can be matched with the request's own line. Scopes
// nest: the previous id is restored on destruction. REQUIRES: destroyed on the thread that
// made it. `id` must be plain (see RequestIdFrom in http/server.h).
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};

// Formats one logfmt line without the trailing newline (exposed for tests).
// `request_id`, when not empty, is written right after `msg`.
std::string FormatLogLine(std::string_view timestamp, LogLevel level, std::string_view subsystem,
                          std::string_view message, std::initializer_list<LogField> fields,
                          std::string_view request_id = {});

}  // namespace sidecar
