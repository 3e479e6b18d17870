#pragma once

// Command-line parsing. Flags take "--name value" or "--name=value".
//
//   otp-sidecar serve [--config FILE] [--listen ADDRESS]... [--database PATH]
//                     [--key-file PATH] [--sms-provider console|file] [--sms-file PATH]
//                     [--log-level LEVEL]
//   otp-sidecar check-config [--config FILE] [serve flags...]
//   otp-sidecar migrate --database PATH | --config FILE
//   otp-sidecar version
//   otp-sidecar [COMMAND] --help

#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace sidecar {

enum class Command { kServe, kCheckConfig, kMigrate, kVersion, kHelp };

struct CommandLine {
  Command command = Command::kHelp;
  std::string help_topic;  // for kHelp: "", "serve", "check-config", "migrate" or "version"
  ConfigOverrides overrides;
};

// Errors ("usage") name the offending argument.
Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// The text for `otp-sidecar [topic] --help`.
std::string HelpText(const std::string& topic);

}  // namespace sidecar
