#pragma once

// Development provider: writes each message to stdout, one block per message. The text
// holds the code, which is the point in development and the reason never to use it in
// production: stdout is not a log, but it may be captured like one.

#include <mutex>

#include "providers/provider.h"

namespace sidecar {

class ConsoleProvider final : public SmsProvider {
 public:
  // Writes to `fd` (stdout in the daemon; a pipe or file in tests).
  explicit ConsoleProvider(int fd);

  const std::string& name() const override { return name_; }
  SendOutcome Send(const SmsMessage& message) override;
  bool repeats_are_harmless() const override { return true; }

 private:
  std::string name_ = "console";
  int fd_;
  std::mutex mutex_;  // keeps messages from concurrent senders whole
};

}  // namespace sidecar
