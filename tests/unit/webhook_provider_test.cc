#include "providers/webhook_provider.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <sodium.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/fakes.h"
#include "support/http_fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using nlohmann::json;
using sidecar::testing::FakeClock;
using sidecar::testing::RecordingServer;
using sidecar::testing::RefusingPort;
using sidecar::testing::TempDir;
using sidecar::testing::TestPki;
using Kind = SendOutcome::Kind;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSecret = "whsec_9b1d5e7f3a2c4e6a8b0d1f3e5a7c9b2d";
constexpr const char* kTo = "+12065550100";
constexpr const char* kBody = "482913 is your Example verification code.";
constexpr TimeMs kNow = 1'796'331'204'123;  // 2026-12-03T20:53:24.123Z

struct Reply {
  int status = 200;
  std::string body = R"({"id": "gw-42"})";
  std::string retry_after;  // sent as Retry-After when not empty
  bool stall = false;       // answer only once the test ends
};

struct Seen {
  std::string path;
  std::string content_type;
  std::string timestamp;
  std::string signature;
  std::string body;
  httplib::Params query;
  bool signature_valid = false;  // checked as a receiver would, with the shared secret
};

Seen Record(const httplib::Request& req) {
  Seen seen{req.path,
            req.get_header_value("Content-Type"),
            req.get_header_value("X-OTP-Sidecar-Timestamp"),
            req.get_header_value("X-OTP-Sidecar-Signature"),
            req.body,
            req.params,
            false};
  std::string expected = WebhookSignature(kSecret, seen.timestamp, seen.body);
  seen.signature_valid =
      expected.size() == seen.signature.size() &&
      sodium_memcmp(expected.data(), seen.signature.data(), expected.size()) == 0;
  return seen;
}

// The operator's gateway: checks each request's signature with kSecret, records it and
// answers with `reply`. With `pki`, it speaks HTTPS with the PKI's server certificate.
class FakeGateway : public RecordingServer<Reply, Seen> {
 public:
  explicit FakeGateway(Reply reply, const TestPki* pki = nullptr)
      : RecordingServer(std::move(reply), Record, pki) {}

  std::string url(const std::string& path = "/sms") const { return origin() + path; }
};

WebhookSettings Settings(const std::string& url) {
  WebhookSettings settings;
  settings.url = url;
  settings.secret = kSecret;
  settings.connect_timeout_ms = 2000;
  settings.request_timeout_ms = 5000;
  return settings;
}

SmsMessage Message() {
  return SmsMessage{kTo, kBody, "ch_0123456789"};
}

SendOutcome SendWith(const WebhookSettings& settings) {
  FakeClock clock(kNow);
  WebhookProvider provider(settings, clock);
  return provider.Send(Message());
}

void CheckNoSecret(const SendOutcome& outcome) {
  CHECK(outcome.reason.find(kSecret) == std::string::npos);
  CHECK(outcome.reason.find("482913") == std::string::npos);
  CHECK(outcome.reason.find(kTo) == std::string::npos);
}

}  // namespace

TEST_SUITE("webhook_provider") {
  TEST_CASE("webhook: the signature is HMAC-SHA256 over timestamp.body, hex, with v1=") {
    // Expected values computed independently (Python's hmac module).
    CHECK(WebhookSignature("whsec_test", "1780000000", R"({"a":1})") ==
          "v1=700c60b8f205399083ecf27f87a596a7e0e9e3e24df342efa14010dbfa48faae");
    // A key longer than SHA-256's 64-byte block is hashed first, as HMAC requires.
    std::string long_key;
    for (int i = 0; i < 100; ++i) {
      long_key += static_cast<char>(i);
    }
    CHECK(WebhookSignature(long_key, "1780000000", "hello") ==
          "v1=8bd79511668dc92695e9a2f5e0997ccc2ec0b36fd2059bd54d792cbaac9c0d52");
    CHECK(WebhookSignature("whsec_test", "1780000001", R"({"a":1})") !=
          WebhookSignature("whsec_test", "1780000000", R"({"a":1})"));
  }

  TEST_CASE("webhook: a message is posted as signed JSON with to, body, challenge_id, sent_at") {
    FakeGateway gateway{Reply{}};
    FakeClock clock(kNow);
    WebhookProvider provider(Settings(gateway.url()), clock);
    CHECK(provider.name() == "webhook");

    SendOutcome outcome = provider.Send(Message());

    CHECK(outcome.kind == Kind::kSent);
    CHECK(outcome.message_id == "gw-42");
    std::vector<Seen> seen = gateway.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].path == "/sms");
    CHECK(seen[0].content_type == "application/json");
    CHECK(seen[0].timestamp == "1796331204");
    CHECK(seen[0].signature_valid);
    CHECK(seen[0].signature.rfind("v1=", 0) == 0);
    CHECK(json::parse(seen[0].body) == json{{"to", kTo},
                                            {"body", kBody},
                                            {"challenge_id", "ch_0123456789"},
                                            {"sent_at", "2026-12-03T20:53:24.123Z"}});
  }

  TEST_CASE("webhook: a receiver with another secret, or another timestamp, rejects it") {
    FakeGateway gateway{Reply{}};

    REQUIRE(SendWith(Settings(gateway.url())).kind == Kind::kSent);

    Seen seen = gateway.seen().at(0);
    CHECK(WebhookSignature("another secret", seen.timestamp, seen.body) != seen.signature);
    CHECK(WebhookSignature(kSecret, "1796331205", seen.body) != seen.signature);
    CHECK(WebhookSignature(kSecret, seen.timestamp, seen.body + " ") != seen.signature);
  }

  TEST_CASE("webhook: with the system clock the timestamp is the current time") {
    FakeGateway gateway{Reply{}};
    SystemClock clock;
    WebhookProvider provider(Settings(gateway.url()), clock);

    REQUIRE(provider.Send(Message()).kind == Kind::kSent);

    Seen seen = gateway.seen().at(0);
    std::int64_t now_s = clock.Now() / 1000;
    REQUIRE(!seen.timestamp.empty());
    std::int64_t timestamp = std::stoll(seen.timestamp);
    CHECK(timestamp <= now_s);
    CHECK(timestamp >= now_s - 60);
    CHECK(seen.signature_valid);
  }

  TEST_CASE("webhook: any 2xx is sent, with the answer's id when there is one") {
    struct Case {
      int status;
      std::string body;
      std::string id;
    };
    for (const Case& c :
         {Case{200, R"({"id": "abc"})", "abc"}, Case{201, R"({"id": 991})", "991"},
          Case{202, R"({"queued": true})", ""}, Case{200, "OK", ""}, Case{204, "", ""},
          Case{200, R"(["id"])", ""}, Case{200, R"({"id": "gw:7.a_b-c"})", "gw:7.a_b-c"},
          Case{200, R"({"id": "gw 7"})", ""}, Case{200, R"({"id": "id-482913"})", ""},
          Case{200, R"({"id": "12065550100"})", ""},
          Case{200, R"({"id": ")" + std::string(129, 'x') + R"("})", ""}}) {
      CAPTURE(c.status);
      CAPTURE(c.body);
      FakeGateway gateway{Reply{c.status, c.body, "", false}};

      SendOutcome outcome = SendWith(Settings(gateway.url()));

      CHECK(outcome.kind == Kind::kSent);
      CHECK(outcome.message_id == c.id);
    }
  }

  TEST_CASE("webhook: the url's query string is kept") {
    FakeGateway gateway{Reply{}};

    REQUIRE(SendWith(Settings(gateway.url("/hooks/sms?tenant=north&x=1"))).kind == Kind::kSent);

    Seen seen = gateway.seen().at(0);
    CHECK(seen.path == "/hooks/sms");
    CHECK(seen.query == httplib::Params{{"tenant", "north"}, {"x", "1"}});
    CHECK(seen.signature_valid);
  }

  TEST_CASE("webhook: 429 retries after Retry-After, capped at one hour") {
    for (auto [header, after_ms] : {std::pair<std::string, std::int64_t>{"3", 3000},
                                    {"7200", 3'600'000},
                                    {"", 0},
                                    {"soon", 0}}) {
      CAPTURE(header);
      FakeGateway gateway{Reply{429, R"({"error": "slow down"})", header, false}};

      SendOutcome outcome = SendWith(Settings(gateway.url()));

      CHECK(outcome.kind == Kind::kRetry);
      CHECK(outcome.retry_after_ms == after_ms);
      CHECK(outcome.reason == "HTTP 429: slow down");
    }
  }

  TEST_CASE("webhook: 401 and 403 are failures of the provider itself") {
    for (int status : {401, 403}) {
      CAPTURE(status);
      FakeGateway gateway{Reply{status, R"({"error": "bad signature"})", "", false}};

      SendOutcome outcome = SendWith(Settings(gateway.url()));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason == "HTTP " + std::to_string(status) + ": bad signature");
    }
  }

  TEST_CASE("webhook: another 4xx is permanent for this message only") {
    for (int status : {400, 404, 422}) {
      CAPTURE(status);
      FakeGateway gateway{Reply{status, R"({"message": "unsupported destination"})", "", false}};

      SendOutcome outcome = SendWith(Settings(gateway.url()));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK_FALSE(outcome.provider_failure);
      CHECK(outcome.reason == "HTTP " + std::to_string(status) + ": unsupported destination");
    }
  }

  TEST_CASE("webhook: 5xx is a retry, with Retry-After when given") {
    FakeGateway unavailable{Reply{503, "<html>busy</html>", "5", false}};
    FakeGateway broken{Reply{500, "", "", false}};

    SendOutcome first = SendWith(Settings(unavailable.url()));
    SendOutcome second = SendWith(Settings(broken.url()));

    CHECK(first.kind == Kind::kRetry);
    CHECK(first.retry_after_ms == 5000);
    CHECK(first.reason == "HTTP 503");
    CHECK(second.kind == Kind::kRetry);
    CHECK(second.retry_after_ms == 0);
  }

  TEST_CASE("webhook: a redirect is not followed and fails the provider") {
    FakeGateway gateway{Reply{301, "", "", false}};

    SendOutcome outcome = SendWith(Settings(gateway.url()));

    CHECK(outcome.kind == Kind::kPermanentFailure);
    CHECK(outcome.provider_failure);
  }

  TEST_CASE("webhook: an answer that stalls past the request timeout is unknown") {
    Reply reply;
    reply.stall = true;
    FakeGateway gateway{reply};
    WebhookSettings settings = Settings(gateway.url());
    settings.request_timeout_ms = 300;

    auto started = std::chrono::steady_clock::now();
    SendOutcome outcome = SendWith(settings);
    auto elapsed = std::chrono::steady_clock::now() - started;

    CHECK(outcome.kind == Kind::kUnknown);
    CHECK(gateway.seen().size() == 1);
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 5s);
  }

  TEST_CASE("webhook: nothing listening is a retry") {
    RefusingPort port;

    SendOutcome outcome =
        SendWith(Settings("http://127.0.0.1:" + std::to_string(port.port()) + "/sms"));

    CHECK(outcome.kind == Kind::kRetry);
  }

  TEST_CASE("webhook: HTTPS verifies the gateway against ca_file") {
    TempDir dir;
    TestPki pki(dir, "gateway");
    TestPki other(dir, "other");
    FakeGateway gateway{Reply{}, &pki};

    SUBCASE("the gateway's authority") {
      WebhookSettings settings = Settings(gateway.url());
      settings.ca_file = pki.ca_file;

      SendOutcome outcome = SendWith(settings);

      CHECK(outcome.kind == Kind::kSent);
      CHECK(outcome.message_id == "gw-42");
      REQUIRE(gateway.seen().size() == 1);
      CHECK(gateway.seen()[0].signature_valid);
    }
    SUBCASE("another authority") {
      WebhookSettings settings = Settings(gateway.url());
      settings.ca_file = other.ca_file;

      SendOutcome outcome = SendWith(settings);

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("certificate") != std::string::npos);
      CHECK(gateway.seen().empty());
    }
  }

  TEST_CASE("webhook: an unusable url fails the provider without any request") {
    for (const char* url : {"", "gateway.example/sms", "https:///sms", "http://127.0.0.1:0/sms",
                            "https://127.0.0.1/sms#part", "https://u:hunter2@127.0.0.1/"}) {
      CAPTURE(url);

      SendOutcome outcome = SendWith(Settings(url));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("url ") == 0);
      CHECK(outcome.reason.find("hunter2") == std::string::npos);
    }
  }

  TEST_CASE("webhook: the secret, the code and the number appear in no reason") {
    std::string echo =
        std::string("secret ") + kSecret + " body " + kBody + " code 482913 to " + kTo;
    for (int status : {400, 401, 429, 503}) {
      CAPTURE(status);
      FakeGateway gateway{Reply{status, json{{"error", echo}}.dump(), "", false}};

      SendOutcome outcome = SendWith(Settings(gateway.url()));

      CHECK(outcome.kind != Kind::kSent);
      CheckNoSecret(outcome);
      CHECK(outcome.reason.find("[redacted]") != std::string::npos);
      CHECK(outcome.reason.size() <= 200);
    }
  }

  TEST_CASE("webhook: a body that is not valid UTF-8 is still sent, never thrown") {
    FakeGateway gateway{Reply{}};
    FakeClock clock(kNow);
    WebhookProvider provider(Settings(gateway.url()), clock);

    SendOutcome outcome = provider.Send({kTo, "123456 \xff\xfe is your code", "ch_1"});

    CHECK(outcome.kind == Kind::kSent);
    Seen seen = gateway.seen().at(0);
    CHECK(seen.signature_valid);
    json body = json::parse(seen.body, nullptr, false);
    REQUIRE_FALSE(body.is_discarded());
    CHECK(body["body"].get<std::string>().rfind("123456 ", 0) == 0);
  }

}  // TEST_SUITE
