#pragma once

// A real otp-sidecar process for the integration tests.
//
// SidecarProcess makes a temporary folder, writes an optional TOML configuration there and
// starts the binary built by CMake (OTP_SIDECAR_BINARY) as
//
//   otp-sidecar serve --listen 127.0.0.1:0 --database DIR/otp.db --sms-provider file
//                     --sms-file DIR/sms.jsonl [--config DIR/config.toml] [extra flags]
//
// With OTP_SIDECAR_TEST_STORE=postgres in the environment, the database is instead a fresh
// one on the test process's PostgreSQL server (support/postgres_server.h), given as
// `--database URI --key-file DIR/otp.key` (a PostgreSQL database needs its key named).
// SidecarOptions::database and key_file let two sidecars share one database and key.
//
// (without the two file-provider flags when SidecarOptions::file_provider is false, so that
// the configuration's [sms] providers list is used), with the test's environment plus
// SidecarOptions::env, and with stdout and stderr appended to DIR/stdout.log and
// DIR/stderr.log. The abuse limits
// (the [limits] table) can be relaxed per test with SidecarOptions::limits_off and
// SidecarOptions::limits instead of writing TOML by hand. It waits (with a
// deadline, by polling) for the "msg=listening address=127.0.0.1:PORT" line and then for
// GET /healthz to answer 200. The listening line lists every address, comma-separated;
// the first 127.0.0.1 one is used. The process is always killed in the destructor, and it is
// also killed by the kernel if the test process dies (PR_SET_PDEATHSIG).
//
// In a sanitizer build the sidecar prints its reports on stderr. A sanitizer report in the
// stderr of a SidecarProcess (any of its runs) or of RunSidecarToExit fails the current test
// with the report, whatever the test checks itself: a report from a background thread, or
// one at exit (a leak), changes neither the answers nor always the exit status.

#include <httplib.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "support/fakes.h"

namespace sidecar::testing {

using Millis = std::chrono::milliseconds;

// Calls `condition` every `interval` until it returns true (then true) or `timeout` has
// passed (then false, after one last try).
bool PollUntil(const std::function<bool()>& condition, Millis timeout,
               Millis interval = Millis(10));

// Child processes of the test binary (a sidecar, a PostgreSQL server).

// For a child between fork and exec (async-signal-safe only): asks the kernel to send it
// `death_signal` when the thread that forked it ends, exits with 127 when `parent` is already
// gone, and sets the signal mask and SIGPIPE (which the test binary ignores) back to their
// defaults. The death signal is cleared by a change of user: call it after one.
void PrepareChildAfterFork(pid_t parent, int death_signal);

// Opens `path` for appending (creating it with mode 0600), close-on-exec; throws
// std::runtime_error when it cannot.
int OpenForAppend(const std::string& path);

// Pointers to the strings of `storage`, ended by a null pointer, for exec. They stay valid as
// long as `storage` is not changed.
std::vector<char*> NullTerminated(std::vector<std::string>& storage);

// A waitpid status as an exit status: the code it exited with, 128 + signal when a signal
// killed it, -1 otherwise.
int DecodeStatus(int status);

// Waits up to `timeout` for the child `pid` to exit and reaps it; true, with `*code` set as
// DecodeStatus does (-1 when `pid` is no child of this process), when it did.
bool WaitForExit(pid_t pid, Millis timeout, int* code);

// Sends SIGKILL to the child `pid` and reaps it; throws std::runtime_error when it has not
// gone within 10 s.
void KillAndWait(pid_t pid);

// The whole file as bytes; "" when it does not exist.
std::string ReadFileBytes(const std::string& path);

// Writes (replacing) `text` to `path` and sets `mode`.
void WriteFileBytes(const std::string& path, const std::string& text, unsigned mode = 0600);

// How a child process ended.
struct ExitResult {
  int exit_code = -1;      // the exit status, or 128 + signal when killed by a signal
  bool timed_out = false;  // true when it had to be killed at the deadline
  std::string out;         // its stdout
  std::string err;         // its stderr
};

// Runs OTP_SIDECAR_BINARY with `args` in the folder `dir` (stdout and stderr go to files
// there), with the test's environment plus `env` ("NAME=value"), and waits for it to exit,
// killing it after `timeout`.
ExitResult RunSidecarToExit(const std::vector<std::string>& args, const std::string& dir,
                            Millis timeout = Millis(10'000),
                            const std::vector<std::string>& env = {});

// The first sanitizer report (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer,
// ThreadSanitizer) in `text`, a process's stderr, from the start of its line on (at most
// 16 KiB of it); "" when there is none.
std::string SanitizerReport(const std::string& text);

// One line of the file provider's output.
struct SmsRecord {
  std::string to;
  std::string body;
  std::string challenge_id;
  std::string sent_at;
  std::string code;  // the first run of ASCII digits in the body
};

struct SidecarOptions {
  std::string config_toml;              // written to DIR/config.toml and passed when not empty
  std::vector<std::string> extra_args;  // appended after the default serve flags
  std::string listen = "127.0.0.1:0";
  // Pass --sms-provider file --sms-file DIR/sms.jsonl; false leaves the provider to the
  // configuration.
  bool file_provider = true;
  // "NAME=value" entries added to the test's environment for the sidecar.
  std::vector<std::string> env;
  // A listening socket handed to the sidecar the way systemd's socket activation does: as
  // file descriptor 3, with LISTEN_FDS=1 and LISTEN_PID set to the sidecar's own pid. The
  // test keeps it open (and passes it again on Restart), as systemd would.
  int passed_listen_fd = -1;
  // The database (a SQLite path or a PostgreSQL URI) instead of a fresh one, e.g. another
  // sidecar's database(); "" for a fresh one. Sidecars sharing a database must share the key:
  // set key_file too (to the other's key_path()).
  std::string database;
  // Passed as --key-file when set; "" leaves it to the store (see key_path()).
  std::string key_file;
  // A file name in the folder: when set, the configuration starts with
  // log_file = "DIR/NAME", and the start-up line is awaited in that file, not in stderr.
  std::string log_file;

  // Start from every abuse limit off: resend_cooldown = "1s" (the smallest allowed), every
  // send and failure rule list empty, and the pumping guard disabled. Phone validation and
  // the per-challenge max_attempts are not limits and stay as configured.
  bool limits_off = false;
  // Keys of [limits] (or of [limits.pumping] when written "pumping.KEY") with their TOML
  // values, applied over the product defaults (or over limits_off):
  //   {{"phone_sends", R"(["3/15m"])"}, {"resend_cooldown", R"("1s")"},
  //    {"pumping.floor", "3"}}
  // The harness appends them as [limits] tables after config_toml, which must then not
  // have [limits] tables of its own.
  std::map<std::string, std::string> limits;
};

// A new database on the store the suite runs on, for a sidecar in the folder `dir`: the path
// DIR/otp.db on SQLite; on PostgreSQL the URI of a fresh database on the test process's
// server (support/postgres_server.h).
std::string NewTestDatabase(const std::string& dir);

// The flags that put a sidecar a test runs itself in the folder `dir` on a new test
// database: --database NewTestDatabase(dir), and on PostgreSQL --key-file DIR/otp.key.
std::vector<std::string> TestDatabaseFlags(const std::string& dir);

// The TOML value of a rule list: RateRules({"3/15m", "10/1d"}) is ["3/15m", "10/1d"], and
// RateRules({}) is [] (the limit is off).
std::string RateRules(const std::vector<std::string>& rules);

// The [limits] and [limits.pumping] tables SidecarProcess appends for `options` ("" when
// it appends none).
std::string LimitsToml(const SidecarOptions& options);

class SidecarProcess {
 public:
  // Starts the sidecar and waits until it serves; throws std::runtime_error (holding its
  // stderr) when it does not come up within the deadline.
  explicit SidecarProcess(SidecarOptions options = {});
  ~SidecarProcess();
  SidecarProcess(const SidecarProcess&) = delete;
  SidecarProcess& operator=(const SidecarProcess&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // A client for this sidecar, with short timeouts so a hung server fails the test.
  httplib::Client client() const;

  const TempDir& dir() const { return dir_; }
  // The database, as given to --database: a SQLite path or a PostgreSQL URI.
  const std::string& database() const { return database_; }
  // The SQLite database file, for the tests about SQLite's files alone; throws
  // std::logic_error when the sidecar runs on PostgreSQL (such a test must skip there).
  const std::string& database_path() const;
  // The key file: SidecarOptions::key_file when set; DIR/otp.key on PostgreSQL; otherwise
  // otp-sidecar.key beside the SQLite database, where the sidecar makes it by default.
  std::string key_path() const;
  std::string sms_path() const { return dir_.File("sms.jsonl"); }
  std::string config_path() const { return dir_.File("config.toml"); }
  // The log file of SidecarOptions::log_file ("" when there is none).
  std::string log_path() const;
  // The configuration written to config_path() ("" when the sidecar runs without one).
  const std::string& config_text() const { return config_text_; }

  // Sends SIGTERM and waits up to `timeout`; returns the exit status (128 + signal when it
  // died of a signal, -1 when it had to be killed at the deadline). 0 for a clean stop.
  int Stop(Millis timeout = Millis(5000));

  // Sends `signal` to the running sidecar (it stays tracked; see WaitForExit).
  void Signal(int signal);

  // Waits up to `timeout` for the sidecar to exit on its own and reaps it; returns the exit
  // status as Stop() does, or -1 (still running, still tracked) at the deadline.
  int WaitForExit(Millis timeout);

  // SIGKILL, then reaps it.
  void Kill9();

  // Stops it if it still runs, then starts it again on the same folder and database (the
  // kernel picks a new port unless a fixed one was configured).
  void Restart();

  // Everything the process (all its runs) wrote to stderr / stdout so far.
  std::string stderr_text() const;
  std::string stdout_text() const;

  std::vector<SmsRecord> AllSms() const;
  std::vector<SmsRecord> SmsFor(const std::string& challenge_id) const;

  // Waits until sms.jsonl holds a message for `challenge_id` and returns its code; throws
  // std::runtime_error at the deadline.
  std::string WaitForSms(const std::string& challenge_id, Millis timeout = Millis(10'000)) const;

  // Waits until sms.jsonl holds at least `count` messages for `challenge_id` and returns
  // them; throws std::runtime_error at the deadline.
  std::vector<SmsRecord> WaitForSmsCount(const std::string& challenge_id, std::size_t count,
                                         Millis timeout = Millis(10'000)) const;

 private:
  void Start();
  void KillAndReap();
  std::vector<std::string> Arguments() const;

  SidecarOptions options_;
  std::string config_text_;  // config_toml with the limits tables appended
  TempDir dir_;
  std::string database_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace sidecar::testing
