#include "common/url.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace sidecar {
namespace {

Error UrlError(const std::string& what) {
  return MakeError("invalid_url", what);
}

bool AllDigits(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool ValidHost(const std::string& host, bool bracketed) {
  if (host.empty()) return false;
  for (char c : host) {
    bool ok = bracketed ? (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')
                        : (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-');
    if (!ok) return false;
  }
  return true;
}

Status ParseAuthority(const std::string& authority, ParsedUrl& url) {
  if (authority.find('@') != std::string::npos) {
    return UrlError("must not hold a user name or password");
  }
  bool bracketed = !authority.empty() && authority.front() == '[';
  std::size_t host_end = bracketed ? authority.find(']') : authority.find(':');
  if (bracketed && host_end == std::string::npos) return UrlError("has an unclosed '['");

  url.host = bracketed ? authority.substr(1, host_end - 1) : authority.substr(0, host_end);
  std::string rest = host_end == std::string::npos ? "" : authority.substr(host_end + bracketed);
  if (!ValidHost(url.host, bracketed)) return UrlError("has no valid host");
  if (rest.empty()) return OkStatus();

  std::string port = rest.substr(1);
  bool digits = rest.front() == ':' && !port.empty() && port.size() <= 5 && AllDigits(port);
  url.port = digits ? std::stoi(port) : 0;
  if (url.port < 1 || url.port > 65535) return UrlError("has an invalid port");
  return OkStatus();
}

}  // namespace

Result<ParsedUrl> ParseHttpUrl(const std::string& url) {
  bool printable = std::all_of(url.begin(), url.end(), [](char c) { return c > ' ' && c < 127; });
  if (!printable) return UrlError("holds spaces or control characters");

  std::size_t scheme_end = url.find("://");
  std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme != "https" && scheme != "http") return UrlError("must start with https:// or http://");

  ParsedUrl parsed;
  parsed.tls = scheme == "https";
  parsed.port = parsed.tls ? 443 : 80;
  std::size_t authority_begin = scheme_end + 3;
  std::size_t authority_end = url.find_first_of("/?#", authority_begin);
  Status authority =
      ParseAuthority(url.substr(authority_begin, authority_end - authority_begin), parsed);
  if (!authority.ok()) return authority.error();

  parsed.rest = authority_end == std::string::npos ? "" : url.substr(authority_end);
  return parsed;
}

Result<ParsedUrl> ParseTwilioBaseUrl(const std::string& text) {
  Result<ParsedUrl> url = ParseHttpUrl(text);
  if (!url.ok()) return url;

  if (url->rest.find_first_of("?#") != std::string::npos) {
    return UrlError("must not have a query or a fragment");
  }
  while (!url->rest.empty() && url->rest.back() == '/') {
    url->rest.pop_back();
  }
  return url;
}

Result<ParsedUrl> ParseWebhookUrl(const std::string& text) {
  Result<ParsedUrl> url = ParseHttpUrl(text);
  if (!url.ok()) return url;

  if (url->rest.find('#') != std::string::npos) return UrlError("must not have a fragment");
  if (url->rest.empty() || url->rest.front() == '?') url->rest.insert(0, "/");
  return url;
}

}  // namespace sidecar
