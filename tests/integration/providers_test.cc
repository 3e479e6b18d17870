// Real providers end to end: the real binary delivering through Twilio and webhook fakes
// that are real servers on 127.0.0.1, started and stopped by each test. Covers the request
// shapes, the answer -> delivery state mapping, retries, failover, a provider that is down
// or stalls, secrets, and per-locale templates.

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "integration/provider_fakes.h"
#include "integration/test_helpers.h"
#include "providers/webhook_provider.h"

namespace sidecar::testing {
namespace {

using std::chrono::duration_cast;
using std::chrono::steady_clock;

constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kTwilioToken = "tok9f8e7d6c5b4a39281706f5e4d3c2b1a0Zq";
constexpr const char* kWebhookSecret = "whsec5b1f0c9a8e7d6c5b4a3928170f6e5d4cXy";
constexpr const char* kFrom = "+12065550199";

// The secret files a test's providers read (mode 0600, with a trailing newline), in a
// folder of their own where a test may also put its PKI.
struct ProviderFiles {
  TempDir dir;
  std::string token_file = dir.File("twilio-token");
  std::string secret_file = dir.File("webhook-secret");

  ProviderFiles() {
    WriteFileBytes(token_file, std::string(kTwilioToken) + "\n", 0600);
    WriteFileBytes(secret_file, std::string(kWebhookSecret) + "\n", 0600);
  }
};

std::string Quoted(const std::string& text) {
  return nlohmann::json(text).dump();
}

std::string TwilioToml(const std::string& base_url, const std::string& token_file,
                       const std::string& ca_file) {
  return "[sms.twilio]\naccount_sid = " + Quoted(kAccountSid) +
         "\nauth_token_file = " + Quoted(token_file) + "\nfrom = " + Quoted(kFrom) +
         "\nbase_url = " + Quoted(base_url) + "\nca_file = " + Quoted(ca_file) + "\n";
}

std::string WebhookToml(const std::string& url, const std::string& secret_file) {
  return "[sms.webhook]\nurl = " + Quoted(url) + "\nsecret_file = " + Quoted(secret_file) + "\n";
}

// [delivery] with short timeouts unless overridden by `extra` (full "key = value" lines).
std::string DeliveryToml(const std::string& extra = "") {
  std::string text = "[delivery]\n" + extra;
  if (extra.find("connect_timeout") == std::string::npos) text += "connect_timeout = \"2s\"\n";
  if (extra.find("request_timeout") == std::string::npos) text += "request_timeout = \"5s\"\n";
  return text;
}

std::string ProvidersToml(const std::vector<std::string>& names) {
  std::string list;
  for (const std::string& name : names)
    list += (list.empty() ? "" : ", ") + Quoted(name);
  return "[sms]\nproviders = [" + list + "]\n";
}

// A SidecarProcess (limits off) that sends through one provider: the harness passes
// --sms-provider file, and the flag given again afterwards wins.
SidecarOptions OneProvider(const std::string& name, const std::string& toml) {
  return LimitsOff(ProvidersToml({name}) + toml, {"--sms-provider", name});
}

// A twilio-only sidecar against `twilio`, trusting `pki`'s CA, with DeliveryToml(`delivery`).
SidecarOptions TwilioOnly(const FakeTwilio& twilio, const ProviderFiles& files, const TestPki& pki,
                          const std::string& delivery = "") {
  std::string toml = TwilioToml(twilio.base_url(), files.token_file, pki.ca_file);
  return OneProvider("twilio", toml + DeliveryToml(delivery));
}

// A SidecarProcess (limits off) that uses the [sms] providers list of `toml` (no
// --sms-provider flag), with `env` ("NAME=value") added to its environment.
SidecarOptions ProviderList(const std::string& toml, std::vector<std::string> env = {}) {
  SidecarOptions options = LimitsOff(toml);
  options.file_provider = false;
  options.env = std::move(env);
  return options;
}

// A sidecar that fails over from `twilio` to `webhook`, with DeliveryToml(`delivery`).
SidecarOptions TwilioThenWebhook(const FakeTwilio& twilio, const FakeWebhook& webhook,
                                 const ProviderFiles& files, const TestPki& pki,
                                 const std::string& delivery = "") {
  return ProviderList(ProvidersToml({"twilio", "webhook"}) +
                      TwilioToml(twilio.base_url(), files.token_file, pki.ca_file) +
                      WebhookToml(webhook.url(), files.secret_file) + DeliveryToml(delivery));
}

// "<scheme>://127.0.0.1:<port><path>".
std::string LoopbackUrl(const std::string& scheme, int port, const std::string& path = "") {
  return scheme + "://127.0.0.1:" + std::to_string(port) + path;
}

// A reply the fake holds until it is destroyed.
FakeReply Stall() {
  FakeReply reply;
  reply.stall = true;
  return reply;
}

// `otp-sidecar check-config` on `config_path` with a database in `dir`.
ExitResult CheckConfig(const std::string& config_path, const TempDir& dir) {
  return RunSidecarToExit(WithTestDatabase({"check-config", "--config", config_path}, dir.path()),
                          dir.path());
}

// `otp-sidecar serve` on `config_path` with a database in `dir`, for a configuration that
// must stop it; killed after five seconds.
ExitResult ServeToExit(const std::string& config_path, const TempDir& dir) {
  return RunSidecarToExit(
      WithTestDatabase({"serve", "--listen", "127.0.0.1:0", "--config", config_path}, dir.path()),
      dir.path(), Millis(5000));
}

const nlohmann::json& DeliveryOf(const HttpReply& reply) {
  static const nlohmann::json kNull;
  if (!reply.is_json_object()) return kNull;
  auto it = reply.json.find("delivery");
  return it == reply.json.end() ? kNull : *it;
}

std::string DeliveryState(const HttpReply& reply) {
  const nlohmann::json& delivery = DeliveryOf(reply);
  return delivery.is_object() ? delivery.value("state", "") : "";
}

std::string DeliveryString(const HttpReply& reply, const std::string& key) {
  const nlohmann::json& delivery = DeliveryOf(reply);
  if (!delivery.is_object()) return "";
  auto it = delivery.find(key);
  return it != delivery.end() && it->is_string() ? it->get<std::string>() : "";
}

// True when the delivery has `key` and it is null.
bool DeliveryNull(const HttpReply& reply, const std::string& key) {
  const nlohmann::json& delivery = DeliveryOf(reply);
  if (!delivery.is_object()) return false;
  auto it = delivery.find(key);
  return it != delivery.end() && it->is_null();
}

long long DeliveryAttempts(const HttpReply& reply) {
  const nlohmann::json& delivery = DeliveryOf(reply);
  return delivery.is_object() ? delivery.value("attempts", -1LL) : -1;
}

// Polls GET /v1/challenges/{id} until the delivery has left queued/sending; returns the
// last reply (whatever its state at the deadline).
HttpReply WaitForDeliveryEnd(httplib::Client& client, const std::string& id,
                             Millis timeout = Millis(10'000)) {
  HttpReply view;
  PollUntil(
      [&] {
        view = Get(client, ChallengePath(id));
        std::string state = DeliveryState(view);
        return !state.empty() && state != "queued" && state != "sending";
      },
      timeout, Millis(20));
  return view;
}

// Polls until the delivery is in `state`; returns the last reply.
HttpReply WaitForDeliveryState(httplib::Client& client, const std::string& id,
                               const std::string& state, Millis timeout = Millis(10'000)) {
  HttpReply view;
  PollUntil(
      [&] {
        view = Get(client, ChallengePath(id));
        return DeliveryState(view) == state;
      },
      timeout, Millis(20));
  return view;
}

// The first run of six or more digits in `text` (the code in a rendered message).
std::string CodeIn(const std::string& text) {
  std::smatch match;
  static const std::regex kCode("[0-9]{6,10}");
  return std::regex_search(text, match, kCode) ? match.str() : "";
}

long long MillisBetween(SteadyTime from, SteadyTime to) {
  return duration_cast<Millis>(to - from).count();
}

// Checks the request the fake Twilio saw: Twilio's path, basic auth with the SID and the
// token read from the file, and the form with To (its '+' encoded), From and Body.
void CheckTwilioRequest(const SeenRequest& seen) {
  CHECK(seen.method == "POST");
  CHECK(seen.path == std::string("/2010-04-01/Accounts/") + kAccountSid + "/Messages.json");
  CHECK(seen.header("Authorization") ==
        "Basic " + Base64(std::string(kAccountSid) + ":" + kTwilioToken));
  CHECK(seen.header("Content-Type") == "application/x-www-form-urlencoded");
  CHECK(seen.field("To") == kAlicePhone);
  CHECK(seen.field_count("To") == 1);
  CHECK(seen.field("From") == kFrom);
  CHECK(seen.field_count("MessagingServiceSid") == 0);
  CHECK(seen.field_count("StatusCallback") == 0);
  CHECK(seen.body.find("To=%2B12065550100") != std::string::npos);  // a bare '+' is a space
  CHECK(CodeIn(seen.field("Body")).size() == 6);
}

// No request may reach the fake for `window` from now.
void CheckNoMoreRequests(ScriptedServer& fake, std::size_t expected, Millis window) {
  bool more = PollUntil([&] { return fake.count() > expected; }, window, Millis(20));
  CHECK_MESSAGE(!more, "the fake saw " << fake.count() << " requests, expected " << expected);
}

// Checks that no more than `expected` requests reach the fake for `window` from now; true
// when it saw exactly `expected`.
bool SawExactly(ScriptedServer& fake, std::size_t expected, Millis window) {
  CheckNoMoreRequests(fake, expected, window);
  return fake.count() == expected;
}

// Checks that no more than `expected` connections reach `server` for `window` from now;
// true when it accepted exactly `expected`.
bool AcceptedExactly(SilentServer& server, long long expected, Millis window) {
  bool more = PollUntil([&] { return server.accepted() > expected; }, window);
  CHECK_MESSAGE(!more, "connections: " << server.accepted() << ", expected " << expected);
  return server.accepted() == expected;
}

// "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body), computed with libsodium,
// independently of the product's WebhookSignature (the multi-part API takes a key of any
// length).
std::string IndependentSignature(const std::string& secret, const std::string& timestamp,
                                 const std::string& body) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
  std::string text = timestamp + "." + body;
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(text.data()),
                                text.size());

  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return std::string("v1=") + hex;
}

// Checks that the webhook request is signed with kWebhookSecret, by the product's
// WebhookSignature: a wrong one fails the signed-JSON test, which uses IndependentSignature.
void CheckSigned(const SeenRequest& request) {
  std::string timestamp = request.header("X-OTP-Sidecar-Timestamp");
  CHECK(request.header("X-OTP-Sidecar-Signature") ==
        WebhookSignature(kWebhookSecret, timestamp, request.body));
}

// The JSON object a webhook request carries; fails the test when it is not one.
nlohmann::json JsonBody(const SeenRequest& request) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  REQUIRE(body.is_object());
  return body;
}

// True when `code` approves the challenge `id`.
bool Approved(httplib::Client& client, const std::string& id, const std::string& code) {
  return VerifyById(client, id, code).str("status") == "approved";
}

constexpr int kTimedCreates = 20;

struct TimedCreates {
  std::vector<double> millis;    // how long each create took to answer
  std::vector<std::string> ids;  // the challenges made
};

// Times kTimedCreates sequential creates of distinct users on one kept-alive connection,
// after one untimed create that warms it up; each must be answered 202.
TimedCreates TimeCreates(const SidecarProcess& sidecar, const std::string& prefix) {
  httplib::Client client = sidecar.client();
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);  // else Nagle and delayed ACKs add ~40 ms to each
  CreateChallenge(client, prefix + "-warmup");
  TimedCreates timed;
  for (int i = 0; i < kTimedCreates; ++i) {
    auto start = steady_clock::now();
    HttpReply reply =
        PostJson(client, "/v1/challenges",
                 {{"user", prefix + "-" + std::to_string(i)}, {"phone", kAlicePhone}});
    timed.millis.push_back(
        std::chrono::duration<double, std::milli>(steady_clock::now() - start).count());
    INFO("create ", i, ": ", reply.describe());
    CHECK(reply.status == 202);
    timed.ids.push_back(reply.str("challenge_id"));
  }
  return timed;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Creates with a provider in trouble answer about as fast as with a healthy one: compared as
// a ratio of medians, since absolute times depend on the machine and the build.
void CheckCreatesAsFast(const std::vector<double>& healthy, const std::vector<double>& troubled) {
  double healthy_median = Median(healthy);
  double troubled_median = Median(troubled);
  double troubled_max = *std::max_element(troubled.begin(), troubled.end());
  INFO("healthy median ", healthy_median, " ms, troubled median ", troubled_median,
       " ms, troubled max ", troubled_max, " ms");
  CHECK(troubled_median <= 3 * healthy_median + 50);
  CHECK(troubled_max < 1000);
}

// Starts a send that the fake Twilio holds, kills the sidecar with SIGKILL while it does,
// and restarts it on the same database; returns the delivery as GET shows it after the
// restart, once it has left queued/sending.
HttpReply CrashMidSend(FakeTwilio& twilio, SidecarProcess& sidecar, std::string& id) {
  {
    httplib::Client client = sidecar.client();
    id = CreateChallenge(client, "alice");
    REQUIRE(twilio.WaitForCount(1));
    CHECK(DeliveryState(WaitForDeliveryState(client, id, "sending", Millis(3000))) == "sending");
  }
  sidecar.Kill9();
  sidecar.Restart();
  httplib::Client client = sidecar.client();
  return WaitForDeliveryEnd(client, id);
}

}  // namespace

TEST_SUITE("providers") {
  TEST_CASE("twilio: a message goes out as Twilio's form, is recorded sent and its code verifies") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki);
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "twilio");
    CHECK(DeliveryString(view, "provider_message_id") == kFakeTwilioSid);
    CHECK(DeliveryAttempts(view) == 1);
    CHECK(DeliveryNull(view, "error"));
    CHECK(IsRfc3339Utc(DeliveryString(view, "sent_at")));

    std::vector<SeenRequest> seen = twilio.seen();
    REQUIRE(seen.size() == 1);
    CheckTwilioRequest(seen[0]);
    std::string body = seen[0].field("Body");
    std::string code = CodeIn(body);
    CHECK(body == code + " is your Example verification code. It expires in 5 minutes.");
    // The file provider is not in use: nothing was written there.
    CHECK(sidecar.AllSms().empty());
    CHECK(view.body.find(code) == std::string::npos);

    HttpReply approved = VerifyById(client, id, code);
    INFO("verify: ", approved.describe());
    CHECK(approved.status == 200);
    CHECK(approved.str("status") == "approved");
  }

  TEST_CASE("twilio: error 21211 fails the delivery as invalid_number without a retry") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(400, 21211,
                                              "The 'To' number +12065550100 is not a valid phone "
                                              "number.")});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryString(view, "provider") == "twilio");
    CHECK(DeliveryString(view, "error").find("invalid_number") != std::string::npos);
    CHECK(DeliveryAttempts(view) == 1);
    CHECK(DeliveryNull(view, "sent_at"));
    // The recipient quoted back by Twilio is not in the recorded error.
    CHECK(view.body.find(kAlicePhone) == std::string::npos);
    REQUIRE(SawExactly(twilio, 1, Millis(1500)));
    CheckTwilioRequest(twilio.seen()[0]);
    CHECK(DeliveryState(Get(client, ChallengePath(id))) == "failed");
  }

  TEST_CASE("twilio: error 21610 fails the delivery as recipient_opted_out") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(400, 21610,
                                              "Attempt to send to unsubscribed "
                                              "recipient")});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryString(view, "error").find("recipient_opted_out") != std::string::npos);
    CHECK(SawExactly(twilio, 1, Millis(1200)));
  }

  TEST_CASE("twilio: a 429 with Retry-After 1 is retried a second later and then sent") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeReply too_many = TwilioErrorReply(429, 20429, "Too Many Requests");
    too_many.retry_after = "1";
    FakeTwilio twilio(&pki, {too_many, FakeReply{}});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    // Between the two requests the delivery waits, queued, with the 429 as its error.
    REQUIRE(twilio.WaitForCount(1));
    HttpReply waiting = WaitForDeliveryState(client, id, "queued", Millis(3000));
    if (twilio.count() == 1) {
      CHECK(DeliveryString(waiting, "error").find("429") != std::string::npos);
    }

    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryAttempts(view) == 2);
    CHECK(DeliveryString(view, "provider_message_id") == kFakeTwilioSid);
    std::vector<SeenRequest> seen = twilio.seen();
    REQUIRE(seen.size() == 2);
    long long gap = MillisBetween(seen[0].at, seen[1].at);
    INFO("gap between the requests: ", gap, " ms");
    CHECK(gap >= 900);
    CHECK(gap < 5000);
    CheckTwilioRequest(seen[1]);
    CHECK(seen[0].field("Body") == seen[1].field("Body"));  // the same code, sent again
    CheckNoMoreRequests(twilio, 2, Millis(500));
  }

  TEST_CASE("twilio: a 500 is retried with backoff and then sent") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(500, 20500, "Internal Server Error"), FakeReply{}});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryAttempts(view) == 2);
    CHECK(DeliveryString(view, "provider") == "twilio");
    CHECK(DeliveryNull(view, "error"));
    std::vector<SeenRequest> seen = twilio.seen();
    REQUIRE(seen.size() == 2);
    // The first backoff is between half a second and a second.
    CHECK(MillisBetween(seen[0].at, seen[1].at) >= 400);
    std::string code = CodeIn(seen[1].field("Body"));
    CHECK(Approved(client, id, code));
  }

  TEST_CASE("twilio: a stall past request_timeout is recorded unknown and never sent again") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {Stall()});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki, "request_timeout = \"500ms\"\n"));
    httplib::Client client = sidecar.client();

    auto created = steady_clock::now();
    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "unknown");
    CHECK(MillisBetween(created, steady_clock::now()) >= 450);
    CHECK(DeliveryString(view, "provider") == "twilio");
    CHECK(!DeliveryString(view, "error").empty());
    CHECK(DeliveryAttempts(view) == 1);
    // Unknown may have gone out: it is not sent again (backoffs would be well within this).
    CheckNoMoreRequests(twilio, 1, Millis(2000));
    CHECK(DeliveryState(Get(client, ChallengePath(id))) == "unknown");
  }

  TEST_CASE("twilio: with resend_on_unknown a stalled send is sent again") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {Stall(), FakeReply{}});
    SidecarProcess sidecar(
        TwilioOnly(twilio, files, pki, "request_timeout = \"500ms\"\nresend_on_unknown = true\n"));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryAttempts(view) == 2);
    REQUIRE(twilio.count() == 2);
    std::vector<SeenRequest> seen = twilio.seen();
    CHECK(seen[0].field("Body") == seen[1].field("Body"));
  }

  TEST_CASE("twilio: a send cut short by a crash is unknown after the restart, not sent again") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {Stall(), FakeReply{}});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki, "request_timeout = \"30s\"\n"));
    std::string id;
    HttpReply view = CrashMidSend(twilio, sidecar, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    // Twilio may already have sent it.
    CHECK(DeliveryState(view) == "unknown");
    CHECK(DeliveryString(view, "error").find("interrupted") != std::string::npos);
    CHECK(DeliveryAttempts(view) == 1);
    CheckNoMoreRequests(twilio, 1, Millis(1500));
    // The challenge itself is still live: the user can ask for a resend.
    httplib::Client client = sidecar.client();
    CHECK(StatusOf(client, id) == "pending");
    HttpReply resent = ResendWhenAllowed(client, id);
    CHECK(resent.status == 202);
    CHECK(twilio.WaitForCount(2));
    CHECK(DeliveryState(WaitForDeliveryEnd(client, id)) == "sent");
  }

  TEST_CASE("twilio: with resend_on_unknown a send cut short by a crash is sent again") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {Stall(), FakeReply{}});
    SidecarProcess sidecar(
        TwilioOnly(twilio, files, pki, "request_timeout = \"30s\"\nresend_on_unknown = true\n"));
    std::string id;
    HttpReply view = CrashMidSend(twilio, sidecar, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryAttempts(view) == 2);
    REQUIRE(twilio.count() == 2);
    std::vector<SeenRequest> seen = twilio.seen();
    CHECK(seen[0].field("Body") == seen[1].field("Body"));
    httplib::Client client = sidecar.client();
    CHECK(Approved(client, id, CodeIn(seen[1].field("Body"))));
  }

  TEST_CASE("twilio: a connection closed after the request arrived is recorded unknown") {
    ProviderFiles files;
    SilentServer closing(/*read_request=*/true);
    SidecarProcess sidecar(OneProvider(
        "twilio", TwilioToml(LoopbackUrl("http", closing.port()), files.token_file, "") +
                      DeliveryToml("max_retries = 3\n")));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    // The whole request got there, so the message may have gone out: never sent again.
    CHECK(DeliveryState(view) == "unknown");
    CHECK(DeliveryAttempts(view) == 1);
    CHECK(DeliveryString(view, "error").find("no answer") != std::string::npos);
    CHECK(AcceptedExactly(closing, 1, Millis(1500)));
    std::vector<std::string> requests = closing.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].rfind(std::string("POST /2010-04-01/Accounts/") + kAccountSid +
                                "/Messages.json HTTP/1.1\r\n",
                            0) == 0);
    CHECK(requests[0].find("To=%2B12065550100") != std::string::npos);
  }

  TEST_CASE("twilio: a connection closed at once is retried only while the request was not sent") {
    ProviderFiles files;
    SilentServer closing;
    SidecarProcess sidecar(OneProvider(
        "twilio", TwilioToml(LoopbackUrl("http", closing.port()), files.token_file, "") +
                      DeliveryToml("max_retries = 1\n")));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id, Millis(15'000));
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    // Whether the close beats the write is a race: a write that fails is a retry (nothing
    // reached the server), a write that succeeded is unknown and ends the delivery.
    std::string state = DeliveryState(view);
    CHECK((state == "unknown" || state == "failed"));
    long long attempts = DeliveryAttempts(view);
    CHECK(attempts >= 1);
    CHECK(attempts <= 2);
    CHECK(!DeliveryString(view, "error").empty());
    if (state == "failed") {
      CHECK(attempts == 2);
      CHECK(DeliveryString(view, "error").find("cannot send") != std::string::npos);
    } else {
      CHECK(DeliveryString(view, "error").find("no answer") != std::string::npos);
    }
    // One connection per attempt, and none after the delivery ended.
    CHECK(AcceptedExactly(closing, attempts, Millis(1500)));
  }

  TEST_CASE("twilio: a TLS connection closed during the handshake is retried, then failed") {
    ProviderFiles files;
    SilentServer closing;
    TestPki pki(files.dir, "twilio");
    SidecarProcess sidecar(OneProvider(
        "twilio", TwilioToml(LoopbackUrl("https", closing.port()), files.token_file, pki.ca_file) +
                      DeliveryToml("max_retries = 1\n")));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    // Nothing was sent before the handshake failed: retried once (max_retries = 1), then
    // failed, since there is no other provider.
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryAttempts(view) == 2);
    CHECK(!DeliveryString(view, "error").empty());
    CHECK(closing.accepted() == 2);
  }

  TEST_CASE("twilio: a certificate from another CA fails the delivery before any request") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    TestPki other(files.dir, "other");
    FakeTwilio twilio(&pki);
    SidecarProcess sidecar(OneProvider(
        "twilio", TwilioToml(twilio.base_url(), files.token_file, other.ca_file) + DeliveryToml()));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryAttempts(view) == 1);
    std::string error = DeliveryString(view, "error");
    CHECK(error.find("does not verify") != std::string::npos);
    CHECK(error.find("127.0.0.1") != std::string::npos);
    CHECK(SawExactly(twilio, 0, Millis(1200)));
  }

  TEST_CASE("twilio: a certificate for another address fails the delivery before any request") {
    ProviderFiles files;
    TestPki pki(files.dir, "elsewhere", "127.0.0.2");
    FakeTwilio twilio(&pki);
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryString(view, "error").find("does not verify") != std::string::npos);
    CHECK(twilio.count() == 0);
  }

  TEST_CASE("webhook: the request is signed JSON with to, body, challenge_id and sent_at") {
    ProviderFiles files;
    FakeWebhook webhook;
    SidecarProcess sidecar(
        OneProvider("webhook", WebhookToml(webhook.url(), files.secret_file) + DeliveryToml()));
    httplib::Client client = sidecar.client();

    long long before = static_cast<long long>(std::time(nullptr));
    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    long long after = static_cast<long long>(std::time(nullptr));
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "webhook");
    CHECK(DeliveryString(view, "provider_message_id") == "gw-4711");
    CHECK(DeliveryAttempts(view) == 1);

    std::vector<SeenRequest> seen = webhook.seen();
    REQUIRE(seen.size() == 1);
    const SeenRequest& request = seen[0];
    CHECK(request.method == "POST");
    CHECK(request.path == "/sms/send");
    CHECK(request.header("Content-Type") == "application/json");

    std::string timestamp = request.header("X-OTP-Sidecar-Timestamp");
    REQUIRE(std::regex_match(timestamp, std::regex("^[0-9]{10}$")));
    CHECK(std::stoll(timestamp) >= before - 1);
    CHECK(std::stoll(timestamp) <= after + 1);
    std::string signature = request.header("X-OTP-Sidecar-Signature");
    CHECK(signature == IndependentSignature(kWebhookSecret, timestamp, request.body));
    // The trailing newline of the secret file is not part of the key.
    CHECK(signature !=
          IndependentSignature(std::string(kWebhookSecret) + "\n", timestamp, request.body));
    CHECK(signature.find(kWebhookSecret) == std::string::npos);

    nlohmann::json body = JsonBody(request);
    CHECK(body.size() == 4);
    CHECK(body.value("to", "") == kAlicePhone);
    CHECK(body.value("challenge_id", "") == id);
    std::string sent_at = body.value("sent_at", "");
    CHECK(IsRfc3339Utc(sent_at));
    CHECK(sent_at.size() == 24);  // with milliseconds
    CHECK(ParseRfc3339Seconds(sent_at) == std::stoll(timestamp));
    std::string text = body.value("body", "");
    std::string code = CodeIn(text);
    CHECK(text == code + " is your Example verification code. It expires in 5 minutes.");
    CHECK(Approved(client, id, code));
  }

  TEST_CASE("webhook provider failover: Twilio refusing the credentials hands the message on") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(401, 20003, "Authenticate")});
    FakeWebhook webhook;
    SidecarProcess sidecar(TwilioThenWebhook(twilio, webhook, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    INFO("stderr: ", sidecar.stderr_text());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "webhook");
    CHECK(DeliveryString(view, "provider_message_id") == "gw-4711");
    CHECK(DeliveryAttempts(view) == 2);
    CHECK(DeliveryNull(view, "error"));

    // Twilio was tried once (a provider failure is not retried there), then the webhook.
    REQUIRE(twilio.count() == 1);
    CheckTwilioRequest(twilio.seen()[0]);
    REQUIRE(webhook.count() == 1);
    SeenRequest request = webhook.seen()[0];
    CheckSigned(request);
    nlohmann::json body = JsonBody(request);
    CHECK(body.value("challenge_id", "") == id);
    std::string code = CodeIn(body.value("body", ""));
    CHECK(code == CodeIn(twilio.seen()[0].field("Body")));
    CHECK(Approved(client, id, code));
    CheckNoMoreRequests(twilio, 1, Millis(300));
  }

  TEST_CASE(
      "webhook provider failover: Twilio answering 5xx until max_retries hands the message on") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(503, 20503, "Service Unavailable")});
    FakeWebhook webhook;
    SidecarProcess sidecar(TwilioThenWebhook(twilio, webhook, files, pki, "max_retries = 1\n"));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "webhook");
    CHECK(DeliveryAttempts(view) == 3);
    CHECK(twilio.count() == 2);  // 1 + max_retries on Twilio
    CHECK(webhook.count() == 1);
  }

  TEST_CASE("webhook provider failover: a bad number is not tried on the next provider") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(400, 21614,
                                              "'To' number is not a valid mobile "
                                              "number")});
    FakeWebhook webhook;
    SidecarProcess sidecar(TwilioThenWebhook(twilio, webhook, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "failed");
    CHECK(DeliveryString(view, "provider") == "twilio");
    CHECK(DeliveryString(view, "error").find("invalid_number") != std::string::npos);
    CheckNoMoreRequests(webhook, 0, Millis(1200));
    CHECK(twilio.count() == 1);
  }

  TEST_CASE("webhook provider down: retries stop when the challenge expires") {
    ProviderFiles files;
    RefusingPort port;
    std::string url = LoopbackUrl("http", port.port(), "/sms/send");
    SidecarProcess sidecar(OneProvider("webhook", "[code]\nttl = \"1s\"\n" +
                                                      WebhookToml(url, files.secret_file) +
                                                      DeliveryToml("max_retries = 20\n")));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view;
    bool ended = PollUntil(
        [&] {
          view = Get(client, ChallengePath(id));
          return view.str("status") == "expired" && DeliveryState(view) == "failed";
        },
        Millis(8000), Millis(50));
    INFO("GET: ", view.describe());
    REQUIRE(ended);
    // Ended by the sweeper ("expired"), or given up at once when the next retry would come
    // after the deadline, with the provider's own error.
    std::string error = DeliveryString(view, "error");
    CHECK((error == "expired" || error.rfind("cannot send to 127.0.0.1:", 0) == 0));
    CHECK(DeliveryAttempts(view) >= 1);

    port.Release();
    FakeWebhook webhook({}, port.port());
    CheckNoMoreRequests(webhook, 0, Millis(2000));
  }

  TEST_CASE("webhook provider down: a queued delivery goes out once the receiver is up") {
    ProviderFiles files;
    RefusingPort port;
    std::string url = LoopbackUrl("http", port.port(), "/sms/send");
    SidecarProcess sidecar(OneProvider(
        "webhook", WebhookToml(url, files.secret_file) + DeliveryToml("max_retries = 20\n")));
    httplib::Client client = sidecar.client();

    std::string live = CreateChallenge(client, "alice");
    std::string canceled = CreateChallenge(client, "bob");

    // Both are refused at first and wait for a retry.
    HttpReply view;
    bool retried = PollUntil(
        [&] {
          view = Get(client, ChallengePath(live));
          return DeliveryState(view) == "queued" && DeliveryAttempts(view) >= 1;
        },
        Millis(5000), Millis(20));
    INFO("GET: ", view.describe());
    REQUIRE(retried);
    CHECK(!DeliveryString(view, "error").empty());
    CHECK(DeliveryNull(view, "sent_at"));

    // A challenge that ends is not retried any more.
    HttpReply deleted = Delete(client, ChallengePath(canceled));
    CHECK(deleted.status == 204);
    HttpReply ended = WaitForDeliveryEnd(client, canceled, Millis(3000));
    CHECK(DeliveryState(ended) == "failed");

    port.Release();
    FakeWebhook webhook({}, port.port());
    HttpReply sent = WaitForDeliveryEnd(client, live, Millis(15'000));
    INFO("GET after the receiver started: ", sent.describe());
    CHECK(DeliveryState(sent) == "sent");
    CHECK(DeliveryString(sent, "provider") == "webhook");
    CHECK(DeliveryAttempts(sent) >= 2);
    REQUIRE(webhook.count() >= 1);
    nlohmann::json body = JsonBody(webhook.seen()[0]);
    CHECK(body.value("challenge_id", "") == live);
    CHECK(Approved(client, live, CodeIn(body.value("body", ""))));

    // The canceled challenge's message never arrives.
    CheckNoMoreRequests(webhook, 1, Millis(1500));
    for (const SeenRequest& request : webhook.seen()) {
      CHECK(request.body.find(canceled) == std::string::npos);
    }
  }

  TEST_CASE("provider stall: creates answer as fast as with a healthy provider") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    std::string delivery = "request_timeout = \"30s\"\nworkers = 4\nmax_in_flight = 2\n";

    std::vector<double> healthy;
    {
      FakeTwilio twilio(&pki);
      SidecarProcess sidecar(TwilioOnly(twilio, files, pki, delivery));
      healthy = TimeCreates(sidecar, "healthy").millis;
      CHECK(twilio.WaitForCount(kTimedCreates + 1));
    }

    FakeTwilio twilio(&pki, {Stall()});
    SidecarProcess sidecar(TwilioOnly(twilio, files, pki, delivery));
    CheckCreatesAsFast(healthy, TimeCreates(sidecar, "stalled").millis);

    // Only max_in_flight sends ever reach the stalled provider; the rest wait, queued.
    REQUIRE(twilio.WaitForCount(2));
    CheckNoMoreRequests(twilio, 2, Millis(300));
    CHECK(twilio.max_concurrent() == 2);
    httplib::Client client = sidecar.client();
    CHECK(DeliveryState(Get(client, ChallengePath(CreateChallenge(client, "late")))) == "queued");
    // The HTTP side is still answering while the provider holds both slots.
    CHECK(Get(client, "/healthz").status == 200);
  }

  TEST_CASE("provider down: creates answer as fast as with it up, and all go out once it is up") {
    ProviderFiles files;
    std::string delivery = DeliveryToml("max_retries = 20\n");

    std::vector<double> healthy;
    {
      FakeWebhook webhook;
      SidecarProcess sidecar(
          OneProvider("webhook", WebhookToml(webhook.url(), files.secret_file) + delivery));
      healthy = TimeCreates(sidecar, "healthy").millis;
      CHECK(webhook.WaitForCount(kTimedCreates + 1));
    }

    RefusingPort port;
    std::string url = LoopbackUrl("http", port.port(), "/sms/send");
    SidecarProcess sidecar(OneProvider("webhook", WebhookToml(url, files.secret_file) + delivery));
    TimedCreates down = TimeCreates(sidecar, "down");
    CheckCreatesAsFast(healthy, down.millis);

    // Each delivery finds the provider down before it comes back up.
    httplib::Client client = sidecar.client();
    for (const std::string& id : down.ids) {
      HttpReply view;
      bool refused = PollUntil(
          [&] {
            view = Get(client, ChallengePath(id));
            return DeliveryState(view) == "queued" && DeliveryAttempts(view) >= 1;
          },
          Millis(10'000), Millis(20));
      INFO("GET: ", view.describe());
      REQUIRE(refused);
    }

    port.Release();
    FakeWebhook webhook({}, port.port());
    std::map<std::string, std::string> codes;  // challenge id -> the code its message holds
    bool all_sent = PollUntil(
        [&] {
          for (const SeenRequest& request : webhook.seen()) {
            nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
            if (body.is_object())
              codes[body.value("challenge_id", "")] = CodeIn(body.value("body", ""));
          }
          return std::all_of(down.ids.begin(), down.ids.end(),
                             [&](const std::string& id) { return codes.count(id) != 0; });
        },
        Millis(20'000), Millis(50));
    INFO("delivered ", codes.size(), " of ", down.ids.size());
    CHECK(all_sent);
    for (const std::string& id : down.ids) {
      CHECK(DeliveryState(WaitForDeliveryEnd(client, id)) == "sent");
      CHECK(Approved(client, id, codes[id]));
    }
  }

  TEST_CASE(
      "provider secrets: the token and webhook secret appear in no log, database or check-config") {
    ProviderFiles files;
    TestPki pki(files.dir, "twilio");
    std::string basic = Base64(std::string(kAccountSid) + ":" + kTwilioToken);
    // A hostile answer quotes the credentials back; they must be redacted wherever it goes.
    FakeTwilio twilio(&pki, {TwilioErrorReply(401, 20003,
                                              std::string("Authenticate: token ") + kTwilioToken +
                                                  " (Basic " + basic + ") is not valid")});
    FakeReply accepted;
    accepted.status = 200;
    accepted.body = std::string(R"({"id": "gw-1", "error": ")") + kWebhookSecret + "\"}";
    FakeWebhook webhook({accepted});
    SidecarProcess sidecar(TwilioThenWebhook(twilio, webhook, files, pki));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "webhook");
    REQUIRE(twilio.count() == 1);
    // A resend goes out too (and writes more rows).
    HttpReply resent = ResendWhenAllowed(client, id);
    CHECK(resent.status == 202);
    CHECK(webhook.WaitForCount(2) == true);
    WaitForDeliveryEnd(client, id);

    const std::vector<std::string> secrets = {kTwilioToken, kWebhookSecret, basic};
    auto check_clean = [&](const std::string& what, const std::string& text) {
      for (const std::string& secret : secrets) {
        CHECK_MESSAGE(text.find(secret) == std::string::npos, what << " holds " << secret);
      }
    };
    auto check_database = [&](const std::string& when) {
      check_clean(when + " the database", DatabaseText(sidecar));
    };
    check_clean("GET", view.body);
    check_clean("stderr", sidecar.stderr_text());
    check_clean("stdout", sidecar.stdout_text());
    check_database("while serving:");
    // The Twilio refusal was recorded (redacted) in the audit trail, so the check above
    // really looked at what came back.
    CHECK(DatabaseText(sidecar).find("20003") != std::string::npos);
    CHECK(sidecar.stderr_text().find("20003") != std::string::npos);

    CHECK(sidecar.Stop() == 0);
    check_database("after stopping:");
    check_clean("stderr after stopping", sidecar.stderr_text());

    ExitResult checked =
        RunSidecarToExit({"check-config", "--config", sidecar.config_path(), "--database",
                          sidecar.database(), "--key-file", sidecar.key_path()},
                         sidecar.dir().path());
    INFO("check-config out: ", checked.out, " err: ", checked.err);
    CHECK(checked.exit_code == 0);
    CHECK(checked.out.find("configuration ok") != std::string::npos);
    check_clean("check-config stdout", checked.out);
    check_clean("check-config stderr", checked.err);
  }

  TEST_CASE("provider secrets: a token file readable by others stops serve and check-config") {
    ProviderFiles files;
    TempDir dir;
    WriteFileBytes(files.token_file, std::string(kTwilioToken) + "\n", 0644);
    std::string config_path = dir.File("config.toml");
    WriteFileBytes(config_path, ProvidersToml({"twilio"}) +
                                    TwilioToml("https://127.0.0.1:9", files.token_file, "") +
                                    DeliveryToml());

    ExitResult checked = CheckConfig(config_path, dir);
    {
      INFO("check-config out: ", checked.out, " err: ", checked.err);
      CHECK(checked.exit_code == 2);
      std::string all = checked.out + checked.err;
      CHECK(all.find(files.token_file) != std::string::npos);
      CHECK(all.find("group or others") != std::string::npos);
      CHECK(all.find(kTwilioToken) == std::string::npos);
    }

    ExitResult served = ServeToExit(config_path, dir);
    {
      INFO("serve out: ", served.out, " err: ", served.err);
      CHECK(!served.timed_out);
      CHECK(served.exit_code != 0);
      CHECK(served.exit_code != -1);
      CHECK(served.err.find("msg=listening") == std::string::npos);
      CHECK(served.err.find(files.token_file) != std::string::npos);
      CHECK((served.out + served.err).find(kTwilioToken) == std::string::npos);
    }

    // The same for the webhook secret, with only the group able to read it.
    WriteFileBytes(files.token_file, std::string(kTwilioToken) + "\n", 0600);
    WriteFileBytes(files.secret_file, std::string(kWebhookSecret) + "\n", 0640);
    WriteFileBytes(config_path, ProvidersToml({"twilio", "webhook"}) +
                                    TwilioToml("https://127.0.0.1:9", files.token_file, "") +
                                    WebhookToml("http://127.0.0.1:9/send", files.secret_file));
    ExitResult webhook = CheckConfig(config_path, dir);
    INFO("check-config out: ", webhook.out, " err: ", webhook.err);
    CHECK(webhook.exit_code == 2);
    CHECK((webhook.out + webhook.err).find(files.secret_file) != std::string::npos);
    CHECK((webhook.out + webhook.err).find(kWebhookSecret) == std::string::npos);
    CHECK((webhook.out + webhook.err).find(kTwilioToken) == std::string::npos);
  }

  TEST_CASE("twilio: check-config and serve refuse a ca_file that cannot be read") {
    ProviderFiles files;
    TempDir dir;
    std::string config_path = dir.File("config.toml");
    WriteFileBytes(config_path,
                   ProvidersToml({"twilio"}) + TwilioToml("https://127.0.0.1:9", files.token_file,
                                                          dir.File("missing-ca.pem")));
    ExitResult checked = CheckConfig(config_path, dir);
    INFO("check-config out: ", checked.out, " err: ", checked.err);
    CHECK(checked.exit_code == 2);
    CHECK((checked.out + checked.err).find("missing-ca.pem") != std::string::npos);
    ExitResult served = ServeToExit(config_path, dir);
    INFO("serve err: ", served.err);
    CHECK(!served.timed_out);
    CHECK(served.exit_code == 2);
  }

  TEST_CASE("provider secrets: relative names come from CREDENTIALS_DIRECTORY and env vars work") {
    ProviderFiles files;  // twilio-token in files.dir
    TestPki pki(files.dir, "twilio");
    FakeTwilio twilio(&pki, {TwilioErrorReply(403, 20003, "Account suspended")});
    FakeWebhook webhook;
    std::string config = ProvidersToml({"twilio", "webhook"}) +
                         TwilioToml(twilio.base_url(), "twilio-token", pki.ca_file) +
                         "[sms.webhook]\nurl = " + Quoted(webhook.url()) +
                         "\nsecret_env = \"OTP_TEST_WEBHOOK_SECRET\"\n" + DeliveryToml();
    SidecarProcess sidecar(
        ProviderList(config, {"CREDENTIALS_DIRECTORY=" + files.dir.path(),
                              std::string("OTP_TEST_WEBHOOK_SECRET=") + kWebhookSecret}));
    httplib::Client client = sidecar.client();

    std::string id = CreateChallenge(client, "alice");
    HttpReply view = WaitForDeliveryEnd(client, id);
    INFO("GET: ", view.describe());
    CHECK(DeliveryState(view) == "sent");
    CHECK(DeliveryString(view, "provider") == "webhook");
    REQUIRE(twilio.count() == 1);
    CheckTwilioRequest(twilio.seen()[0]);  // the token came from $CREDENTIALS_DIRECTORY
    REQUIRE(webhook.count() == 1);
    SeenRequest request = webhook.seen()[0];
    CheckSigned(request);
    CHECK(sidecar.stderr_text().find(kWebhookSecret) == std::string::npos);
  }

  TEST_CASE("provider templates: the request's locale picks the template") {
    std::string toml =
        "[sms.templates]\n"
        "fr = \"{code} est votre code {app}. Il expire dans {minutes} minutes.\"\n"
        "pt-BR = \"{code} \xC3\xA9 o seu c\xC3\xB3"
        "digo {app}.\"\n";
    SidecarProcess sidecar(LimitsOff(toml));
    httplib::Client client = sidecar.client();

    auto create = [&](const std::string& user, const std::string& locale) {
      HttpReply reply = PostJson(client, "/v1/challenges",
                                 {{"user", user}, {"phone", kAlicePhone}, {"locale", locale}});
      INFO("create: ", reply.describe());
      REQUIRE(reply.status == 202);
      return reply.str("challenge_id");
    };

    std::string fr = create("alice", "fr");
    SmsRecord french = sidecar.WaitForSmsCount(fr, 1)[0];
    CHECK(french.body == french.code + " est votre code Example. Il expire dans 5 minutes.");
    CHECK(french.code.size() == 6);
    CHECK(Approved(client, fr, french.code));

    std::string fr_ca = create("bob", "fr-CA");
    SmsRecord canadian = sidecar.WaitForSmsCount(fr_ca, 1)[0];
    CHECK(canadian.body == canadian.code + " est votre code Example. Il expire dans 5 minutes.");

    std::string pt = create("carol", "pt-BR");
    SmsRecord portuguese = sidecar.WaitForSmsCount(pt, 1)[0];
    CHECK(portuguese.body == portuguese.code +
                                 " \xC3\xA9 o seu c\xC3\xB3"
                                 "digo Example.");

    std::string de = create("dave", "de");
    SmsRecord fallback = sidecar.WaitForSmsCount(de, 1)[0];
    CHECK(fallback.body ==
          fallback.code + " is your Example verification code. It expires in 5 minutes.");
  }

}  // TEST_SUITE
}  // namespace sidecar::testing
