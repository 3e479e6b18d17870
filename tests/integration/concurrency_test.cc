// Many clients at once against one challenge: the attempt budget and single use must hold
// under real concurrency, not just one request after another.

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "integration/parallel.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

constexpr int kThreads = 20;

// Runs `request(i)` on kThreads threads, released together (see parallel.h).
std::vector<HttpReply> InParallel(SidecarProcess& sidecar,
                                  const std::function<HttpReply(httplib::Client&, int)>& request) {
  return sidecar::testing::InParallel(sidecar, kThreads, request);
}

std::map<std::string, int> CountStatuses(const std::vector<HttpReply>& replies) {
  std::map<std::string, int> counts;
  for (const HttpReply& reply : replies) {
    INFO("reply: ", reply.describe());
    CHECK(reply.status == 200);
    counts[reply.status == 200 ? reply.str("status") : "http " + std::to_string(reply.status)]++;
  }
  return counts;
}

std::string Describe(const std::map<std::string, int>& counts) {
  std::string text;
  for (const auto& [status, n] : counts)
    text += status + "=" + std::to_string(n) + " ";
  return text;
}

TEST_CASE("20 parallel verifies of the right code approve exactly once") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  std::vector<HttpReply> replies =
      InParallel(sidecar, [&](httplib::Client& c, int) { return VerifyById(c, id, code); });
  std::map<std::string, int> counts = CountStatuses(replies);
  INFO("statuses: ", Describe(counts));
  CHECK(counts["approved"] == 1);
  CHECK(counts["used"] == kThreads - 1);
  CHECK(counts.size() == 2);
  CHECK(StatusOf(client, id) == "approved");
}

TEST_CASE("20 parallel verifies by user of the right code approve exactly once") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  std::vector<HttpReply> replies =
      InParallel(sidecar, [&](httplib::Client& c, int) { return VerifyByUser(c, "alice", code); });
  std::map<std::string, int> counts = CountStatuses(replies);
  INFO("statuses: ", Describe(counts));
  CHECK(counts["approved"] == 1);
  CHECK(counts["used"] == kThreads - 1);
}

TEST_CASE("20 parallel wrong codes get at most max_attempts compares and the rest are locked") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  // Twenty different wrong codes, so no caching of one answer could hide a race.
  std::vector<HttpReply> replies = InParallel(sidecar, [&](httplib::Client& c, int i) {
    std::string wrong = code;
    do {
      wrong = std::to_string((std::stoll(wrong) + 1 + i) % 1'000'000);
      wrong = std::string(6 - wrong.size(), '0') + wrong;
    } while (wrong == code);
    return VerifyById(c, id, wrong);
  });
  std::map<std::string, int> counts = CountStatuses(replies);
  INFO("statuses: ", Describe(counts));
  CHECK(counts["denied"] <= 5);
  CHECK(counts["denied"] == 5);  // every request was answered, so the budget was all used
  CHECK(counts["locked"] == kThreads - counts["denied"]);
  CHECK(counts["approved"] == 0);

  std::multiset<long long> remaining;
  for (const HttpReply& reply : replies) {
    if (reply.str("status") == "denied") remaining.insert(reply.integer("attempts_remaining"));
  }
  CHECK(remaining == std::multiset<long long>{0, 1, 2, 3, 4});

  HttpReply view = Get(client, ChallengePath(id));
  CHECK(view.str("status") == "locked");
  CHECK(view.integer("attempts_remaining") == 0);
  CHECK(VerifyById(client, id, code).str("status") == "locked");
}

TEST_CASE("parallel right and wrong codes: never more than one approval") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  // Half right, half wrong: whatever the order, at most one approval and at most five
  // compares in total.
  std::vector<HttpReply> replies = InParallel(sidecar, [&](httplib::Client& c, int i) {
    return VerifyById(c, id, i % 2 == 0 ? code : WrongCode(code));
  });
  std::map<std::string, int> counts = CountStatuses(replies);
  INFO("statuses: ", Describe(counts));
  CHECK(counts["approved"] <= 1);
  CHECK(counts["approved"] + counts["denied"] <= 5);
  CHECK(counts["approved"] + counts["denied"] + counts["used"] + counts["locked"] == kThreads);
  // If it ended approved, everything after was "used"; if locked, nothing was approved.
  std::string final_status = StatusOf(client, id);
  CHECK((final_status == "approved") == (counts["approved"] == 1));
  if (final_status == "locked") CHECK(counts["denied"] == 5);
}

TEST_CASE("parallel creates for many users each get their own code") {
  // Twenty codes to one phone at once: more than phone_sends allows.
  SidecarProcess sidecar(WithLimits({{"phone_sends", "[]"}}));
  std::vector<HttpReply> replies = InParallel(sidecar, [&](httplib::Client& c, int i) {
    return PostJson(c, "/v1/challenges",
                    {{"user", "user" + std::to_string(i)}, {"phone", kAlicePhone}});
  });
  std::set<std::string> ids;
  for (const HttpReply& reply : replies) {
    INFO("reply: ", reply.describe());
    CHECK(reply.status == 202);
    ids.insert(reply.str("challenge_id"));
  }
  CHECK(ids.size() == static_cast<std::size_t>(kThreads));

  httplib::Client client = sidecar.client();
  for (int i = 0; i < kThreads; ++i) {
    std::string id = replies[i].str("challenge_id");
    std::string code = sidecar.WaitForSms(id);
    CHECK(VerifyByUser(client, "user" + std::to_string(i), code).str("status") == "approved");
  }
}

TEST_CASE("parallel creates for one user leave exactly one pending challenge") {
  // Twenty codes to one user and phone at once: more than user_sends and phone_sends allow.
  SidecarProcess sidecar(WithLimits({{"user_sends", "[]"}, {"phone_sends", "[]"}}));
  std::vector<HttpReply> replies = InParallel(sidecar, [&](httplib::Client& c, int) {
    return PostJson(c, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  });
  httplib::Client client = sidecar.client();
  int pending = 0;
  for (const HttpReply& reply : replies) {
    INFO("reply: ", reply.describe());
    REQUIRE(reply.status == 202);
    std::string status = StatusOf(client, reply.str("challenge_id"));
    if (status == "pending")
      ++pending;
    else
      CHECK(status == "superseded");
  }
  CHECK(pending == 1);
}

TEST_CASE("a burst of new connections is served without stalls") {
  // Each login opens its own connection when its pool is cold; a burst of them must not
  // wait for SYN retransmissions (1 s and more) because the listen backlog overflowed.
  SidecarProcess sidecar;
  constexpr int kBurst = 48;
  std::vector<long long> took_ms(kBurst, -1);
  std::vector<int> statuses(kBurst, 0);
  std::vector<std::thread> threads;
  StartGate gate;
  for (int i = 0; i < kBurst; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client client = sidecar.client();  // not connected yet
      gate.Wait();
      auto started = std::chrono::steady_clock::now();
      statuses[i] = Get(client, "/healthz").status;
      took_ms[i] = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
    });
  }
  gate.OpenWhenAllWait(kBurst);
  for (std::thread& thread : threads)
    thread.join();

  long long slowest = 0;
  for (int i = 0; i < kBurst; ++i) {
    CHECK(statuses[i] == 200);
    slowest = std::max(slowest, took_ms[i]);
  }
  INFO("slowest of ", kBurst, " new connections: ", slowest, " ms");
  CHECK(slowest < 700);
}

}  // namespace
}  // namespace sidecar::testing
