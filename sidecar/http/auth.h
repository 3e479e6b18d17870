#pragma once

// Caller authentication: when tokens are configured, every request must carry
// "Authorization: Bearer TOKEN" with one of them, except the probes (/healthz, /readyz) and,
// when so configured, /metrics. Only hashes of the tokens are kept; a presented token is
// hashed the same way and compared with each in constant time, so neither the time taken
// nor its length tells a caller how close it came.

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "http/api.h"

namespace sidecar {

class CallerAuth {
 public:
  // No tokens: every request is let through.
  CallerAuth() = default;

  // `tokens` are the accepted bearer tokens; `metrics_require_token` false exempts /metrics.
  // REQUIRES: sodium_init() has been called.
  CallerAuth(const std::vector<std::string>& tokens, bool metrics_require_token);

  bool enabled() const { return !token_hashes_.empty(); }

  // True for the paths answered without a token: /healthz and /readyz always, /metrics when
  // metrics_require_token is false. Any other path, existing or not, needs a token.
  bool IsExempt(const std::string& path) const;

  // True when `authorization` (the header's value) is "Bearer " (any case) followed by one
  // of the tokens.
  bool Accepts(const std::string& authorization) const;

  // Nothing when the request may go on; otherwise the answer: 401 problem+json with code
  // "unauthorized" and "WWW-Authenticate: Bearer". Never looks at the body.
  std::optional<HttpResponse> Check(const std::string& path,
                                    const std::string& authorization) const;

 private:
  using Hash = std::array<unsigned char, 32>;
  static Hash HashOf(const std::string& token);

  std::vector<Hash> token_hashes_;
  bool metrics_require_token_ = true;
};

// Reads the tokens named by `config` (relative names in $CREDENTIALS_DIRECTORY, see
// ReadSecret) and builds the check. Errors ("invalid_secret", field "auth.token_files") name
// the file, never its content: a file that cannot be read, is readable by group or others,
// is empty, or holds a token shorter than 16 characters or with characters other than
// visible ASCII.
// REQUIRES: sodium_init() has been called.
Result<CallerAuth> MakeCallerAuth(const AuthConfig& config);

}  // namespace sidecar
