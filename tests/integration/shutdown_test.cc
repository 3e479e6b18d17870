// Stopping and reloading: SIGTERM with work in flight, SIGHUP for templates and the log
// file, and the database's size under retention.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "integration/provider_fakes.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One HTTP/1.1 request on a plain socket, so the test knows the connection's local port.
class RawRequest {
 public:
  RawRequest(int port, const std::string& request) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t size = sizeof address;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    local_port_ = ntohs(address.sin_port);
    REQUIRE(::send(fd_, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  }
  ~RawRequest() { ::close(fd_); }

  int local_port() const { return local_port_; }

  // Everything the server sends until it closes the connection.
  std::string ReadAll() {
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string out;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd_, buffer, sizeof buffer, 0)) > 0)
      out.append(buffer, static_cast<std::size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
  int local_port_ = 0;
};

// The bytes the server has not read yet on its end of the connection from `client_port`
// (from /proc/net/tcp), or -1 while that connection is not listed.
long UnreadByServer(int server_port, int client_port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    fields >> slot >> local >> remote >> state >> queues;
    int local_port = std::stoi(local.substr(local.find(':') + 1), nullptr, 16);
    int remote_port = std::stoi(remote.substr(remote.find(':') + 1), nullptr, 16);
    if (local_port == server_port && remote_port == client_port) {
      return std::stol(queues.substr(queues.find(':') + 1), nullptr, 16);
    }
  }
  return -1;
}

// A SQLite sidecar that stopped cleanly has checkpointed its write-ahead log to nothing.
void CheckWalCheckpointed(const SidecarProcess& sidecar) {
  if (TestStoreIsPostgres()) return;
  std::string wal = sidecar.database_path() + "-wal";
  CHECK((!std::filesystem::exists(wal) || std::filesystem::file_size(wal) == 0));
}

bool Refuses(int port) {
  httplib::Client probe("127.0.0.1", port);
  probe.set_connection_timeout(std::chrono::milliseconds(200));
  return !probe.Get("/healthz");
}

std::string Quoted(const std::string& text) {
  return nlohmann::json(text).dump();
}

TEST_CASE("SIGTERM with a verify in flight: it is answered and the WAL checkpointed within 3 s") {
  SidecarProcess sidecar;
  std::string code;
  std::string id;
  {
    httplib::Client client = sidecar.client();
    id = CreateChallenge(client, "alice");
    code = sidecar.WaitForSms(id);
  }

  // The verify waits on the database, which another process holds for now.
  DatabaseWriteLock lock(sidecar.database());
  std::string body = nlohmann::json{{"code", code}}.dump();
  RawRequest verify(sidecar.port(), "POST " + ChallengePath(id) +
                                        "/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        "Content-Type: application/json\r\nConnection: close\r\n"
                                        "Content-Length: " +
                                        std::to_string(body.size()) + "\r\n\r\n" + body);
  REQUIRE(PollUntil([&] { return UnreadByServer(sidecar.port(), verify.local_port()) == 0; },
                    Millis(5000)));

  auto signalled = SteadyClock::now();
  sidecar.Signal(SIGTERM);
  // The stop is under way (nothing new is accepted) while the verify is still in flight.
  REQUIRE(PollUntil([&] { return Refuses(sidecar.port()); }, Millis(2000)));
  lock.Release();

  std::string answer = verify.ReadAll();
  int status = sidecar.WaitForExit(Millis(5000));
  auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - signalled);
  INFO("answer: ", answer, "\nstop took ", took.count(), " ms; stderr:\n", sidecar.stderr_text());
  CHECK(answer.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(answer.find("\"status\":\"approved\"") != std::string::npos);
  CHECK(status == 0);
  CHECK(took < Millis(3000));
  CHECK(sidecar.stderr_text().find("msg=stopped") != std::string::npos);
  CheckWalCheckpointed(sidecar);
}

TEST_CASE(
    "SIGTERM while a webhook send stalls exits 0 within 3 s and the restart makes it unknown") {
  FakeWebhook webhook({FakeReply{200, "", "", true}, FakeReply{}});
  TempDir secrets;
  std::string secret_file = secrets.File("webhook-secret");
  WriteFileBytes(secret_file, "whsec-shutdown-test-0123456789abcdef\n", 0600);
  std::string toml =
      "[sms]\nproviders = [\"webhook\"]\n[sms.webhook]\nurl = " + Quoted(webhook.url()) +
      "\nsecret_file = " + Quoted(secret_file) + "\n[delivery]\nrequest_timeout = \"30s\"\n";
  SidecarOptions options = LimitsOff(toml, {"--sms-provider", "webhook"});
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  REQUIRE(webhook.WaitForCount(1));

  auto signalled = SteadyClock::now();
  sidecar.Signal(SIGTERM);
  int status = sidecar.WaitForExit(Millis(5000));
  auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - signalled);
  INFO("stop took ", took.count(), " ms; stderr:\n", sidecar.stderr_text());
  CHECK(status == 0);
  CHECK(took < Millis(3000));
  CHECK(sidecar.stderr_text().find("a send outlived the stop grace") != std::string::npos);
  CheckWalCheckpointed(sidecar);

  sidecar.Restart();
  httplib::Client again = sidecar.client();
  HttpReply view = Get(again, ChallengePath(id));
  INFO("after restart: ", view.describe());
  CHECK(view.json["delivery"]["state"] == "unknown");
  CHECK(webhook.count() == 1);  // not sent a second time
}

TEST_CASE("SIGHUP reloads the templates for the next SMS but an invalid file keeps them") {
  SidecarOptions options = LimitsOff("app_name = \"Acme\"\n[sms]\ntemplate = \"{code} old\"\n");
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();
  std::string first = CreateChallenge(client, "alice");
  CHECK(sidecar.WaitForSmsCount(first, 1)[0].body.find(" old") != std::string::npos);

  std::string config = sidecar.config_text();
  std::string::size_type at = config.find("{code} old");
  WriteFileBytes(sidecar.config_path(), config.substr(0, at) + "{code} new from {app}" +
                                            config.substr(at + 10) +
                                            "\n[code]\nmax_attempts = 3\n");
  sidecar.Signal(SIGHUP);
  REQUIRE(PollUntil(
      [&] { return sidecar.stderr_text().find("msg=\"templates reloaded\"") != std::string::npos; },
      Millis(5000)));
  CHECK(sidecar.stderr_text().find("take effect only after a restart\" keys=code") !=
        std::string::npos);
  std::string second = CreateChallenge(client, "bob");
  std::string body = sidecar.WaitForSmsCount(second, 1)[0].body;
  CHECK(body.find(" new from Acme") != std::string::npos);

  WriteFileBytes(sidecar.config_path(), "[sms]\ntemplate = \"no code at all\"\n");
  sidecar.Signal(SIGHUP);
  REQUIRE(PollUntil(
      [&] {
        return sidecar.stderr_text().find(
                   "level=error subsystem=main msg=\"configuration not "
                   "reloaded; the templates in use stay\"") != std::string::npos;
      },
      Millis(5000)));
  std::string third = CreateChallenge(client, "carol");
  CHECK(sidecar.WaitForSmsCount(third, 1)[0].body.find(" new from Acme") != std::string::npos);
  CHECK(Get(client, "/healthz").status == 200);
  CHECK(sidecar.Stop() == 0);
}

TEST_CASE("SIGHUP reopens a log file that was moved away") {
  SidecarOptions options;
  options.log_file = "sidecar.log";
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();
  REQUIRE(Get(client, "/healthz").status == 200);
  REQUIRE(PollUntil(
      [&] { return ReadFileBytes(sidecar.log_path()).find("path=/healthz") != std::string::npos; },
      Millis(5000)));
  CHECK(sidecar.stderr_text().find("msg=listening") == std::string::npos);

  std::string rotated = sidecar.log_path() + ".1";
  std::filesystem::rename(sidecar.log_path(), rotated);
  sidecar.Signal(SIGHUP);
  REQUIRE(PollUntil(
      [&] {
        return ReadFileBytes(sidecar.log_path()).find("SIGHUP received") != std::string::npos;
      },
      Millis(5000)));

  REQUIRE(Get(client, "/v1/nothing-here").status == 404);
  REQUIRE(PollUntil(
      [&] {
        return ReadFileBytes(sidecar.log_path()).find("path=/v1/nothing-here") != std::string::npos;
      },
      Millis(5000)));
  std::string old_file = ReadFileBytes(rotated);
  CHECK(old_file.find("msg=listening") != std::string::npos);
  CHECK(old_file.find("nothing-here") == std::string::npos);
  CHECK(old_file.find("SIGHUP") == std::string::npos);
  CHECK(sidecar.Stop() == 0);
  CHECK(ReadFileBytes(sidecar.log_path()).find("msg=stopped") != std::string::npos);
}

TEST_CASE("with a short retention the database stops growing under steady load") {
  SidecarProcess sidecar(LimitsOff("[retention]\nchallenges = \"1s\"\naudit = \"1s\"\n"));
  httplib::Client client = sidecar.client();
  auto rows = [&] {
    return SqlReader(sidecar.database())
        .Int(
            "SELECT (SELECT COUNT(*) FROM challenges) + (SELECT COUNT(*) FROM "
            "deliveries) + (SELECT COUNT(*) FROM audit_events)");
  };
  // The rows go on both stores. Pages given back for reuse are SQLite's: on PostgreSQL
  // autovacuum, not the sidecar, decides when dead rows' space is reused.
  bool postgres = TestStoreIsPostgres();

  std::int64_t pages_after_warmup = 0;
  std::int64_t pages = 0;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 40; ++i) {
      std::string id = CreateChallenge(client, "user" + std::to_string(i));
      REQUIRE(Delete(client, ChallengePath(id)).status == 204);
    }
    INFO("round ", round);
    REQUIRE(PollUntil([&] { return rows() == 0; }, Millis(20'000), Millis(100)));
    if (!postgres) pages = SqlReader(sidecar.database_path()).Int("PRAGMA page_count");
    if (round == 1) pages_after_warmup = pages;
  }
  INFO("pages after warm-up: ", pages_after_warmup, ", at the end: ", pages);
  CHECK(pages <= pages_after_warmup);
}

}  // namespace
}  // namespace sidecar::testing
