#include "providers/twilio_provider.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/fakes.h"
#include "support/http_fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::RecordingServer;
using sidecar::testing::RefusingPort;
using sidecar::testing::SilentServer;
using sidecar::testing::TempDir;
using sidecar::testing::TestPki;
using Kind = SendOutcome::Kind;
using namespace std::chrono_literals;

namespace {

constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kAuthToken = "tok3f9a7c1e5b2d4a6c8e0f1a3b5c7d9e1f";
constexpr const char* kSid = "SM0123456789abcdef0123456789abcdef";
constexpr const char* kTo = "+12065550100";
constexpr const char* kBody = "482913 is your Example verification code.";
// base64("AC0123456789abcdef0123456789abcdef:tok3f9a7c1e5b2d4a6c8e0f1a3b5c7d9e1f")
constexpr const char* kBasicAuth =
    "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2szZjlhN2MxZTViMmQ0YTZjOGUwZjFhM2I1Yzdk"
    "OWUxZg==";

struct Reply {
  int status = 201;
  std::string body = std::string(R"({"sid": ")") + kSid + R"(", "status": "queued"})";
  std::string retry_after;  // sent as Retry-After when not empty
  bool stall = false;       // answer only once the test ends
};

struct Seen {
  std::string method;
  std::string path;
  std::string authorization;
  std::string content_type;
  std::string body;
  httplib::Params form;
};

Seen Record(const httplib::Request& req) {
  return Seen{req.method,
              req.path,
              req.get_header_value("Authorization"),
              req.get_header_value("Content-Type"),
              req.body,
              req.params};
}

// Twilio's Messages endpoint as far as these tests need it: records each request and
// answers with `reply`. With `pki`, it speaks HTTPS with the PKI's server certificate.
class FakeTwilio : public RecordingServer<Reply, Seen> {
 public:
  explicit FakeTwilio(Reply reply, const TestPki* pki = nullptr)
      : RecordingServer(std::move(reply), Record, pki) {}

  std::string base_url() const { return origin(); }
};

TwilioSettings Settings(const std::string& base_url) {
  TwilioSettings settings;
  settings.account_sid = kAccountSid;
  settings.auth_token = kAuthToken;
  settings.from = "+12065550199";
  settings.base_url = base_url;
  settings.connect_timeout_ms = 2000;
  settings.request_timeout_ms = 5000;
  return settings;
}

SmsMessage Message() {
  return SmsMessage{kTo, kBody, "ch_0123456789"};
}

SendOutcome SendWith(const TwilioSettings& settings) {
  TwilioProvider provider(settings);
  return provider.Send(Message());
}

// One error answer in Twilio's shape.
Reply TwilioError(int status, int code, const std::string& message) {
  Reply reply;
  reply.status = status;
  reply.body = R"({"code": )" + std::to_string(code) + R"(, "message": ")" + message +
               R"(", "more_info": "https://www.twilio.com/docs/errors/)" + std::to_string(code) +
               R"(", "status": )" + std::to_string(status) + "}";
  return reply;
}

std::string ExpectedPath() {
  return std::string("/2010-04-01/Accounts/") + kAccountSid + "/Messages.json";
}

void CheckNoSecret(const SendOutcome& outcome) {
  CHECK(outcome.reason.find(kAuthToken) == std::string::npos);
  CHECK(outcome.reason.find("482913") == std::string::npos);
  CHECK(outcome.reason.find(kTo) == std::string::npos);
  CHECK(outcome.reason.find("12065550100") == std::string::npos);  // as in "To=%2B1206..."
}

}  // namespace

TEST_SUITE("twilio_provider") {
  TEST_CASE("twilio: a message is posted as Twilio's form with basic auth, and its sid recorded") {
    FakeTwilio twilio{Reply{}};
    TwilioSettings settings = Settings(twilio.base_url());
    settings.status_callback = "https://hooks.example.com/twilio/status?x=1";
    TwilioProvider provider(settings);
    CHECK(provider.name() == "twilio");

    SendOutcome outcome = provider.Send(Message());

    CHECK(outcome.kind == Kind::kSent);
    CHECK(outcome.message_id == kSid);
    CHECK(outcome.reason.empty());
    std::vector<Seen> seen = twilio.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == "POST");
    CHECK(seen[0].path == ExpectedPath());
    CHECK(seen[0].authorization == kBasicAuth);
    CHECK(seen[0].content_type == "application/x-www-form-urlencoded");
    CHECK(seen[0].form == httplib::Params{{"To", kTo},
                                          {"From", "+12065550199"},
                                          {"Body", kBody},
                                          {"StatusCallback", settings.status_callback}});
    // The '+' must travel encoded: a bare '+' in a form reads as a space.
    CHECK(seen[0].body.find("To=%2B12065550100") != std::string::npos);
  }

  TEST_CASE("twilio: an API key is the basic-auth user, and a messaging service replaces From") {
    FakeTwilio twilio{Reply{}};
    TwilioSettings settings = Settings(twilio.base_url() + "/");
    settings.api_key_sid = "SK00112233445566778899aabbccddeeff";
    settings.from = "";
    settings.messaging_service_sid = "MG00112233445566778899aabbccddeeff";

    SendOutcome outcome = SendWith(settings);

    CHECK(outcome.kind == Kind::kSent);
    std::vector<Seen> seen = twilio.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].path == ExpectedPath());  // the account, not the key, is in the path
    // base64("SK00112233445566778899aabbccddeeff:" + kAuthToken)
    CHECK(
        seen[0].authorization ==
        "Basic U0swMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmJjY2RkZWVmZjp0b2szZjlhN2MxZTViMmQ0YTZjOGUwZjFhM2I1"
        "YzdkOWUxZg==");
    CHECK(seen[0].form == httplib::Params{{"To", kTo},
                                          {"MessagingServiceSid", settings.messaging_service_sid},
                                          {"Body", kBody}});
  }

  TEST_CASE("twilio: sends from several threads at once each get an answer") {
    FakeTwilio twilio{Reply{}};
    TwilioProvider provider(Settings(twilio.base_url()));
    std::vector<SendOutcome> outcomes(4);
    std::vector<std::thread> threads;

    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      threads.emplace_back([&, i] { outcomes[i] = provider.Send(Message()); });
    }
    for (std::thread& thread : threads) {
      thread.join();
    }

    for (const SendOutcome& outcome : outcomes) {
      CHECK(outcome.kind == Kind::kSent);
      CHECK(outcome.message_id == kSid);
    }
    CHECK(twilio.seen().size() == 4);
  }

  TEST_CASE("twilio: a path in base_url is kept in front of the API path") {
    FakeTwilio twilio{Reply{}};

    SendOutcome outcome = SendWith(Settings(twilio.base_url() + "/relay/twilio/"));

    CHECK(outcome.kind == Kind::kSent);
    REQUIRE(twilio.seen().size() == 1);
    CHECK(twilio.seen()[0].path == "/relay/twilio" + ExpectedPath());
  }

  TEST_CASE("twilio: errors about the recipient are permanent with a stable reason") {
    struct Case {
      int code;
      const char* reason;
    };
    for (Case c : {Case{21211, "invalid_number"}, Case{21614, "invalid_number"},
                   Case{21610, "recipient_opted_out"}, Case{21408, "region_blocked"}}) {
      CAPTURE(c.code);
      FakeTwilio twilio{TwilioError(400, c.code, "The 'To' number +12065550100 is refused.")};

      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.reason == c.reason);
      CHECK_FALSE(outcome.provider_failure);
    }
  }

  TEST_CASE("twilio: another 400 is permanent for this message, with Twilio's code and message") {
    FakeTwilio twilio{TwilioError(400, 21606, "The From phone number is not a valid number.")};

    SendOutcome outcome = SendWith(Settings(twilio.base_url()));

    CHECK(outcome.kind == Kind::kPermanentFailure);
    CHECK_FALSE(outcome.provider_failure);
    CHECK(outcome.reason ==
          "HTTP 400, Twilio error 21606: The From phone number is not a valid number.");
  }

  TEST_CASE("twilio: 401 and 403 are failures of the provider itself") {
    for (int status : {401, 403}) {
      CAPTURE(status);
      FakeTwilio twilio{TwilioError(status, 20003, "Authenticate")};

      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("20003") != std::string::npos);
      CheckNoSecret(outcome);
    }
  }

  TEST_CASE("twilio: 429 retries after Retry-After, capped at one hour") {
    struct Case {
      std::string header;
      std::int64_t after_ms;
    };
    for (const Case& c : {Case{"1", 1000}, Case{"120", 120'000}, Case{"86400", 3'600'000},
                          Case{"", 0}, Case{"Wed, 21 Oct 2015 07:28:00 GMT", 0}, Case{"-5", 0}}) {
      CAPTURE(c.header);
      Reply reply = TwilioError(429, 20429, "Too Many Requests");
      reply.retry_after = c.header;
      FakeTwilio twilio{reply};

      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind == Kind::kRetry);
      CHECK(outcome.retry_after_ms == c.after_ms);
    }
  }

  TEST_CASE("twilio: code 20429 is a retry whatever the status") {
    FakeTwilio twilio{TwilioError(400, 20429, "Too Many Requests")};

    SendOutcome outcome = SendWith(Settings(twilio.base_url()));

    CHECK(outcome.kind == Kind::kRetry);
    CHECK(outcome.reason.find("20429") != std::string::npos);
  }

  TEST_CASE("twilio: 5xx is a retry, with Retry-After when given") {
    FakeTwilio plain{Reply{500, "Internal Server Error", "", false}};
    Reply busy = TwilioError(503, 20500, "Service Unavailable");
    busy.retry_after = "7";
    FakeTwilio unavailable{busy};

    SendOutcome first = SendWith(Settings(plain.base_url()));
    SendOutcome second = SendWith(Settings(unavailable.base_url()));

    CHECK(first.kind == Kind::kRetry);
    CHECK(first.retry_after_ms == 0);
    CHECK(first.reason == "HTTP 500");
    CHECK(second.kind == Kind::kRetry);
    CHECK(second.retry_after_ms == 7000);
  }

  TEST_CASE("twilio: a success without a sid, or a redirect, is not taken as sent") {
    FakeTwilio no_sid{Reply{201, R"({"status": "queued"})", "", false}};
    FakeTwilio redirect{Reply{302, "", "", false}};

    SendOutcome first = SendWith(Settings(no_sid.base_url()));
    SendOutcome second = SendWith(Settings(redirect.base_url()));

    CHECK(first.kind == Kind::kUnknown);
    CHECK(second.kind == Kind::kPermanentFailure);
    CHECK(second.provider_failure);
  }

  TEST_CASE("twilio: an answer that stalls past the request timeout is unknown") {
    Reply reply;
    reply.stall = true;
    FakeTwilio twilio{reply};
    TwilioSettings settings = Settings(twilio.base_url());
    settings.request_timeout_ms = 300;

    auto started = std::chrono::steady_clock::now();
    SendOutcome outcome = SendWith(settings);
    auto elapsed = std::chrono::steady_clock::now() - started;

    CHECK(outcome.kind == Kind::kUnknown);
    CHECK(twilio.seen().size() == 1);
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 5s);
  }

  TEST_CASE("twilio: a connection closed after the whole request was read is unknown") {
    SilentServer server(/*read_request=*/true);

    SendOutcome outcome = SendWith(Settings("http://127.0.0.1:" + std::to_string(server.port())));

    CHECK(outcome.kind == Kind::kUnknown);
    CHECK(server.last_request().find("POST " + ExpectedPath()) == 0);
  }

  TEST_CASE("twilio: a connection closed at once is unknown or a retry, never sent or final") {
    SilentServer server(/*read_request=*/false);

    SendOutcome outcome = SendWith(Settings("http://127.0.0.1:" + std::to_string(server.port())));

    // Which one depends on whether the close arrives before the request is written.
    CHECK((outcome.kind == Kind::kUnknown || outcome.kind == Kind::kRetry));
    CHECK(server.accepted() == 1);
  }

  TEST_CASE("twilio: nothing listening is a retry") {
    RefusingPort port;

    SendOutcome outcome = SendWith(Settings("http://127.0.0.1:" + std::to_string(port.port())));

    CHECK(outcome.kind == Kind::kRetry);
    CHECK(outcome.reason.find("127.0.0.1:" + std::to_string(port.port())) != std::string::npos);
  }

  TEST_CASE("twilio: HTTPS verifies the server against ca_file") {
    TempDir dir;
    TestPki pki(dir, "good");
    FakeTwilio twilio{Reply{}, &pki};
    TwilioSettings settings = Settings(twilio.base_url());
    settings.ca_file = pki.ca_file;

    SendOutcome outcome = SendWith(settings);

    CHECK(outcome.kind == Kind::kSent);
    CHECK(outcome.message_id == kSid);
    REQUIRE(twilio.seen().size() == 1);
    CHECK(twilio.seen()[0].authorization == kBasicAuth);
  }

  TEST_CASE("twilio: a certificate that does not verify fails the provider before any request") {
    TempDir dir;
    TestPki server_pki(dir, "server");
    TestPki other_pki(dir, "other");
    TestPki misnamed_pki(dir, "misnamed", "127.0.0.2");
    FakeTwilio twilio{Reply{}, &server_pki};
    FakeTwilio misnamed{Reply{}, &misnamed_pki};

    SUBCASE("signed by another authority than ca_file") {
      TwilioSettings settings = Settings(twilio.base_url());
      settings.ca_file = other_pki.ca_file;

      SendOutcome outcome = SendWith(settings);

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("certificate") != std::string::npos);
      CHECK(outcome.reason.find("unknown authority") != std::string::npos);
    }
    SUBCASE("not in the system store") {
      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("certificate") != std::string::npos);
    }
    SUBCASE("issued for another address") {
      TwilioSettings settings = Settings(misnamed.base_url());
      settings.ca_file = misnamed_pki.ca_file;

      SendOutcome outcome = SendWith(settings);

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("does not name the host") != std::string::npos);
    }
    CHECK(twilio.seen().empty());
    CHECK(misnamed.seen().empty());
  }

  TEST_CASE("twilio: an unusable base_url fails the provider without any request") {
    struct Case {
      std::string url;
      std::string reason;
    };
    for (const Case& c :
         {Case{"ftp://127.0.0.1/", "must start with https:// or http://"},
          Case{"127.0.0.1:443", "must start with https:// or http://"},
          Case{"https://", "has no valid host"},
          Case{"https://user:hunter2@127.0.0.1", "user name or password"},
          Case{"https://127.0.0.1:99999", "invalid port"},
          Case{"https://127.0.0.1:44x", "invalid port"}, Case{"https://127.0.0.1/x?y=1", "query"},
          Case{"https://api twilio.com", "spaces"}, Case{"https://[::1", "unclosed"}}) {
      CAPTURE(c.url);

      SendOutcome outcome = SendWith(Settings(c.url));

      CHECK(outcome.kind == Kind::kPermanentFailure);
      CHECK(outcome.provider_failure);
      CHECK(outcome.reason.find("base_url") == 0);
      CHECK(outcome.reason.find(c.reason) != std::string::npos);
      CHECK(outcome.reason.find("hunter2") == std::string::npos);
    }
  }

  TEST_CASE("twilio: an account SID that would change the URL fails the provider") {
    TwilioSettings settings = Settings("http://127.0.0.1:1");
    settings.account_sid = "AC123/../../other";

    SendOutcome outcome = SendWith(settings);

    CHECK(outcome.kind == Kind::kPermanentFailure);
    CHECK(outcome.provider_failure);
  }

  TEST_CASE("twilio: the auth token, the code and the number appear in no reason") {
    std::string echo = std::string("token ") + kAuthToken + " header " + kBasicAuth + " body " +
                       kBody + " code 482913 to " + kTo + " form To=%2B12065550100&Body=x";
    for (int status : {400, 401, 429, 500}) {
      CAPTURE(status);
      FakeTwilio twilio{TwilioError(status, 21606, echo)};

      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind != Kind::kSent);
      CheckNoSecret(outcome);
      CHECK(outcome.reason.find("QUMwMTIz") == std::string::npos);  // the base64 credentials
      CHECK(outcome.reason.find("[redacted]") != std::string::npos);
    }
  }

  TEST_CASE("twilio: a sid that is not a plain token, or quotes the message, is not kept") {
    for (const std::string& sid : {std::string("SM 1"), std::string("SM482913"),
                                   std::string(129, 'a'), std::string("SM<b>")}) {
      CAPTURE(sid);
      FakeTwilio twilio{Reply{201, nlohmann::json{{"sid", sid}}.dump(), "", false}};

      SendOutcome outcome = SendWith(Settings(twilio.base_url()));

      CHECK(outcome.kind == Kind::kSent);
      CHECK(outcome.message_id.empty());
    }
  }

  TEST_CASE("twilio: reasons are one line of at most 200 bytes") {
    std::string long_message = "line one\\nline two \\\"quoted\\\" " + std::string(400, 'x');
    FakeTwilio twilio{TwilioError(400, 21606, long_message)};

    SendOutcome outcome = SendWith(Settings(twilio.base_url()));

    CHECK(outcome.kind == Kind::kPermanentFailure);
    CHECK(outcome.reason.size() <= 200);
    CHECK(outcome.reason.find('\n') == std::string::npos);
    CHECK(outcome.reason.find('"') == std::string::npos);
    CHECK(outcome.reason.find("line one line two") != std::string::npos);
  }

}  // TEST_SUITE
