// Where the sidecar listens and who may call it: several listeners, Unix sockets and their
// files, sockets passed in by systemd, non-loopback refusals and bearer-token caller auth.

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "integration/test_helpers.h"
#include "support/unix_socket.h"

namespace sidecar::testing {
namespace {

constexpr const char* kToken = "4f2a9c1e7b3d5f60-caller-token";
constexpr const char* kNextToken = "a1b2c3d4e5f60718-rotated-token";

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// serve flags for a second sidecar in `dir` (its own database, the file provider).
std::vector<std::string> ServeArgs(const TempDir& dir, std::vector<std::string> listen) {
  std::vector<std::string> args = {"serve"};
  for (const std::string& address : listen)
    args.insert(args.end(), {"--listen", address});
  args.insert(args.end(), {"--sms-provider", "file", "--sms-file", dir.File("sms.jsonl")});
  return WithTestDatabase(args, dir.path());
}

bool Healthy(httplib::Client& client) {
  return Get(client, "/healthz").status == 200;
}

// A sidecar whose callers must authenticate, with two tokens given as credentials.
SidecarOptions WithTokens(const TempDir& credentials, const std::string& auth_extra = "") {
  WriteFileBytes(credentials.File("api-token"), std::string(kToken) + "\n");
  WriteFileBytes(credentials.File("next-token"), kNextToken);
  SidecarOptions options =
      WithConfig("[auth]\ntoken_files = [\"api-token\", \"next-token\"]\n" + auth_extra);
  options.env = {"CREDENTIALS_DIRECTORY=" + credentials.path()};
  return options;
}

TEST_CASE("without [auth] callers need no token") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  CreateChallenge(client, "alice");
  CHECK(sidecar.stderr_text().find("auth=off") != std::string::npos);
}

TEST_CASE("with [auth], a missing or wrong bearer token is 401 before anything else") {
  TempDir credentials;
  SidecarProcess sidecar(WithTokens(credentials));
  httplib::Client client = sidecar.client();

  HttpReply missing =
      PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  CheckProblem(missing, 401, "unauthorized");
  CHECK(missing.header("WWW-Authenticate") == "Bearer");
  CHECK(!missing.header("X-Request-Id").empty());
  // The caller is refused before its body is parsed or its path is routed.
  CheckProblem(PostRaw(client, "/v1/challenges", "{not json"), 401, "unauthorized");
  CheckProblem(Get(client, "/no/such/path"), 401, "unauthorized");
  CheckProblem(Get(client, "/metrics"), 401, "unauthorized");

  client.set_bearer_token_auth("4f2a9c1e7b3d5f60-caller-tokem");
  CheckProblem(PostJson(client, "/v1/verify", {{"user", "alice"}, {"code", "123456"}}), 401,
               "unauthorized");

  // Probes never need one.
  httplib::Client probe = sidecar.client();
  CHECK(Get(probe, "/healthz").status == 200);
  CHECK(Get(probe, "/readyz").status != 401);
  CHECK(sidecar.stderr_text().find("auth=bearer") != std::string::npos);
}

TEST_CASE("with [auth], either configured token is accepted, and none reaches the log") {
  TempDir credentials;
  SidecarProcess sidecar(WithTokens(credentials));
  httplib::Client first = sidecar.client();
  first.set_bearer_token_auth(kToken);
  std::string id = CreateChallenge(first, "alice");
  std::string code = sidecar.WaitForSms(id);

  httplib::Client rotated = sidecar.client();
  rotated.set_bearer_token_auth(kNextToken);
  CHECK(Get(rotated, ChallengePath(id)).str("status") == "pending");
  CHECK(VerifyById(rotated, id, code).str("status") == "approved");
  CHECK(Get(rotated, "/no/such/path").status == 404);  // routed once the caller is known

  std::string logs = sidecar.stderr_text() + sidecar.stdout_text();
  CHECK(logs.find(kToken) == std::string::npos);
  CHECK(logs.find(kNextToken) == std::string::npos);
}

TEST_CASE("metrics_require_token = false lets /metrics through without a token") {
  TempDir credentials;
  SidecarProcess sidecar(WithTokens(credentials, "metrics_require_token = false\n"));
  httplib::Client client = sidecar.client();
  HttpReply metrics = Get(client, "/metrics");
  INFO("reply: ", metrics.describe());
  REQUIRE(metrics.ok());
  CHECK(metrics.status != 401);
  CheckProblem(Get(client, "/v1/challenges/" + UnissuedChallengeId()), 401, "unauthorized");
}

TEST_CASE("a token file others can read, or an empty one, stops serve and fails check-config") {
  TempDir dir;
  WriteFileBytes(dir.File("open-token"), kToken, 0644);
  WriteFileBytes(dir.File("empty-token"), "", 0600);
  for (const char* file : {"open-token", "empty-token"}) {
    CAPTURE(file);
    std::string config = dir.File(std::string(file) + ".toml");
    WriteFileBytes(config, "[auth]\ntoken_files = [\"" + dir.File(file) + "\"]\n");
    std::vector<std::string> serve = ServeArgs(dir, {"127.0.0.1:0"});
    serve.insert(serve.end(), {"--config", config});
    ExitResult served = RunSidecarToExit(serve, dir.path());
    CHECK(served.exit_code == 2);  // a configuration problem, as check-config reports it
    CHECK(served.err.find(dir.File(file)) != std::string::npos);
    CHECK(served.err.find("msg=listening") == std::string::npos);
    CHECK(served.err.find(kToken) == std::string::npos);

    ExitResult checked = RunSidecarToExit(
        WithTestDatabase({"check-config", "--config", config}, dir.path()), dir.path());
    CHECK(checked.exit_code == 2);
    CHECK(checked.out.find("auth.token_files") != std::string::npos);
    CHECK(checked.out.find(kToken) == std::string::npos);
  }
}

TEST_CASE("TCP and a Unix socket answer side by side; the socket is 0660 and goes on SIGTERM") {
  TempDir sockets;
  std::string path = sockets.File("otp.sock");
  SidecarProcess sidecar(WithConfig("", {"--listen", "unix:" + path}));
  CHECK(sidecar.stderr_text().find("address=" + sidecar.address() + ",unix:" + path) !=
        std::string::npos);
  REQUIRE(IsSocketFile(path));
  CHECK(ModeOf(path) == 0660);

  httplib::Client over_unix = UnixClient(path);
  httplib::Client over_tcp = sidecar.client();
  std::string id = CreateChallenge(over_unix, "alice");
  std::string code = sidecar.WaitForSms(id);
  CHECK(Get(over_tcp, ChallengePath(id)).str("status") == "pending");
  CHECK(VerifyById(over_unix, id, code).str("status") == "approved");
  CHECK(Get(over_tcp, ChallengePath(id)).str("status") == "approved");
  CHECK(sidecar.stderr_text().find("remote=unix") != std::string::npos);

  CHECK(sidecar.Stop() == 0);
  CHECK_FALSE(IsSocketFile(path));
  CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("a Unix socket left by kill -9 is replaced; one a live sidecar serves is refused") {
  TempDir sockets;
  std::string path = sockets.File("otp.sock");
  SidecarProcess sidecar(WithConfig("", {"--listen", "unix:" + path}));

  TempDir other;
  ExitResult second =
      RunSidecarToExit(ServeArgs(other, {"127.0.0.1:0", "unix:" + path}), other.path());
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("a process is listening on it") != std::string::npos);
  CHECK(second.err.find("msg=listening") == std::string::npos);
  httplib::Client first = UnixClient(path);
  CHECK(Healthy(first));  // the live sidecar keeps its socket

  sidecar.Kill9();
  REQUIRE(IsSocketFile(path));  // nobody removed it
  httplib::Client stale = UnixClient(path);
  CHECK_FALSE(Get(stale, "/healthz").ok());

  sidecar.Restart();
  CHECK(sidecar.stderr_text().find("msg=\"replaced a stale socket file\"") != std::string::npos);
  httplib::Client again = UnixClient(path);
  CHECK(PollUntil([&] { return Healthy(again); }, Millis(5000)));
  CHECK(ModeOf(path) == 0660);
}

TEST_CASE("a listen path that is not a socket is refused by serve and check-config, untouched") {
  TempDir dir;
  std::string path = dir.File("not-a-socket");
  WriteFileBytes(path, "precious", 0644);

  ExitResult served = RunSidecarToExit(ServeArgs(dir, {"127.0.0.1:0", "unix:" + path}), dir.path());
  CHECK(served.exit_code == 2);
  CHECK(served.err.find("exists and is not a socket") != std::string::npos);
  CHECK(ReadFileBytes(path) == "precious");

  std::string missing = dir.File("no-folder/otp.sock");
  for (const std::string& address : {"unix:" + path, "unix:" + missing}) {
    CAPTURE(address);
    ExitResult checked = RunSidecarToExit(
        WithTestDatabase({"check-config", "--listen", address}, dir.path()), dir.path());
    CHECK(checked.exit_code == 2);
    CHECK(checked.out.find("listen: cannot listen on " + address) != std::string::npos);
  }
  CHECK(ReadFileBytes(path) == "precious");

  WriteFileBytes(dir.File("group.toml"), "socket_group = \"no-such-group-for-otp-sidecar\"\n");
  ExitResult group = RunSidecarToExit(
      WithTestDatabase({"check-config", "--config", dir.File("group.toml")}, dir.path()),
      dir.path());
  CHECK(group.exit_code == 2);
  CHECK(group.out.find("socket_group: there is no group \"no-such-group-for-otp-sidecar\"") !=
        std::string::npos);
}

TEST_CASE("a non-loopback address needs allow_remote and caller auth; nothing is bound") {
  TempDir dir;
  WriteFileBytes(dir.File("token"), kToken);
  std::string auth = "[auth]\ntoken_files = [\"" + dir.File("token") + "\"]\n";
  for (const std::string& toml : {std::string(), std::string("allow_remote = true\n"), auth}) {
    CAPTURE(toml);
    WriteFileBytes(dir.File("c.toml"), toml);
    std::vector<std::string> args = ServeArgs(dir, {"127.0.0.1:0", "0.0.0.0:0"});
    args.insert(args.end(), {"--config", dir.File("c.toml")});
    ExitResult run = RunSidecarToExit(args, dir.path());
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("--listen: 0.0.0.0:0 is not a loopback address") != std::string::npos);
    CHECK(run.err.find("allow_remote = true and [auth] token_files") != std::string::npos);
    CHECK(run.err.find("msg=listening") == std::string::npos);
  }
}

TEST_CASE("a socket passed in by systemd is served, not bound again, and left in place") {
  TempDir sockets;
  std::string path = sockets.File("otp-sidecar.sock");
  BoundUnixSocket passed(path, true);  // as a socket unit with SocketMode=0660
  SidecarOptions options = WithConfig("", {"--listen", "unix:" + path});
  options.passed_listen_fd = passed.fd();
  SidecarProcess sidecar(options);

  std::string log = sidecar.stderr_text();
  CHECK(log.find("address=unix:" + path + "," + sidecar.address()) != std::string::npos);
  CHECK(log.find("activated=1") != std::string::npos);
  CHECK(log.find("stale socket") == std::string::npos);

  httplib::Client client = UnixClient(path);
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  CHECK(VerifyById(client, id, code).str("status") == "approved");
  httplib::Client over_tcp = sidecar.client();
  CHECK(Get(over_tcp, ChallengePath(id)).str("status") == "approved");

  // The socket belongs to systemd: a stop leaves it, and the next start serves it again.
  CHECK(sidecar.Stop() == 0);
  CHECK(IsSocketFile(path));
  CHECK(ModeOf(path) == 0660);
  sidecar.Restart();
  httplib::Client again = UnixClient(path);
  CHECK(Get(again, ChallengePath(id)).str("status") == "approved");
}

}  // namespace
}  // namespace sidecar::testing
