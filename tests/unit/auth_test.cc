#include "http/auth.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::ScopedEnv;
using sidecar::testing::TempDir;
using sidecar::testing::WriteWholeFile;

namespace {

constexpr const char* kToken = "0123456789abcdef-first-token";
constexpr const char* kNextToken = "fedcba9876543210-next-token";

std::string Header(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

void CheckUnauthorized(const std::optional<HttpResponse>& refused) {
  REQUIRE(refused.has_value());
  CHECK(refused->status == 401);
  CHECK(refused->content_type == "application/problem+json");
  CHECK(Header(*refused, "WWW-Authenticate") == "Bearer");
  nlohmann::json body = nlohmann::json::parse(refused->body);
  CHECK(body["code"] == "unauthorized");
  CHECK(body["status"] == 401);
  CHECK(body["type"] == "urn:otp-sidecar:problem:unauthorized");
  CHECK(refused->body.find(kToken) == std::string::npos);
}

std::string TokenFile(const TempDir& dir, const std::string& name, const std::string& content,
                      mode_t mode = 0600) {
  std::string path = dir.File(name);
  WriteWholeFile(path, content);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

void CheckRefusedFile(const Result<CallerAuth>& auth, const std::string& message_part) {
  REQUIRE_FALSE(auth.ok());
  CHECK(auth.error().code == "invalid_secret");
  CHECK_MESSAGE(auth.error().message.find(message_part) != std::string::npos, auth.error().message);
  CHECK(auth.error().field == "auth.token_files");
}

}  // namespace

TEST_SUITE("auth") {
  TEST_CASE("without tokens every request goes through") {
    CallerAuth none;
    CHECK_FALSE(none.enabled());
    CHECK_FALSE(none.Check("/v1/challenges", "").has_value());
    CHECK_FALSE(none.Check("/metrics", "Bearer whatever").has_value());
  }

  TEST_CASE("a missing, malformed or wrong token is a 401 problem") {
    CallerAuth auth({kToken}, true);
    REQUIRE(auth.enabled());
    std::string token = kToken;
    for (const std::string& header :
         {std::string(), std::string("Bearer"), std::string("Bearer "), "Basic " + token, token,
          "Bearer " + token.substr(0, token.size() - 1), "Bearer " + token + "x",
          "Bearer x" + token, "Bearer " + std::string(kNextToken), "Bearer" + token}) {
      CAPTURE(header);
      CheckUnauthorized(auth.Check("/v1/challenges", header));
      CHECK_FALSE(auth.Accepts(header));
    }
  }

  TEST_CASE("the right token goes through, whatever the scheme's case") {
    CallerAuth auth({kToken}, true);
    std::string token = kToken;
    for (const std::string& header : {"Bearer " + token, "bearer " + token, "BEARER " + token,
                                      "Bearer   " + token, "Bearer " + token + " "}) {
      CAPTURE(header);
      CHECK(auth.Accepts(header));
      CHECK_FALSE(auth.Check("/v1/challenges", header).has_value());
    }
  }

  TEST_CASE("several tokens are all accepted, for rotation") {
    CallerAuth auth({kToken, kNextToken}, true);
    CHECK(auth.Accepts(std::string("Bearer ") + kToken));
    CHECK(auth.Accepts(std::string("Bearer ") + kNextToken));
    CHECK_FALSE(auth.Accepts("Bearer 0123456789abcdef"));
  }

  TEST_CASE("probes are exempt; /metrics only when metrics_require_token is false") {
    CallerAuth strict({kToken}, true);
    CHECK_FALSE(strict.Check("/healthz", "").has_value());
    CHECK_FALSE(strict.Check("/readyz", "").has_value());
    CheckUnauthorized(strict.Check("/metrics", ""));
    CHECK_FALSE(strict.Check("/metrics", std::string("Bearer ") + kToken).has_value());

    CallerAuth open_metrics({kToken}, false);
    CHECK_FALSE(open_metrics.Check("/metrics", "").has_value());
    CheckUnauthorized(open_metrics.Check("/v1/verify", ""));

    // Only the exact paths: anything else, even a path that does not exist, needs a token.
    for (const char* path : {"/healthz/", "/healthz/x", "/HEALTHZ", "/metrics/x", "/nope", "/"}) {
      CAPTURE(path);
      CheckUnauthorized(strict.Check(path, ""));
    }
  }

  TEST_CASE("token files are read; relative names from $CREDENTIALS_DIRECTORY") {
    TempDir dir;
    TokenFile(dir, "api-token", std::string(kToken) + "\n");
    std::string absolute = TokenFile(dir, "next", kNextToken);
    ScopedEnv credentials("CREDENTIALS_DIRECTORY", dir.path());

    Result<CallerAuth> auth = MakeCallerAuth(AuthConfig{{"api-token", absolute}, true});
    REQUIRE_MESSAGE(auth.ok(), (auth.ok() ? "" : auth.error().message));
    CHECK(auth->Accepts(std::string("Bearer ") + kToken));
    CHECK(auth->Accepts(std::string("Bearer ") + kNextToken));

    Result<CallerAuth> none = MakeCallerAuth(AuthConfig{});
    REQUIRE(none.ok());
    CHECK_FALSE(none->enabled());
  }

  TEST_CASE("unsafe, empty, short or odd token files are refused without showing them") {
    TempDir dir;
    std::string open = TokenFile(dir, "open", kToken, 0640);
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{open}, true}), "group or others");
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{TokenFile(dir, "empty", "")}, true}), "empty");
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{TokenFile(dir, "newline", "\n")}, true}), "empty");
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{dir.File("missing")}, true}), "missing");
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{TokenFile(dir, "short", "abc123")}, true}),
                     "at least 16");
    Result<CallerAuth> spaced =
        MakeCallerAuth(AuthConfig{{TokenFile(dir, "spaced", "0123456789 abcdef-x\r\n")}, true});
    CheckRefusedFile(spaced, "visible ASCII");
    CHECK(spaced.error().message.find("0123456789") == std::string::npos);

    // One bad file refuses the whole set.
    std::string good = TokenFile(dir, "good", kToken);
    CheckRefusedFile(MakeCallerAuth(AuthConfig{{good, open}, true}), "group or others");
  }
}
