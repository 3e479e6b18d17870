// GET /metrics and request ids against the real binary: a known sequence of requests, then
// the exact values parsed from the page; the X-Request-Id a caller gives or gets; and logs
// that never hold a code.

#include <sys/stat.h>

#include <cmath>
#include <ctime>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "integration/provider_fakes.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

// The samples of one scrape by "name{labels}" exactly as written, e.g.
// `otp_sidecar_verifications_total{status="denied"}`. Every line must be a comment or a
// well-formed sample; a malformed line fails the test and is left out.
struct Scrape {
  HttpReply reply;
  std::map<std::string, double> samples;

  double at(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? std::nan("") : it->second;
  }
  bool has(const std::string& series) const { return samples.count(series) == 1; }
};

Scrape ScrapeMetrics(httplib::Client& client) {
  static const std::regex kComment(R"(^# (HELP|TYPE) [a-z_]+ .+$)");
  static const std::regex kSample(
      R"(^([a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})?) ([-+0-9.eE]+|\+Inf|NaN)$)");
  Scrape scrape;
  scrape.reply = Get(client, "/metrics");
  for (const std::string& line : Lines(scrape.reply.body)) {
    std::smatch match;
    if (std::regex_match(line, kComment)) continue;
    INFO("metrics line: ", line);
    CHECK(std::regex_match(line, match, kSample));
    if (!match.empty()) scrape.samples[match[1]] = std::stod(match[5]);
  }
  return scrape;
}

std::string Series(const std::string& name, const std::string& labels) {
  return name + "{" + labels + "}";
}

// Each histogram series' buckets never decrease, and its "+Inf" bucket equals its _count.
void CheckHistogramsConsistent(const Scrape& scrape) {
  static const std::regex kBucket(R"re(^([a-z_]+)_bucket\{(.*),?le="([^"]+)"\}$)re");
  std::map<std::string, double> last;
  for (const auto& [series, value] : scrape.samples) {
    std::smatch match;
    if (!std::regex_match(series, match, kBucket)) continue;
    std::string labels = match[2];
    if (!labels.empty() && labels.back() == ',') labels.pop_back();
    if (match[3] == "+Inf") {
      INFO("series: ", series);
      CHECK(value == scrape.at(Series(std::string(match[1]) + "_count", labels)));
    }
  }
  // The samples are rendered in bucket order; check the order on the page itself.
  std::string previous_key;
  double previous = 0;
  for (const std::string& line : Lines(scrape.reply.body)) {
    std::smatch match;
    std::string series = line.substr(0, line.rfind(' '));
    if (!std::regex_match(series, match, kBucket)) continue;
    std::string key = std::string(match[1]) + "{" + std::string(match[2]) + "}";
    double value = std::stod(line.substr(line.rfind(' ') + 1));
    if (key == previous_key) {
      INFO("line: ", line);
      CHECK(value >= previous);
    }
    previous_key = key;
    previous = value;
  }
}

long long FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0;
}

const char* const kChallenges = "otp_sidecar_challenges_total";
const char* const kVerifications = "otp_sidecar_verifications_total";
const char* const kRefusals = "otp_sidecar_rate_limit_refusals_total";
const char* const kDeliveries = "otp_sidecar_deliveries_total";

TEST_CASE("GET /metrics counts a known sequence exactly") {
  long long started = static_cast<long long>(std::time(nullptr));
  SidecarProcess sidecar(WithLimits({{"user_sends", R"(["1/15m"])"}}));
  httplib::Client client = sidecar.client();
  int scrapes = 0;
  auto scrape = [&] {
    ++scrapes;
    return ScrapeMetrics(client);
  };

  // Before anything happens, every known series is already there at 0.
  Scrape before = scrape();
  REQUIRE(before.reply.status == 200);
  CHECK(before.reply.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(before.at(Series(kChallenges, R"(outcome="created")")) == 0);
  CHECK(before.at(Series(kDeliveries, R"(provider="file",result="sent")")) == 0);
  CHECK(before.at(Series(kRefusals, R"(limit="user_sends")")) == 0);
  CHECK(before.at("otp_sidecar_outbox_depth") == 0);

  // Create, deliver through the file provider, one wrong code, the right one, a verify for
  // a user who has no challenge, a create refused by user_sends, and a path nobody serves.
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  REQUIRE(PollUntil(
      [&] { return scrape().at(Series(kDeliveries, R"(provider="file",result="sent")")) == 1; },
      Millis(10'000), Millis(50)));
  CHECK(VerifyById(client, id, WrongCode(code)).str("status") == "denied");
  CHECK(VerifyById(client, id, code).str("status") == "approved");
  CheckProblem(VerifyByUser(client, "nobody", code), 404, "no_challenge");
  CheckRefusal(PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}}),
               "user_sends", 15 * 60);
  CheckProblem(Get(client, "/v1/nothing/here"), 404, "not_found");
  int scrapes_before = scrapes;
  Scrape after = scrape();

  REQUIRE(after.reply.status == 200);
  const std::map<std::string, double> challenges = {
      {"created", 1}, {"refused", 1},  {"approved", 1},  {"locked", 0},
      {"expired", 0}, {"canceled", 0}, {"superseded", 0}};
  for (const auto& [outcome, expected] : challenges) {
    CAPTURE(outcome);
    CHECK(after.at(Series(kChallenges, "outcome=\"" + outcome + "\"")) == expected);
  }
  const std::map<std::string, double> verifications = {
      {"approved", 1}, {"denied", 1},   {"no_challenge", 1}, {"expired", 0},
      {"locked", 0},   {"canceled", 0}, {"used", 0},         {"refused", 0}};
  for (const auto& [status, expected] : verifications) {
    CAPTURE(status);
    CHECK(after.at(Series(kVerifications, "status=\"" + status + "\"")) == expected);
  }
  for (const char* limit :
       {"user_sends", "phone_sends", "ip_sends", "region_sends", "global_sends", "region_suspended",
        "resend_cooldown", "user_failures", "ip_failures"}) {
    CAPTURE(limit);
    double expected = std::string(limit) == "user_sends" ? 1 : 0;
    CHECK(after.at(Series(kRefusals, "limit=\"" + std::string(limit) + "\"")) == expected);
  }
  for (const char* result : {"sent", "retry", "failed", "unknown"}) {
    CAPTURE(result);
    double expected = std::string(result) == "sent" ? 1 : 0;
    CHECK(after.at(Series(kDeliveries,
                          "provider=\"file\",result=\"" + std::string(result) + "\"")) == expected);
  }
  CHECK(after.at(R"(otp_sidecar_delivery_duration_seconds_count{provider="file"})") == 1);
  CHECK(after.at(R"(otp_sidecar_delivery_duration_seconds_sum{provider="file"})") >= 0);

  const std::string requests = "otp_sidecar_http_request_duration_seconds_count";
  CHECK(after.at(Series(requests, R"(route="/v1/challenges",method="POST")")) == 2);
  CHECK(after.at(Series(requests, R"(route="/v1/challenges/{id}/verify",method="POST")")) == 2);
  CHECK(after.at(Series(requests, R"(route="/v1/verify",method="POST")")) == 1);
  CHECK(after.at(Series(requests, R"(route="other",method="GET")")) == 1);
  CHECK(after.at(Series(requests, R"(route="/v1/challenges/{id}",method="GET")")) == 0);
  // A scrape is observed once answered, so this one sees the ones before it.
  CHECK(after.at(Series(requests, R"(route="/metrics",method="GET")")) == scrapes_before);
  for (const auto& [series, value] : after.samples) {
    CHECK(series.find(id) == std::string::npos);  // ids never become labels
  }
  CheckHistogramsConsistent(after);

  CHECK(after.at("otp_sidecar_outbox_depth") == 0);
  CHECK(after.at(R"(otp_sidecar_build_info{version="0.1.0"})") == 1);
  double start_time = after.at("otp_sidecar_process_start_time_seconds");
  CHECK(start_time >= started - 1);
  CHECK(start_time <= static_cast<double>(std::time(nullptr)) + 1);

  // On SQLite the size is the pages plus the log: at least what the files hold outside the
  // log's own copy of pages, at most both files whole. On PostgreSQL it is the server's
  // pg_database_size(), which moves as the server writes: within a tenth of it.
  bool postgres = TestStoreIsPostgres();
  bool sized = PollUntil(
      [&] {
        double size = scrape().at("otp_sidecar_database_size_bytes");
        if (postgres) {
          auto server = static_cast<double>(
              SqlReader(sidecar.database()).Int("SELECT pg_database_size(current_database())"));
          return size > 0 && size >= 0.9 * server && size <= 1.1 * server;
        }
        long long db = FileSize(sidecar.database_path());
        long long wal = FileSize(sidecar.database_path() + "-wal");
        return size >= static_cast<double>(wal) + 4096 && size <= static_cast<double>(db + 2 * wal);
      },
      Millis(10'000), Millis(100));
  CHECK(sized);
}

TEST_CASE("/metrics takes GET and HEAD only, and shows the queue and the provider's retries") {
  // A gateway that is down: every send is retried later, so the delivery waits in the queue.
  FakeWebhook gateway({FakeReply{503, R"({"error": "down"})", "", false}});
  TempDir secrets;
  std::string secret_file = secrets.File("webhook-secret");
  WriteFileBytes(secret_file, "whsec-metrics-test\n", 0600);
  SidecarOptions options = LimitsOff("[sms]\nproviders = [\"webhook\"]\n[sms.webhook]\nurl = \"" +
                                     gateway.url() + "\"\nsecret_file = \"" + secret_file + "\"\n");
  options.file_provider = false;
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();

  CheckProblem(PostRaw(client, "/metrics", "{}"), 405, "method_not_allowed");
  CheckProblem(Delete(client, "/metrics"), 405, "method_not_allowed");
  httplib::Result head = client.Head("/metrics");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->body.empty());

  std::string canceled = CreateChallenge(client, "alice");
  REQUIRE(Delete(client, ChallengePath(canceled)).status == 204);
  CreateChallenge(client, "bob");
  CreateChallenge(client, "bob");  // supersedes bob's first, whose delivery is dropped
  REQUIRE(gateway.WaitForCount(1));

  // Between two tries the delivery is queued: seen in the same scrape as the retry.
  Scrape waiting;
  bool queued = PollUntil(
      [&] {
        waiting = ScrapeMetrics(client);
        return waiting.at("otp_sidecar_outbox_depth") == 1 &&
               waiting.at(Series(kDeliveries, R"(provider="webhook",result="retry")")) >= 1;
      },
      Millis(10'000), Millis(20));
  CHECK(queued);
  CHECK(waiting.at(Series(kChallenges, R"(outcome="created")")) == 3);
  CHECK(waiting.at(Series(kChallenges, R"(outcome="canceled")")) == 1);
  CHECK(waiting.at(Series(kChallenges, R"(outcome="superseded")")) == 1);
  CHECK(waiting.at(Series(kDeliveries, R"(provider="webhook",result="sent")")) == 0);
  CHECK(waiting.at(R"(otp_sidecar_delivery_duration_seconds_count{provider="webhook"})") >= 1);
}

TEST_CASE("request ids: a caller's plain id is echoed and logged, others are replaced") {
  SidecarProcess sidecar(WithLimits({{"user_sends", R"(["1/15m"])"}}));
  httplib::Client client = sidecar.client();

  auto create_as = [&](const std::string& request_id) {
    return client.Post("/v1/challenges", {{"X-Request-Id", request_id}},
                       R"({"user": "alice", "phone": "+12065550100"})", "application/json");
  };
  httplib::Result created = create_as("login-42.create_A");
  REQUIRE(created);
  REQUIRE(created->status == 202);
  CHECK(created->get_header_value("X-Request-Id") == "login-42.create_A");
  CHECK(created->get_header_value_count("X-Request-Id") == 1);
  std::string id = nlohmann::json::parse(created->body).value("challenge_id", "");
  std::string code = sidecar.WaitForSms(id);

  httplib::Result refused = create_as("login-43.refused");
  REQUIRE(refused);
  CHECK(refused->status == 429);
  CHECK(refused->get_header_value("X-Request-Id") == "login-43.refused");

  static const std::regex kGenerated("^[0-9a-f]{16}$");
  httplib::Result none = client.Get("/metrics");
  REQUIRE(none);
  std::string generated = none->get_header_value("X-Request-Id");
  CHECK(std::regex_match(generated, kGenerated));
  for (const std::string& bad : {std::string(65, 'a'), std::string("a b"), std::string("x=y")}) {
    CAPTURE(bad);
    httplib::Result replaced = client.Get("/healthz", {{"X-Request-Id", bad}});
    REQUIRE(replaced);
    CHECK(std::regex_match(replaced->get_header_value("X-Request-Id"), kGenerated));
  }
  httplib::Result bad_method = client.Put("/healthz", {{"X-Request-Id", "put-1"}}, "", "");
  REQUIRE(bad_method);
  CHECK(bad_method->status == 405);
  CHECK(bad_method->get_header_value("X-Request-Id") == "put-1");
  HttpReply verified = PostJson(client, ChallengePath(id) + "/verify", {{"code", code}});
  CHECK(verified.str("status") == "approved");
  REQUIRE(sidecar.Stop() == 0);

  // Every line of a request carries its id: the request line and the refusal logged deep
  // inside it. Background lines carry none. No code is ever logged.
  std::string err = sidecar.stderr_text();
  INFO("stderr:\n", err);
  CheckLogLines(err);
  std::vector<std::string> lines = Lines(err);
  auto with = [&](const std::string& a, const std::string& b) {
    int n = 0;
    for (const std::string& line : lines)
      n += line.find(a) != std::string::npos && line.find(b) != std::string::npos;
    return n;
  };
  CHECK(with("msg=request request_id=login-42.create_A ", "status=202") == 1);
  CHECK(with("msg=refused request_id=login-43.refused ", "limit=user_sends") == 1);
  CHECK(with("msg=request request_id=login-43.refused ", "status=429") == 1);
  CHECK(with("msg=request request_id=" + generated + " ", "path=/metrics") == 1);
  CHECK(with("msg=request request_id=put-1 ", "status=405") == 1);
  CHECK(with("subsystem=delivery msg=sent", "request_id=") == 0);
  CHECK(err.find(code) == std::string::npos);
  CHECK(err.find(WrongCode(code)) == std::string::npos);
}

}  // namespace
}  // namespace sidecar::testing
