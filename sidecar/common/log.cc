#include "common/log.h"

#include <unistd.h>

#include <atomic>

#include "common/clock.h"
#include "common/time_format.h"

namespace sidecar {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
thread_local std::string t_request_id;  // the request this thread is answering, if any

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void AppendValue(std::string& out, std::string_view value) {
  if (!NeedsQuotes(value)) {
    out += value;
    return;
  }

  // Control characters are escaped so that one event always stays on one line.
  out += '"';
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < ' ' || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void AppendField(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  AppendValue(out, value);
}

}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  for (LogLevel candidate :
       {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == LevelName(candidate)) {
      *level = candidate;
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) {
  g_min_level.store(static_cast<int>(level));
}

ScopedRequestId::ScopedRequestId(std::string id) : previous_(std::move(t_request_id)) {
  t_request_id = std::move(id);
}

ScopedRequestId::~ScopedRequestId() {
  t_request_id = std::move(previous_);
}

std::string FormatLogLine(std::string_view timestamp, LogLevel level, std::string_view subsystem,
                          std::string_view message, std::initializer_list<LogField> fields,
                          std::string_view request_id) {
  std::string line;
  line.reserve(128);
  line += "ts=";
  line += timestamp;
  line += " level=";
  line += LevelName(level);
  line += " subsystem=";
  AppendValue(line, subsystem);
  line += " msg=";
  AppendValue(line, message);
  if (!request_id.empty()) AppendField(line, "request_id", request_id);
  for (const auto& [key, value] : fields) {
    // An absent detail is left out rather than logged as "".
    if (!value.empty()) AppendField(line, key, value);
  }
  return line;
}

void Log(LogLevel level, std::string_view subsystem, std::string_view message,
         std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_min_level.load()) return;

  std::string line = FormatLogLine(FormatRfc3339Millis(SystemClock().Now()), level, subsystem,
                                   message, fields, t_request_id);
  line += '\n';

  // A short write to stderr is not worth retrying in a loop that could spin; logs are
  // best-effort, requests are not.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace sidecar
