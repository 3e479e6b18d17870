#pragma once

// Renders the SMS text for a code from the operator's template.
//
// Placeholders: {code}, {app}, {minutes}. A template must contain {code} exactly once;
// any other "{...}" is an error, found when the configuration is checked rather than when
// the first message is sent. When a WebOTP domain is set, the message ends with the line
// "@<domain> #<code>" so browsers can offer the code to the page.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sidecar {

struct MessageSettings {
  std::string template_text;
  std::string app_name;
  std::string webotp_domain;  // empty: no WebOTP line
  std::int64_t ttl_ms = 0;
};

// Checks a template without rendering it. Error code "invalid_template".
Status ValidateTemplate(std::string_view template_text);

// Checks a WebOTP domain: a DNS host name of lower-case labels (letters, digits, inner '-',
// 1 to 63 bytes each) joined by single dots.
Status ValidateWebOtpDomain(std::string_view domain);

// REQUIRES: ValidateTemplate(settings.template_text) succeeded.
std::string RenderMessage(const MessageSettings& settings, std::string_view code);

}  // namespace sidecar
