#include "delivery/message.h"

namespace sidecar {
namespace {

constexpr std::size_t kMaxTemplateLength = 480;

// Calls `on_text` for literal runs and `on_placeholder` for each "{name}". Returns an error
// for an unclosed brace.
template <typename OnText, typename OnPlaceholder>
Status Scan(std::string_view text, OnText on_text, OnPlaceholder on_placeholder) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find('{', pos);
    if (open == std::string_view::npos) {
      on_text(text.substr(pos));
      break;
    }
    on_text(text.substr(pos, open - pos));

    std::size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return MakeError("invalid_template", "a '{' is never closed");
    }
    Status placeholder = on_placeholder(text.substr(open + 1, close - open - 1));
    if (!placeholder.ok()) return placeholder;
    pos = close + 1;
  }
  return OkStatus();
}

std::string MinutesText(std::int64_t ttl_ms) {
  // Rounded up, so that "expires in N minutes" never promises less time than is left.
  std::int64_t minutes = (ttl_ms + 60'000 - 1) / 60'000;
  return std::to_string(minutes < 1 ? 1 : minutes);
}

}  // namespace

Status ValidateTemplate(std::string_view template_text) {
  if (template_text.empty()) return MakeError("invalid_template", "the template is empty");
  if (template_text.size() > kMaxTemplateLength) {
    return MakeError("invalid_template", "the template is longer than 480 bytes");
  }

  int code_count = 0;
  Status scanned = Scan(
      template_text, [](std::string_view) {},
      [&](std::string_view name) -> Status {
        if (name == "code") {
          ++code_count;
        } else if (name != "app" && name != "minutes") {
          return MakeError("invalid_template", "unknown placeholder {" + std::string(name) +
                                                   "}; known are {code}, {app} and {minutes}");
        }
        return OkStatus();
      });
  if (!scanned.ok()) return scanned;

  if (code_count != 1) {
    return MakeError("invalid_template", "the template must contain {code} exactly once");
  }
  return OkStatus();
}

namespace {

bool IsHostLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  for (char c : label) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!allowed) return false;
  }
  return true;
}

}  // namespace

Status ValidateWebOtpDomain(std::string_view domain) {
  bool valid = !domain.empty() && domain.size() <= 253;
  std::size_t start = 0;
  while (valid) {
    std::size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? dot : dot - start);
    valid = IsHostLabel(label);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!valid) {
    return MakeError("invalid_domain",
                     "\"" + std::string(domain) + "\" is not a lower-case DNS host name");
  }
  return OkStatus();
}

const std::string& TemplateFor(const MessageSettings& settings, std::string_view locale) {
  std::string key(locale);
  for (char& c : key) {
    c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (auto exact = settings.templates.find(key); exact != settings.templates.end()) {
    return exact->second;
  }
  std::string language = key.substr(0, key.find('-'));
  if (auto base = settings.templates.find(language); base != settings.templates.end()) {
    return base->second;
  }
  return settings.template_text;
}

std::string RenderMessage(const MessageSettings& settings, std::string_view code,
                          std::string_view locale) {
  std::string out;
  std::string minutes = MinutesText(settings.ttl_ms);
  Status ignored = Scan(
      TemplateFor(settings, locale), [&](std::string_view text) { out += text; },
      [&](std::string_view name) -> Status {
        if (name == "code") {
          out += code;
        } else if (name == "app") {
          out += settings.app_name;
        } else {
          out += minutes;
        }
        return OkStatus();
      });
  (void)ignored;

  if (!settings.webotp_domain.empty()) {
    out += "\n\n@";
    out += settings.webotp_domain;
    out += " #";
    out += code;
  }
  return out;
}

}  // namespace sidecar
