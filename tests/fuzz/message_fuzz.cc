// The SMS renderer: ValidateTemplate and ValidateWebOtpDomain on operator text, and, for
// settings that pass the checks the configuration makes, RenderMessage and MeasureMessage.
//
// An input is lines, the last field taking the rest (newlines included):
//   code | app_name | webotp_domain | ttl in seconds | locale asked for |
//   locale of a second template | that template (one line) | default template
//
// Checks: no crash, leak or undefined behaviour, and for a rendered message:
// - it holds the code, and ends with "@domain #code" when a WebOTP domain is set;
// - it holds no '{' unless the app name has one: every placeholder of a valid template is
//   filled, and none is left over or invented;
// - MeasureMessage counts at least one segment, and no more units than its rules allow.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codes/codes.h"
#include "delivery/encoding.h"
#include "delivery/message.h"
#include "fuzz_check.h"

namespace {

using namespace sidecar;

constexpr std::size_t kFields = 8;

std::vector<std::string> Fields(std::string_view input) {
  std::vector<std::string> fields;
  while (fields.size() + 1 < kFields) {
    std::size_t newline = input.find('\n');
    fields.emplace_back(input.substr(0, newline));
    input = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  }
  fields.emplace_back(input);
  return fields;
}

bool IsCode(const std::string& code) {
  if (code.size() < static_cast<std::size_t>(kMinCodeLength) ||
      code.size() > static_cast<std::size_t>(kMaxCodeLength)) {
    return false;
  }
  return code.find_first_not_of("0123456789") == std::string::npos;
}

// What the configuration requires of app_name: 1 to 64 printable characters.
bool IsAppName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// The code lifetime in milliseconds, within the configuration's range of 1 s to 1 day.
std::int64_t TtlMs(const std::string& seconds) {
  std::int64_t value = 0;
  for (char c : seconds.substr(0, 6)) {
    if (c >= '0' && c <= '9') value = value * 10 + (c - '0');
  }
  return std::min<std::int64_t>(86'400, std::max<std::int64_t>(1, value)) * 1000;
}

void CheckMeasure(const std::string& text) {
  MessageEncoding encoding = MeasureMessage(text);
  FUZZ_CHECK(encoding.segments >= 1);
  FUZZ_CHECK(encoding.units >= 0);
  std::size_t most = encoding.gsm7 ? 2 * text.size() : text.size();
  FUZZ_CHECK(static_cast<std::size_t>(encoding.units) <= most);
  FUZZ_CHECK(!encoding.ToString().empty());
}

void CheckRendered(const MessageSettings& settings, const std::string& code,
                   const std::string& locale) {
  std::string message = RenderMessage(settings, code, locale);
  FUZZ_CHECK(message.find(code) != std::string::npos);
  if (settings.app_name.find('{') == std::string::npos) {
    FUZZ_CHECK(message.find('{') == std::string::npos);
  }
  if (!settings.webotp_domain.empty()) {
    std::string tail = "\n\n@" + settings.webotp_domain + " #" + code;
    FUZZ_CHECK(message.size() >= tail.size() &&
               message.compare(message.size() - tail.size(), tail.size(), tail) == 0);
  }
  CheckMeasure(message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> f = Fields(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string& code = f[0];
  MessageSettings settings{f[7], f[1], f[2], TtlMs(f[3]), {{f[5], f[6]}}};
  const std::string& locale = f[4];

  // The checks run on any text, as the configuration runs them on what an operator wrote.
  bool valid_default = ValidateTemplate(settings.template_text).ok();
  bool valid_second = ValidateTemplate(f[6]).ok();
  bool valid_domain = f[2].empty() || ValidateWebOtpDomain(f[2]).ok();
  CheckMeasure(settings.template_text);

  // Rendering REQUIRES settings that passed those checks.
  if (!valid_default || !valid_second || !valid_domain || !IsCode(code) || !IsAppName(f[1])) {
    return 0;
  }
  const std::string& chosen = TemplateFor(settings, locale);
  FUZZ_CHECK(&chosen == &settings.template_text || &chosen == &settings.templates.begin()->second);
  CheckRendered(settings, code, locale);
  CheckRendered(settings, code, f[5]);
  return 0;
}
