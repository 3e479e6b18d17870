#pragma once

// http:// and https:// URLs as the SMS providers' settings give them: parsed once when the
// configuration is checked, and again by the provider that calls them.

#include <string>

#include "common/result.h"

namespace sidecar {

// An http:// or https:// URL, split into what a client needs.
struct ParsedUrl {
  bool tls = true;   // https
  std::string host;  // without brackets for IPv6
  int port = 443;    // the scheme's default when the URL names none
  // Everything after host[:port] as written (path, query and fragment); may be empty.
  std::string rest;
};

// Parses http(s)://host[:port] and whatever follows, which is kept unchecked in `rest` for the
// caller to judge. The scheme is case-insensitive; the host is letters, digits, '.' and '-', or
// an IPv6 address in brackets; the port is 1 to 65535.
// Fails with code "invalid_url" when the URL holds spaces or control characters, has another
// scheme, a user name or password, no valid host or an invalid port. The message says what is
// wrong so that it reads after the setting's name ("has an invalid port"); it never repeats
// the URL, which could hold a password.
Result<ParsedUrl> ParseHttpUrl(const std::string& url);

// Twilio's base URL: http(s)://host[:port][/prefix], without a query or a fragment. `rest` is
// the prefix that goes before the API path, without a trailing '/'.
Result<ParsedUrl> ParseTwilioBaseUrl(const std::string& text);

// A webhook's URL: http(s)://host[:port][/path][?query], without a fragment (it would never
// reach the server). `rest` is the request target: the path, "/" at least, with its query.
Result<ParsedUrl> ParseWebhookUrl(const std::string& text);

}  // namespace sidecar
