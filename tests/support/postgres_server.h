#pragma once

// A throw-away PostgreSQL server for the integration tests.
//
// The server (PostgreSQL's own binaries, from OTP_SIDECAR_POSTGRES_BINDIR) runs in a temporary
// folder of its own and listens only on a Unix socket there, never on TCP. Its cluster is
// made with `initdb --auth=trust -U postgres`, so any local client connects as `postgres`
// without a password, and it runs with fsync off: what a crash of the machine would lose
// does not matter to a test. PostgreSQL refuses to run as root: when the tests run as root,
// the folder belongs to the `postgres` user and initdb and postgres run as that user;
// otherwise as the current user.
//
// initdb takes most of a second, so a cluster is made once and kept as a template in the
// build folder (OTP_SIDECAR_TEST_STATE_DIR), made by the first test process that needs it
// under a lock file; later servers start from a copy of it.
//
// `postgres` runs as a direct child of the test process with PR_SET_PDEATHSIG: when the
// test process dies, even of SIGKILL, the kernel sends it SIGQUIT (an immediate shutdown,
// which ends its own children). Start it from the test's main thread: the signal follows
// the thread that started it. A crash leaves the temporary folder behind; a normal exit
// removes it.

#include <sys/types.h>

#include <string>

namespace sidecar::testing {

// True when the integration tests run against PostgreSQL (OTP_SIDECAR_TEST_STORE=postgres),
// false for SQLite (the variable unset, empty or "sqlite"); throws std::runtime_error for
// any other value, so that a misspelt store never runs the suite on the wrong one.
bool TestStoreIsPostgres();

class PostgresServer {
 public:
  // Makes the cluster (from the template) and starts the server; throws std::runtime_error,
  // with the server's log, when it does not accept connections within 30 s.
  PostgresServer();
  // Stops the server (as Stop does) and removes its folder.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The server of this test process, started on first use.
  static PostgresServer& Shared();

  // The folder of the server's socket (the `host` of its URIs).
  const std::string& socket_dir() const { return dir_; }
  // The server's log (its stdout and stderr, every run appended).
  std::string log_path() const { return dir_ + "/postgres.log"; }
  std::string log_text() const;

  // The libpq URI of `database` on this server, as user `postgres`.
  std::string Uri(const std::string& database) const;
  // The URI of the `postgres` database, for statements about the server itself
  // (pg_stat_activity, pg_terminate_backend, ...).
  std::string AdminUri() const { return Uri("postgres"); }

  // Creates a new, empty database (otp_1, otp_2, ...) and returns its URI; throws
  // std::runtime_error when the server refuses.
  std::string CreateDatabase();

  // A fast shutdown (SIGINT): open sessions are ended, their transactions rolled back, and
  // the call returns once the server has exited; it is killed after 30 s. Nothing happens
  // when it is not running. `immediate` sends SIGQUIT instead, which stops it at once as a
  // crash would; the next start then recovers from the log.
  void Stop(bool immediate = false);
  // Starts the stopped server again on the same folder and cluster; throws as the
  // constructor does.
  void Start();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  void MakeCluster();

  std::string dir_;
  std::string data_dir_;
  pid_t pid_ = -1;
  int databases_ = 0;
};

}  // namespace sidecar::testing
