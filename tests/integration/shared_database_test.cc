// Several sidecars sharing one PostgreSQL database, as the sidecars of several login-server
// hosts do: a challenge made through one verifies through another, single use and the
// attempt budget hold across them, limits count across them, each SMS leaves once, a
// sidecar that dies has its claimed sends taken over after their lease, and a database
// that goes away under load gives 503s and comes back by itself. Each test starts its
// sidecars on the test process's PostgreSQL server (support/postgres_server.h); they run
// in the PostgreSQL pass of the integration suite only.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/parallel.h"
#include "integration/provider_fakes.h"
#include "integration/test_helpers.h"
#include "support/postgres_server.h"
#include "support/sql_reader.h"

namespace sidecar::testing {
namespace {

using std::chrono::steady_clock;

// True when this pass runs on PostgreSQL; otherwise says why the test does nothing, which
// ctest reports as a skip.
bool OnPostgres() {
  return !SkippedUnderSqlite("sidecars can share only a PostgreSQL database");
}

// Options for a sidecar that joins `first`'s database and key.
SidecarOptions Joining(const SidecarProcess& first, SidecarOptions options) {
  options.database = first.database();
  options.key_file = first.key_path();
  return options;
}

std::map<std::string, int> Statuses(const std::vector<HttpReply>& replies) {
  std::map<std::string, int> counts;
  for (const HttpReply& reply : replies) {
    std::string key = reply.status == 200 ? reply.str("status")
                                          : std::to_string(reply.status) + " " + reply.str("code");
    counts[key] += 1;
  }
  return counts;
}

std::string Describe(const std::map<std::string, int>& counts) {
  std::string text;
  for (const auto& [key, count] : counts)
    text += key + "=" + std::to_string(count) + " ";
  return text;
}

TEST_CASE("two sidecars on one PostgreSQL database: create through one, verify through the other") {
  if (!OnPostgres()) return;
  SidecarProcess a(LimitsOff());
  SidecarProcess b(Joining(a, LimitsOff()));
  httplib::Client to_a = a.client();
  httplib::Client to_b = b.client();

  std::string id = CreateChallenge(to_a, "alice");
  std::string code = a.WaitForSms(id);
  CHECK(StatusOf(to_b, id) == "pending");

  HttpReply wrong = VerifyByUser(to_b, "alice", WrongCode(code));
  CHECK(wrong.str("status") == "denied");
  HttpReply right = VerifyByUser(to_b, "alice", code);
  INFO("verify through b: ", right.describe());
  CHECK(right.str("status") == "approved");
  CHECK(VerifyById(to_a, id, code).str("status") == "used");

  // Both sidecars audit into the one table.
  SqlReader db(a.database());
  CHECK(db.Int("SELECT COUNT(*) FROM audit_events WHERE challenge_id = ?1 AND event = 'verify'",
               {id}) == 3);
}

TEST_CASE("20 parallel verifies of the right code split across two sidecars: one approval") {
  if (!OnPostgres()) return;
  SidecarProcess a(LimitsOff());
  SidecarProcess b(Joining(a, LimitsOff()));
  httplib::Client to_a = a.client();

  for (int round = 0; round < 3; ++round) {
    std::string user = "user" + std::to_string(round);
    std::string id = CreateChallenge(to_a, user);
    std::string code = a.WaitForSms(id);

    std::vector<HttpReply> replies = InParallel({&a, &b}, 20, [&](httplib::Client& client, int i) {
      return i % 2 == 0 ? VerifyById(client, id, code) : VerifyByUser(client, user, code);
    });
    std::map<std::string, int> counts = Statuses(replies);
    INFO("round ", round, ": ", Describe(counts));
    CHECK(counts["approved"] == 1);
    CHECK(counts["used"] == 19);
  }
}

TEST_CASE("parallel wrong codes across two sidecars never compare more than max_attempts") {
  if (!OnPostgres()) return;
  SidecarProcess a(LimitsOff());
  SidecarProcess b(Joining(a, LimitsOff()));
  httplib::Client to_a = a.client();

  std::string id = CreateChallenge(to_a, "mallory");
  std::string code = a.WaitForSms(id);
  std::vector<HttpReply> replies = InParallel({&a, &b}, 30, [&](httplib::Client& client, int) {
    return VerifyById(client, id, WrongCode(code));
  });
  std::map<std::string, int> counts = Statuses(replies);
  INFO(Describe(counts));
  CHECK(counts["denied"] == 5);
  CHECK(counts["locked"] == 25);

  SqlReader db(a.database());
  CHECK(db.Int("SELECT attempts FROM challenges WHERE id = ?1", {id}) == 5);
  CHECK(VerifyById(to_a, id, code).str("status") == "locked");
}

TEST_CASE("a per-phone limit of 3 holds across two sidecars") {
  if (!OnPostgres()) return;
  std::map<std::string, std::string> limits = NoSendLimits();
  limits["phone_sends"] = RateRules({"3/1h"});
  SidecarProcess a(WithLimits(limits));
  SidecarProcess b(Joining(a, WithLimits(limits)));

  std::vector<HttpReply> replies = InParallel({&a, &b}, 12, [&](httplib::Client& client, int i) {
    return PostJson(client, "/v1/challenges",
                    {{"user", "phone-user" + std::to_string(i)}, {"phone", kAlicePhone}});
  });
  int accepted = 0;
  int refused = 0;
  for (const HttpReply& reply : replies) {
    INFO(reply.describe());
    if (reply.status == 202) ++accepted;
    if (reply.status == 429) {
      CHECK(reply.str("code") == "phone_sends");
      ++refused;
    }
  }
  CHECK(accepted == 3);
  CHECK(refused == 9);

  SqlReader db(a.database());
  CHECK(db.Int("SELECT COUNT(*) FROM challenges") == 3);
}

TEST_CASE("each challenge's SMS leaves once in total from two sidecars' delivery workers") {
  if (!OnPostgres()) return;
  SidecarProcess a(LimitsOff());
  SidecarProcess b(Joining(a, LimitsOff()));

  // Creates through both, so both workers are woken and both find work in the outbox.
  std::vector<HttpReply> replies = InParallel({&a, &b}, 40, [&](httplib::Client& client, int i) {
    return PostJson(client, "/v1/challenges",
                    {{"user", "many" + std::to_string(i)}, {"phone", kAlicePhone}});
  });
  std::set<std::string> ids;
  for (const HttpReply& reply : replies) {
    INFO(reply.describe());
    REQUIRE(reply.status == 202);
    ids.insert(reply.str("challenge_id"));
  }
  REQUIRE(ids.size() == 40);

  auto all_sms = [&] {
    std::vector<SmsRecord> sms = a.AllSms();
    std::vector<SmsRecord> more = b.AllSms();
    sms.insert(sms.end(), more.begin(), more.end());
    return sms;
  };
  CHECK(PollUntil([&] { return all_sms().size() >= ids.size(); }, Millis(20'000)));
  SqlReader db(a.database());
  CHECK(PollUntil(
      [&] { return db.Int("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'") == 40; },
      Millis(10'000)));

  std::map<std::string, int> per_challenge;
  for (const SmsRecord& sms : all_sms())
    per_challenge[sms.challenge_id] += 1;
  CHECK(per_challenge.size() == ids.size());
  for (const auto& [id, count] : per_challenge) {
    CAPTURE(id);
    CHECK(ids.count(id) == 1);
    CHECK(count == 1);
  }
  MESSAGE("sent by a: ", a.AllSms().size(), ", by b: ", b.AllSms().size());
}

TEST_CASE("kill -9 of a sidecar with claimed sends: another sends them once their lease ends") {
  if (!OnPostgres()) return;
  // a's provider never answers, so its sends stay claimed ("sending") until it dies.
  FakeWebhook stalled({FakeReply{200, "", "", true}});
  FakeWebhook healthy;
  TempDir secrets;
  std::string secret_file = secrets.File("webhook-secret");
  WriteFileBytes(secret_file, "whsec0123456789abcdef0123456789abcdef\n", 0600);
  // a's sends wait 10 s for an answer, so they are still claimed when it is killed. b, the
  // one that takes over, has short timeouts and a lease of 4 s (which must outlast its own
  // longest send: connect 1 s + 2 x request 1 s), and re-sends what may have gone out.
  std::string slow = "[delivery]\nrequest_timeout = \"10s\"\nmax_in_flight = 8\n";
  std::string taking_over =
      "[delivery]\nconnect_timeout = \"1s\"\nrequest_timeout = \"1s\"\nlease = \"4s\"\n"
      "resend_on_unknown = true\n";
  auto config = [&](const FakeWebhook& webhook, const std::string& delivery) {
    SidecarOptions options = LimitsOff("[sms]\nproviders = [\"webhook\"]\n[sms.webhook]\nurl = " +
                                       nlohmann::json(webhook.url()).dump() + "\nsecret_file = " +
                                       nlohmann::json(secret_file).dump() + "\n" + delivery);
    options.file_provider = false;
    return options;
  };

  auto a = std::make_unique<SidecarProcess>(config(stalled, slow));
  httplib::Client to_a = a->client();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(CreateChallenge(to_a, "kill" + std::to_string(i)));
  REQUIRE(stalled.WaitForCount(3, Millis(10'000)));
  std::string database = a->database();
  SqlReader db(database);
  REQUIRE(db.Int("SELECT COUNT(*) FROM deliveries WHERE state = 'sending'") == 3);
  // The first claim's lease ends first; the others were claimed up to a moment later.
  std::int64_t claimed_at = db.Int("SELECT MIN(updated_at) FROM deliveries");

  a->Kill9();
  SidecarProcess b(Joining(*a, config(healthy, taking_over)));

  // Not before the lease has run out: the sends might still be in progress at a.
  REQUIRE(healthy.WaitForCount(3, Millis(20'000)));
  // The fake counts a request when it arrives; b records the send after the answer.
  CHECK(
      PollUntil([&] { return db.Int("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'") == 3; },
                Millis(10'000)));
  std::int64_t first_taken =
      db.Int("SELECT MIN(time) FROM audit_events WHERE event = 'deliver' AND outcome = 'sent'");
  CHECK(first_taken >= claimed_at + 4000);
  std::set<std::string> taken;
  for (const SeenRequest& request : healthy.seen()) {
    taken.insert(nlohmann::json::parse(request.body).value("challenge_id", ""));
  }
  CHECK(taken == std::set<std::string>(ids.begin(), ids.end()));
  CHECK(healthy.count() == 3);
  CHECK(b.stderr_text().find("deliveries whose claim ran out taken over") != std::string::npos);
}

TEST_CASE("the database stopped under load: 503s, no crash, and service again once it is back") {
  if (!OnPostgres()) return;
  SidecarProcess sidecar(LimitsOff());
  PostgresServer& server = PostgresServer::Shared();

  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> other{0};
  std::atomic<long long> slowest_ms{0};
  std::vector<std::thread> load;
  std::mutex others_mutex;
  std::vector<std::string> others;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      httplib::Client client = sidecar.client();
      for (int i = 0; !stop.load(); ++i) {
        auto started = steady_clock::now();
        HttpReply reply = PostJson(client, "/v1/challenges",
                                   {{"user", "load" + std::to_string(t) + "-" + std::to_string(i)},
                                    {"phone", kAlicePhone}});
        long long took = std::chrono::duration_cast<Millis>(steady_clock::now() - started).count();
        long long seen = slowest_ms.load();
        while (took > seen && !slowest_ms.compare_exchange_weak(seen, took)) {
        }
        if (reply.status == 202) {
          accepted.fetch_add(1);
        } else if (reply.status == 503 && reply.str("code") == "storage_unavailable") {
          unavailable.fetch_add(1);
        } else {
          other.fetch_add(1);
          std::lock_guard<std::mutex> lock(others_mutex);
          others.push_back(reply.describe());
        }
      }
    });
  }

  REQUIRE(PollUntil([&] { return accepted.load() >= 20; }, Millis(10'000)));
  server.Stop();
  CHECK(PollUntil([&] { return unavailable.load() >= 20; }, Millis(10'000)));
  httplib::Client probe = sidecar.client();
  HttpReply ready = Get(probe, "/readyz");
  CHECK(ready.status == 503);
  CHECK(ready.str("code") == "database_unavailable");

  int accepted_before = accepted.load();
  server.Start();
  CHECK(PollUntil([&] { return accepted.load() >= accepted_before + 20; }, Millis(15'000)));
  stop.store(true);
  for (std::thread& thread : load)
    thread.join();

  INFO("others: ", others.empty() ? "" : others.front());
  CHECK(other.load() == 0);
  CHECK(slowest_ms.load() < 6000);  // the 5 s budget, never a hang
  CHECK(sidecar.running());
  CHECK(Get(probe, "/readyz").status == 200);
  // Every acknowledged challenge is there.
  SqlReader db(sidecar.database());
  CHECK(db.Int("SELECT COUNT(*) FROM challenges") == accepted.load());
}

TEST_CASE("sidecars starting together on a new PostgreSQL database migrate it once") {
  if (!OnPostgres()) return;
  std::string uri = PostgresServer::Shared().CreateDatabase();
  TempDir dir;
  std::vector<ExitResult> results(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = RunSidecarToExit({"migrate", "--database", uri}, dir.path());
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  for (const ExitResult& result : results) {
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.out.find("schema version 1") != std::string::npos);
  }
  SqlReader db(uri);
  CHECK(db.Int("SELECT COUNT(*) FROM otp_sidecar_schema") == 1);
}

TEST_CASE("with a PostgreSQL database a missing key file is an error, never a new key") {
  if (!OnPostgres()) return;
  // A key made on one host would deny every code the other hosts made.
  std::string uri = PostgresServer::Shared().CreateDatabase();
  TempDir dir;
  std::string missing = dir.File("copy-me.key");
  for (const char* command : {"serve", "check-config"}) {
    CAPTURE(command);
    ExitResult result = RunSidecarToExit(
        {command, "--listen", "127.0.0.1:0", "--database", uri, "--key-file", missing}, dir.path());
    CHECK(result.exit_code == 2);
    CHECK((result.err + result.out).find("copy the key the other sidecars use") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(missing));
  }
}

}  // namespace
}  // namespace sidecar::testing
