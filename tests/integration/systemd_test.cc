// The sidecar as systemd sees it: readiness (GET /readyz), sd_notify messages (READY=1,
// WATCHDOG=1, STOPPING=1) on a notify socket the test makes, and the installed units.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "integration/immutable_files.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof address.sun_path);
    path_.copy(address.sun_path, path_.size());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~NotifySocket() { ::close(fd_); }

  const std::string& path() const { return path_; }

  // Every message received so far, in order.
  const std::vector<std::string>& Receive() {
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd_, buffer, sizeof buffer, 0)) > 0) {
      messages_.emplace_back(buffer, static_cast<std::size_t>(n));
    }
    return messages_;
  }

  // How many messages so far hold `line` as one of their lines.
  int Count(const std::string& line) {
    int count = 0;
    for (const std::string& message : Receive()) {
      if (("\n" + message + "\n").find("\n" + line + "\n") != std::string::npos) ++count;
    }
    return count;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
};

// A sidecar started as systemd starts it with Type=notify and WatchdogSec=200ms.
SidecarOptions UnderSystemd(const NotifySocket& notify) {
  SidecarOptions options;
  options.env = {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=200000"};
  return options;
}

TEST_CASE("GET /readyz is 503 database_unavailable while the database cannot be written") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  HttpReply ready = Get(client, "/readyz");
  CHECK_MESSAGE(ready.status == 200, ready.describe());
  CHECK(ready.str("status") == "ready");

  DatabaseWriteLock lock(sidecar.database());
  HttpReply locked = Get(client, "/readyz");
  CHECK_MESSAGE(locked.status == 503, locked.describe());
  CHECK(locked.content_type == "application/problem+json");
  CHECK(locked.str("code") == "database_unavailable");
  CHECK(Get(client, "/healthz").status == 200);  // alive, only not ready

  lock.Release();
  CHECK(
      PollUntil([&] { return Get(client, "/readyz").status == 200; }, Millis(15'000), Millis(100)));
  CHECK(sidecar.stderr_text().find("code=database_unavailable") != std::string::npos);
}

TEST_CASE("GET /readyz is 503 database_unavailable once the database turns read-only") {
  if (::geteuid() != 0) {
    MESSAGE("making a file read-only under an open descriptor needs root; skipped");
    return;
  }
  if (SkippedUnderPostgres("a read-only database file is SQLite's")) return;
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  REQUIRE(Get(client, "/readyz").status == 200);

  {
    std::string db = sidecar.database_path();
    ImmutableFiles read_only({db, db + "-wal"});
    HttpReply probe = Get(client, "/readyz");
    CHECK_MESSAGE(probe.status == 503, probe.describe());
    CHECK(probe.str("code") == "database_unavailable");
    CHECK(Get(client, "/healthz").status == 200);
  }

  CHECK(
      PollUntil([&] { return Get(client, "/readyz").status == 200; }, Millis(15'000), Millis(100)));
}

TEST_CASE("under systemd the sidecar notifies READY=1, pings the watchdog and says STOPPING=1") {
  TempDir sockets;
  NotifySocket notify(sockets.File("notify.sock"));
  SidecarProcess sidecar(UnderSystemd(notify));

  // READY=1 comes once every listener is bound, so it is there when /healthz answers.
  CHECK(PollUntil([&] { return notify.Count("READY=1") == 1; }, Millis(10'000)));
  CHECK(PollUntil([&] { return notify.Count("WATCHDOG=1") >= 3; }, Millis(10'000)));
  CHECK(notify.Count("STOPPING=1") == 0);

  CHECK(sidecar.Stop() == 0);
  CHECK(notify.Count("STOPPING=1") == 1);
  CHECK(sidecar.stderr_text().find("msg=\"watchdog enabled\" interval_ms=100") !=
        std::string::npos);
}

TEST_CASE("the watchdog stops pinging while the database does not answer") {
  TempDir sockets;
  NotifySocket notify(sockets.File("notify.sock"));
  SidecarProcess sidecar(UnderSystemd(notify));
  REQUIRE(PollUntil([&] { return notify.Count("WATCHDOG=1") >= 1; }, Millis(10'000)));

  {
    DatabaseWriteLock lock(sidecar.database());
    REQUIRE(PollUntil(
        [&] { return sidecar.stderr_text().find("watchdog pings stopped") != std::string::npos; },
        Millis(15'000), Millis(50)));
    int pings = notify.Count("WATCHDOG=1");
    // Two more failed probes (each waits 1 s for the lock) without a ping.
    httplib::Client client = sidecar.client();
    HttpReply probe = Get(client, "/readyz");
    CHECK(probe.status == 503);
    CHECK(notify.Count("WATCHDOG=1") == pings);
  }

  int pings = notify.Count("WATCHDOG=1");
  CHECK(PollUntil([&] { return notify.Count("WATCHDOG=1") > pings; }, Millis(15'000)));
  CHECK(sidecar.stderr_text().find("watchdog pings resumed") != std::string::npos);
}

}  // namespace
}  // namespace sidecar::testing
