// otp-sidecar: SMS one-time codes for a login server on the same host.

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "config/cli.h"
#include "config/config.h"

int main(int argc, char** argv) {
  using namespace sidecar;
  std::vector<std::string> args(argv + 1, argv + argc);

  Result<CommandLine> line = ParseCommandLine(args);
  if (!line.ok()) {
    std::fprintf(stderr, "otp-sidecar: %s\n", line.error().message.c_str());
    return 2;
  }
  if (line->command == Command::kHelp) {
    std::fputs(HelpText(line->help_topic).c_str(), stdout);
    return 0;
  }
  if (line->command == Command::kVersion) return RunVersion();

  Result<Config> config = LoadConfig(line->overrides, ProcessEnvironment());
  if (!config.ok()) {
    // The same "error: ..." lines check-config prints for every other problem it finds.
    std::string lines;
    std::istringstream problems(config.error().message);
    for (std::string problem; std::getline(problems, problem);) {
      if (!problem.empty()) lines += "error: " + problem + "\n";
    }
    if (line->command == Command::kCheckConfig) {
      std::printf("%sconfiguration has errors\n", lines.c_str());
    } else {
      std::fprintf(stderr, "otp-sidecar: invalid configuration:\n%s", lines.c_str());
    }
    return 2;
  }
  switch (line->command) {
    case Command::kServe:
      return RunServe(*config);
    case Command::kCheckConfig:
      return RunCheckConfig(*config);
    default:
      return RunMigrate(*config);
  }
}
