#include "providers/console_provider.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sidecar {
namespace {

bool WriteAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

ConsoleProvider::ConsoleProvider(int fd) : fd_(fd) {}

SendOutcome ConsoleProvider::Send(const SmsMessage& message) {
  std::string text = "--- SMS to " + message.to + " (challenge " + message.challenge_id + ")\n" +
                     message.body + "\n---\n";

  std::lock_guard<std::mutex> lock(mutex_);
  if (!WriteAll(fd_, text)) {
    return SendOutcome::Retry(std::string("writing to stdout failed: ") + std::strerror(errno));
  }
  return SendOutcome::Sent("");
}

}  // namespace sidecar
