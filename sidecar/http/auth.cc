#include "http/auth.h"

#include <sodium.h>

#include <cctype>

#include "config/secrets.h"

namespace sidecar {
namespace {

constexpr std::size_t kMinTokenLength = 16;
constexpr const char kScheme[] = "bearer ";

bool IsVisibleAscii(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// The token after "Bearer ", or "" when the header has another form.
std::string BearerToken(const std::string& authorization) {
  std::size_t scheme_length = sizeof kScheme - 1;
  if (authorization.size() <= scheme_length) return "";
  for (std::size_t i = 0; i < scheme_length; ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(authorization[i])));
    if (c != kScheme[i]) return "";
  }
  std::size_t start = authorization.find_first_not_of(' ', scheme_length);
  if (start == std::string::npos) return "";
  std::size_t end = authorization.find_last_not_of(" \t");
  return authorization.substr(start, end + 1 - start);
}

}  // namespace

CallerAuth::CallerAuth(const std::vector<std::string>& tokens, bool metrics_require_token)
    : metrics_require_token_(metrics_require_token) {
  for (const std::string& token : tokens)
    token_hashes_.push_back(HashOf(token));
}

CallerAuth::Hash CallerAuth::HashOf(const std::string& token) {
  Hash hash;
  crypto_generichash(hash.data(), hash.size(), reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  return hash;
}

bool CallerAuth::IsExempt(const std::string& path) const {
  if (path == "/healthz" || path == "/readyz") return true;
  return path == "/metrics" && !metrics_require_token_;
}

bool CallerAuth::Accepts(const std::string& authorization) const {
  std::string token = BearerToken(authorization);
  if (token.empty()) return false;

  // Hashing first gives equal lengths to compare, so the length of a wrong token shows in
  // no timing; every configured token is compared, so neither does which one matched.
  Hash presented = HashOf(token);
  sodium_memzero(&token[0], token.size());
  bool matched = false;
  for (const Hash& accepted : token_hashes_) {
    matched |= sodium_memcmp(presented.data(), accepted.data(), presented.size()) == 0;
  }
  return matched;
}

std::optional<HttpResponse> CallerAuth::Check(const std::string& path,
                                              const std::string& authorization) const {
  if (!enabled() || IsExempt(path) || Accepts(authorization)) return std::nullopt;

  std::string why = authorization.empty() ? "send Authorization: Bearer with a valid token"
                                          : "the bearer token is not valid";
  HttpResponse response = ProblemResponse(MakeError("unauthorized", why), path);
  response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

Result<CallerAuth> MakeCallerAuth(const AuthConfig& config) {
  std::vector<std::string> tokens;
  auto wipe = [&tokens] {
    for (std::string& token : tokens)
      sodium_memzero(&token[0], token.size());
  };

  for (const std::string& file : config.token_files) {
    Result<std::string> token = ReadSecret(file, "");
    if (!token.ok()) {
      wipe();
      Error error = token.error();
      error.field = "auth.token_files";
      return error;
    }
    tokens.push_back(std::move(token).value());
    const std::string& read = tokens.back();
    if (read.size() < kMinTokenLength || !IsVisibleAscii(read)) {
      wipe();
      return MakeError("invalid_secret",
                       "token file " + file +
                           " must hold one token of at least 16 visible ASCII characters "
                           "(for example from: openssl rand -hex 32)",
                       "auth.token_files");
    }
  }

  CallerAuth auth(tokens, config.metrics_require_token);
  wipe();
  return auth;
}

}  // namespace sidecar
