#pragma once

// Development and test provider: appends each message to a file as one JSON object per
// line, {"to", "body", "challenge_id", "sent_at"}. The file holds codes, so it is created
// with mode 0600; each line is written with one append so readers never see half a line.

#include <string>

#include "common/clock.h"
#include "providers/provider.h"

namespace sidecar {

class FileProvider final : public SmsProvider {
 public:
  FileProvider(std::string path, const Clock& clock);

  const std::string& name() const override { return name_; }
  SendOutcome Send(const SmsMessage& message) override;
  bool repeats_are_harmless() const override { return true; }

 private:
  std::string name_ = "file";
  std::string path_;
  const Clock& clock_;
};

}  // namespace sidecar
