// The configuration parser: TOML text and OTP_SIDECAR_* variables through ParseConfigText,
// the path LoadConfig takes for check-config and serve, then the template warnings
// check-config prints for a configuration that parsed.
//
// The input is the file's text. Its lines "#env NAME=VALUE" (TOML comments, so the text
// parses the same) are also given as environment variables, which are read as TOML too.
//
// Checks: no crash, leak or undefined behaviour, and
// - a refused configuration is an "invalid_config" error with one non-empty line per
//   problem;
// - an accepted one has a parsed address for each listen entry, a code length, lifetime and
//   attempt count within their ranges, and templates that pass ValidateTemplate, which is
//   what RenderMessage requires; each renders to a message holding the code, and each
//   locale of [sms.templates] finds its own template;
// - reading the same text again gives a configuration that SIGHUP would not report as
//   changed.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "app/reload.h"
#include "codes/codes.h"
#include "config/config.h"
#include "delivery/encoding.h"
#include "delivery/message.h"
#include "fuzz_check.h"

namespace {

using namespace sidecar;

Environment EnvironmentLines(const std::string& text) {
  static const std::string kMark = "#env ";
  Environment environment;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::size_t eq = line.find('=');
    if (line.compare(0, kMark.size(), kMark) != 0 || eq == std::string::npos) continue;
    environment[line.substr(kMark.size(), eq - kMark.size())] = line.substr(eq + 1);
  }
  return environment;
}

void CheckRefused(const Error& error) {
  FUZZ_CHECK(error.code == "invalid_config");
  FUZZ_CHECK(!error.message.empty());
  std::istringstream lines(error.message);
  for (std::string line; std::getline(lines, line);)
    FUZZ_CHECK(!line.empty());
}

void CheckTemplates(const Config& config) {
  MessageSettings settings = MessageSettingsOf(config, config.code_ttl_ms);
  FUZZ_CHECK(ValidateTemplate(settings.template_text).ok());
  std::string code(static_cast<std::size_t>(config.code_length), '7');

  FUZZ_CHECK(RenderMessage(settings, code).find(code) != std::string::npos);
  for (const auto& [locale, text] : config.sms_templates) {
    FUZZ_CHECK(ValidateTemplate(text).ok());
    FUZZ_CHECK(&TemplateFor(settings, locale) == &settings.templates.at(locale));
    std::string message = RenderMessage(settings, code, locale);
    FUZZ_CHECK(message.find(code) != std::string::npos);
    FUZZ_CHECK(MeasureMessage(message).segments >= 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  Environment environment = EnvironmentLines(text);
  Result<Config> config = ParseConfigText(text, "fuzz.toml", environment);
  if (!config.ok()) {
    CheckRefused(config.error());
    return 0;
  }

  FUZZ_CHECK(config->listen_addresses.size() == config->listen.size());
  FUZZ_CHECK(config->code_length >= kMinCodeLength && config->code_length <= kMaxCodeLength);
  FUZZ_CHECK(config->code_ttl_ms >= 1000 && config->code_ttl_ms <= 86'400'000);
  FUZZ_CHECK(config->max_attempts >= 1 && config->max_attempts <= 20);
  CheckTemplates(*config);

  Result<Config> again = ParseConfigText(text, "fuzz.toml", environment);
  FUZZ_CHECK(again.ok() && KeysNeedingRestart(*config, *again).empty());
  return 0;
}
