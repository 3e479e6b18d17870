#include "providers/file_provider.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/time_format.h"

namespace sidecar {

FileProvider::FileProvider(std::string path, const Clock& clock)
    : path_(std::move(path)), clock_(clock) {}

SendOutcome FileProvider::Send(const SmsMessage& message) {
  nlohmann::json line = {{"to", message.to},
                         {"body", message.body},
                         {"challenge_id", message.challenge_id},
                         {"sent_at", FormatRfc3339Millis(clock_.Now())}};
  // Replacing invalid UTF-8 instead of throwing: Send must not throw.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

  // Opened per message so that an operator can rotate or delete the file at any time.
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return SendOutcome::Retry("cannot open " + path_ + ": " + std::strerror(errno));
  }
  ssize_t n = ::write(fd, text.data(), text.size());
  int write_errno = errno;
  ::close(fd);

  if (n != static_cast<ssize_t>(text.size())) {
    return SendOutcome::Retry("cannot append to " + path_ + ": " +
                              (n < 0 ? std::strerror(write_errno) : "short write"));
  }
  return SendOutcome::Sent("");
}

}  // namespace sidecar
