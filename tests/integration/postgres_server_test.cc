// The throw-away PostgreSQL server the suite runs against with OTP_SIDECAR_TEST_STORE=postgres,
// and SqlReader and ExecSql on it. These run on either store: they test the harness itself.

#include "support/postgres_server.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "support/sidecar_process.h"
#include "support/sql_reader.h"

namespace sidecar::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// True while process `pid` exists and is no zombie.
bool ProcessAlive(pid_t pid) {
  std::string stat = ReadFileBytes("/proc/" + std::to_string(pid) + "/stat");
  std::size_t state = stat.rfind(')');
  return state != std::string::npos && state + 2 < stat.size() && stat[state + 2] != 'Z';
}

bool Accepts(const PostgresServer& server) {
  return PQping(server.AdminUri().c_str()) == PQPING_OK;
}

TEST_CASE("SQLite's parameters become PostgreSQL's, outside quoted text") {
  CHECK(PostgresParameters("SELECT a FROM t WHERE b = ?1 AND c = ?2") ==
        "SELECT a FROM t WHERE b = $1 AND c = $2");
  CHECK(PostgresParameters("SELECT ? , ?, ?7, ?") == "SELECT $1 , $2, $7, $8");
  CHECK(PostgresParameters("SELECT '?1', \"a?\" FROM t WHERE x = ? AND y = 'it''s?'") ==
        "SELECT '?1', \"a?\" FROM t WHERE x = $1 AND y = 'it''s?'");
}

TEST_CASE("the test PostgreSQL server listens on its socket alone and keeps databases apart") {
  PostgresServer server;
  REQUIRE(server.running());
  std::string first = server.CreateDatabase();
  std::string second = server.CreateDatabase();
  CHECK(first != second);
  CHECK(first.rfind("postgresql://postgres@/", 0) == 0);
  CHECK(first.find("?host=" + server.socket_dir()) != std::string::npos);

  SqlReader admin(server.AdminUri());
  CHECK(admin.Rows("SHOW listen_addresses") == Rows{{""}});
  CHECK(admin.Rows("SHOW fsync") == Rows{{"off"}});
  if (::geteuid() == 0) {
    struct stat owner {};
    REQUIRE(::stat(("/proc/" + std::to_string(server.pid())).c_str(), &owner) == 0);
    struct passwd* postgres = ::getpwnam("postgres");
    REQUIRE(postgres != nullptr);
    CHECK(owner.st_uid == postgres->pw_uid);
  }

  CHECK(ExecSql(first,
                "CREATE TABLE t (\"user\" TEXT, n BIGINT, note TEXT);"
                "INSERT INTO t VALUES ('alice', 1, NULL), ('bob', 2, 'x');") == 2);
  CHECK(ExecSql(second, "CREATE TABLE t (\"user\" TEXT, n BIGINT, note TEXT)") == 0);
  CHECK(ExecSql(first, "UPDATE t SET n = n + 10") == 2);

  SqlReader reader(first);
  CHECK(reader.Rows("SELECT \"user\", n, note FROM t ORDER BY n") ==
        Rows{{"alice", "11", "<null>"}, {"bob", "12", "x"}});
  CHECK(reader.Int("SELECT n FROM t WHERE \"user\" = ?1", {"bob"}) == 12);
  CHECK(reader.Int("SELECT COUNT(*) FROM t WHERE n > ? AND note IS NULL", {"10"}) == 1);
  CHECK(SqlReader(second).Int("SELECT COUNT(*) FROM t") == 0);
}

TEST_CASE("the test PostgreSQL server stops, and starts again with its data") {
  PostgresServer server;
  std::string database = server.CreateDatabase();
  ExecSql(database, "CREATE TABLE kept (n BIGINT); INSERT INTO kept VALUES (7)");

  server.Stop();
  CHECK_FALSE(server.running());
  CHECK_FALSE(Accepts(server));
  server.Start();
  CHECK(Accepts(server));
  CHECK(SqlReader(database).Int("SELECT n FROM kept") == 7);

  // As a crash would: the server recovers from its log on the next start.
  ExecSql(database, "INSERT INTO kept VALUES (8)");
  server.Stop(/*immediate=*/true);
  CHECK_FALSE(Accepts(server));
  server.Start();
  CHECK(SqlReader(database).Int("SELECT SUM(n) FROM kept") == 15);
  CHECK(server.log_text().find("not properly shut down") != std::string::npos);
}

TEST_CASE("the test PostgreSQL server ends when the test process that started it is killed") {
  int report[2];
  REQUIRE(::pipe(report) == 0);
  pid_t test_process = ::fork();
  REQUIRE(test_process >= 0);
  if (test_process == 0) {
    // A stand-in for a test process: it starts a server, says where, and waits to be killed.
    ::close(report[0]);
    try {
      PostgresServer server;
      std::string where = std::to_string(server.pid()) + " " + server.socket_dir() + "\n";
      if (::write(report[1], where.data(), where.size()) < 0) ::_exit(1);
      while (true)
        ::pause();
    } catch (...) {
      ::_exit(1);
    }
  }
  ::close(report[1]);
  char buffer[4096] = {};
  ssize_t got = ::read(report[0], buffer, sizeof buffer - 1);
  ::close(report[0]);
  REQUIRE(got > 0);
  pid_t server = 0;
  char dir[4000] = {};
  REQUIRE(std::sscanf(buffer, "%d %3999s", &server, dir) == 2);
  CHECK(ProcessAlive(server));

  ::kill(test_process, SIGKILL);
  int code = 0;
  REQUIRE(WaitForExit(test_process, Millis(10'000), &code));
  CHECK(PollUntil([&] { return !ProcessAlive(server); }, Millis(30'000)));
  std::string uri = "postgresql://postgres@/postgres?host=" + std::string(dir);
  CHECK(PQping(uri.c_str()) == PQPING_NO_RESPONSE);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);  // left behind, as by any crash
}

}  // namespace
}  // namespace sidecar::testing
