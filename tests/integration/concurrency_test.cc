// Many clients at once against one challenge: the attempt budget and single use must hold
// under real concurrency, not just one request after another. And many connections at
// once: bursts of new ones, and idle keep-alive ones that must not crowd out a new caller.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "integration/parallel.h"
#include "integration/test_helpers.h"
#include "support/sql_reader.h"

namespace sidecar::testing {
namespace {

// Well past the attempt budget and the HTTP pool's starting threads.
constexpr int kThreads = 50;

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

TEST_CASE("50 parallel verifies of the right code approve exactly once") {
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

TEST_CASE("50 parallel verifies by user of the right code approve exactly once") {
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

TEST_CASE("50 parallel wrong codes get exactly max_attempts compares and the rest are locked") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);

  // Fifty different wrong codes, so no caching of one answer could hide a race.
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

  // The audit trail agrees: five compares, every other verify refused as locked.
  SqlReader db(sidecar.database());
  auto verifies = [&](const std::string& outcome) {
    return db.Int(
        "SELECT COUNT(*) FROM audit_events WHERE event = 'verify' AND "
        "challenge_id = ?1 AND outcome = ?2",
        {id, outcome});
  };
  CHECK(verifies("denied") == 5);
  CHECK(verifies("locked") == kThreads - 5 + 1);  // and the right code after the lock
  CHECK(verifies("approved") == 0);
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
  // Fifty codes to one phone at once: more than phone_sends and the pumping guard allow.
  SidecarProcess sidecar(WithLimits(NoSendLimits()));
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
  // Fifty codes to one user and phone at once: more than the send limits allow.
  SidecarProcess sidecar(WithLimits(NoSendLimits()));
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

// A TCP connection that made one request (GET /healthz) and is then held open and idle,
// the way a login server's connection pool keeps its connections between logins.
class IdleKeepAlive {
 public:
  explicit IdleKeepAlive(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    static const std::string kRequest = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    answered_ = fd_ >= 0 &&
                ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                ::send(fd_, kRequest.data(), kRequest.size(), MSG_NOSIGNAL) ==
                    static_cast<ssize_t>(kRequest.size()) &&
                ReadAnswer();
  }
  ~IdleKeepAlive() {
    if (fd_ >= 0) ::close(fd_);
  }
  IdleKeepAlive(const IdleKeepAlive&) = delete;
  IdleKeepAlive& operator=(const IdleKeepAlive&) = delete;

  // True when the request was answered 200 in full.
  bool answered() const { return answered_; }

  // True while the server keeps the connection: no end of stream is waiting to be read.
  bool open() const {
    pollfd waiting{fd_, POLLIN | POLLRDHUP, 0};
    return ::poll(&waiting, 1, 0) == 0;
  }

 private:
  // Reads one whole answer: its head, then as many body bytes as Content-Length says.
  bool ReadAnswer() {
    std::string data;
    while (true) {
      std::size_t head_end = data.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = data.substr(0, head_end);
        std::transform(head.begin(), head.end(), head.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        std::size_t length_at = head.find("content-length:");
        if (length_at == std::string::npos) return false;
        std::size_t length = std::stoul(head.substr(length_at + 15));
        if (data.size() >= head_end + 4 + length) return data.rfind("HTTP/1.1 200", 0) == 0;
      }
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      data.append(buffer, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  bool answered_ = false;
};

// Raises this process's soft limit on open files to `wanted` (within the hard limit);
// false when the hard limit is lower. Sidecars started afterwards inherit it.
bool RaiseOpenFileLimit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur >= wanted) return true;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) return false;
  limit.rlim_cur = wanted;
  return ::setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

TEST_CASE("with 300 idle keep-alive connections held open, a new caller is served in 100 ms") {
  constexpr int kIdle = 300;
  constexpr int kCallers = 5;
  if (!RaiseOpenFileLimit(kIdle + 1024)) {
    MESSAGE("the open-file limit is below ", kIdle + 1024, " and cannot be raised; skipped");
    return;
  }
  // The idle connections must stay open for the whole test, however slow the build.
  SidecarOptions options = WithConfig("[http]\nkeep_alive_timeout = \"60s\"\n");
  options.limits = NoSendLimits();
  SidecarProcess sidecar(options);

  std::vector<std::unique_ptr<IdleKeepAlive>> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<IdleKeepAlive>(sidecar.port()));
    REQUIRE_MESSAGE(idle.back()->answered(), "idle connection ", i, " was not answered");
  }

  // Each new caller connects and starts a challenge, as a login with a cold pool does.
  std::vector<double> took_ms;
  for (int i = 0; i < kCallers; ++i) {
    httplib::Client client = sidecar.client();
    client.set_tcp_nodelay(true);  // else Nagle holds the body back for a delayed ACK
    auto started = std::chrono::steady_clock::now();
    HttpReply reply = PostJson(client, "/v1/challenges",
                               {{"user", "new-" + std::to_string(i)}, {"phone", kAlicePhone}});
    took_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count());
    CHECK_MESSAGE(reply.status == 202, reply.describe());
  }

  double worst = *std::max_element(took_ms.begin(), took_ms.end());
  std::string all;
  for (double ms : took_ms)
    all += std::to_string(ms) + " ";
  INFO("new callers took (ms): ", all);
  CHECK(worst < 100);
  // The idle connections were held all along, not closed to make room.
  CHECK(std::count_if(idle.begin(), idle.end(), [](const auto& c) { return c->open(); }) == kIdle);
}

}  // namespace
}  // namespace sidecar::testing
