#pragma once

// Renders the SMS text for a code from the operator's template.
//
// Placeholders: {code}, {app}, {minutes}. A template must contain {code} exactly once;
// any other "{...}" is an error, found when the configuration is checked rather than when
// the first message is sent. When a WebOTP domain is set, the message ends with the line
// "@<domain> #<code>" so browsers can offer the code to the page.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sidecar {

struct MessageSettings {
  std::string template_text;  // the default
  std::string app_name;
  std::string webotp_domain;  // empty: no WebOTP line
  std::int64_t ttl_ms = 0;
  std::map<std::string, std::string> templates;  // by lower-case locale: "fr", "pt-br"
};

// Checks a template without rendering it. Error code "invalid_template".
Status ValidateTemplate(std::string_view template_text);

// Checks a WebOTP domain: a DNS host name of lower-case labels (letters, digits, inner '-',
// 1 to 63 bytes each) joined by single dots.
Status ValidateWebOtpDomain(std::string_view domain);

// The template for `locale`: an exact match ("pt-BR" -> "pt-br"), else its language
// ("pt-BR" -> "pt"), else the default. Case and '_' versus '-' do not matter.
const std::string& TemplateFor(const MessageSettings& settings, std::string_view locale);

// REQUIRES: every template of `settings` passed ValidateTemplate.
std::string RenderMessage(const MessageSettings& settings, std::string_view code,
                          std::string_view locale = "");

}  // namespace sidecar
