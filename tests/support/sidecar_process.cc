#include "support/sidecar_process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/postgres_server.h"
#include "support/sql_reader.h"

extern char** environ;

#ifndef OTP_SIDECAR_BINARY
#error "OTP_SIDECAR_BINARY must name the otp-sidecar binary"
#endif

namespace sidecar::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr Millis kStartDeadline{10'000};

// How every report of GCC's and Clang's sanitizer runtimes begins (UndefinedBehaviorSanitizer
// prints FILE:LINE:COLUMN first, then the marker).
constexpr const char* kSanitizerMarkers[] = {
    "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer",   "ERROR: UndefinedBehaviorSanitizer",
    "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer", ": runtime error: ",
};
constexpr std::size_t kReportLimit = 16 * 1024;

// Fails the current test when `err`, the stderr of `what`, holds a sanitizer report. The exit
// status alone does not tell: many tests never look at it, and a sidecar the harness kills has
// none.
void CheckNoSanitizerReport(const std::string& what, const std::string& err) {
  std::string report = SanitizerReport(err);
  if (!report.empty()) FAIL_CHECK(what << " printed a sanitizer report:\n" << report);
}

// The test process talks to servers that may close a connection while a request is still
// being written (an over-long body, a server being killed); cpp-httplib does not pass
// MSG_NOSIGNAL, so SIGPIPE would kill the whole test binary.
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// The "NAME=" part of an environment entry.
std::string EnvName(const std::string& entry) {
  return entry.substr(0, entry.find('=') + 1);
}

// `extra` ("NAME=value") and then the test process's environment without the names that
// `extra` sets, and without the suite's own OTP_SIDECAR_TEST_STORE: the sidecar refuses an
// OTP_SIDECAR_ variable that names no configuration key.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env(extra.begin(), extra.end());
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string inherited = *entry;
    bool replaced = std::any_of(extra.begin(), extra.end(), [&](const std::string& mine) {
      return EnvName(mine) == EnvName(inherited);
    });
    if (!replaced && EnvName(inherited) != "OTP_SIDECAR_TEST_STORE=") env.push_back(inherited);
  }
  return env;
}

constexpr const char kListenPid[] = "LISTEN_PID=";

// Writes `value` in decimal and a NUL at `slot` without allocating (between fork and exec).
void WriteDecimal(char* slot, long value) {
  char digits[24];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  for (int i = 0; i < count; ++i)
    slot[i] = digits[count - 1 - i];
  slot[count] = '\0';
}

// Starts OTP_SIDECAR_BINARY with `args` and the test's environment plus `env` in `dir`,
// stdin from /dev/null and stdout/stderr appended to the given files, and `passed_fd` (when
// not -1) as a socket passed in by systemd. Only async-signal-safe calls happen between
// fork and exec.
pid_t Spawn(const std::vector<std::string>& args, const std::string& dir,
            const std::string& out_path, const std::string& err_path,
            const std::vector<std::string>& env = {}, int passed_fd = -1) {
  (void)kSigpipeIgnored;
  std::vector<std::string> arg_storage = {OTP_SIDECAR_BINARY};
  arg_storage.insert(arg_storage.end(), args.begin(), args.end());
  std::vector<char*> argv = NullTerminated(arg_storage);
  std::vector<std::string> extra_env = env;
  if (passed_fd >= 0) {
    // LISTEN_PID must be the child's pid, known only after fork: room for it is made here.
    extra_env.push_back("LISTEN_FDS=1");
    extra_env.push_back(kListenPid + std::string(20, '0'));
  }
  std::vector<std::string> env_storage = ChildEnvironment(extra_env);
  char* pid_slot = nullptr;
  for (std::string& entry : env_storage) {
    if (passed_fd >= 0 && entry.rfind(kListenPid, 0) == 0) pid_slot = &entry[sizeof kListenPid - 1];
  }
  std::vector<char*> envp = NullTerminated(env_storage);

  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error("cannot open /dev/null");
  int out = OpenForAppend(out_path);
  int err = OpenForAppend(err_path);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid == 0) {
    // The sidecar must never outlive the test binary, whatever happens to it.
    PrepareChildAfterFork(parent, SIGKILL);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
    int first_closed = 3;
    if (passed_fd >= 0) {
      // dup2 leaves the copy open across exec; a socket already at 3 needs that said.
      if (passed_fd == 3 ? ::fcntl(3, F_SETFD, 0) < 0 : ::dup2(passed_fd, 3) < 0) ::_exit(127);
      WriteDecimal(pid_slot, static_cast<long>(::getpid()));
      first_closed = 4;
    }
    for (int fd = first_closed; fd < 4096; ++fd)
      ::close(fd);  // sockets of the test's own clients
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(in);
  ::close(out);
  ::close(err);
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(fork_errno));
  return pid;
}

std::string FirstDigits(const std::string& text) {
  std::size_t start = text.find_first_of("0123456789");
  if (start == std::string::npos) return "";
  std::size_t end = text.find_first_not_of("0123456789", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// True when the TOML `config` sets key_file at its top level (before any table).
bool ConfigNamesKeyFile(const std::string& config) {
  static const std::regex kKeyFile(R"((^|\n)[ \t]*key_file[ \t]*=)");
  std::string top = config.substr(0, config.find("\n["));
  return config.rfind("[", 0) != 0 && std::regex_search(top, kKeyFile);
}

}  // namespace

void PrepareChildAfterFork(pid_t parent, int death_signal) {
  ::prctl(PR_SET_PDEATHSIG, death_signal);
  if (::getppid() != parent) ::_exit(127);

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
}

int OpenForAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return fd;
}

std::vector<char*> NullTerminated(std::vector<std::string>& storage) {
  std::vector<char*> pointers;
  for (std::string& text : storage) {
    pointers.push_back(text.data());
  }
  pointers.push_back(nullptr);
  return pointers;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool WaitForExit(pid_t pid, Millis timeout, int* code) {
  bool done = PollUntil(
      [&] {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          *code = DecodeStatus(status);
          return true;
        }
        if (r < 0 && errno == ECHILD) {
          *code = -1;
          return true;
        }
        return false;
      },
      timeout, Millis(5));
  return done;
}

void KillAndWait(pid_t pid) {
  ::kill(pid, SIGKILL);
  int ignored = 0;
  // SIGKILL cannot be caught; the deadline only guards against a bug in this harness.
  if (!WaitForExit(pid, Millis(10'000), &ignored)) {
    throw std::runtime_error("process " + std::to_string(pid) + " survived SIGKILL");
  }
}

std::string SanitizerReport(const std::string& text) {
  std::size_t first = std::string::npos;
  for (const char* marker : kSanitizerMarkers)
    first = std::min(first, text.find(marker));
  if (first == std::string::npos) return "";

  std::size_t line_end = text.rfind('\n', first);
  std::size_t start = line_end == std::string::npos ? 0 : line_end + 1;
  return text.substr(start, kReportLimit);
}

bool PollUntil(const std::function<bool()>& condition, Millis timeout, Millis interval) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(interval);
  }
  return condition();
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFileBytes(const std::string& path, const std::string& text, unsigned mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + path);
    out << text;
  }
  if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("cannot chmod " + path);
}

ExitResult RunSidecarToExit(const std::vector<std::string>& args, const std::string& dir,
                            Millis timeout, const std::vector<std::string>& env) {
  static std::atomic<int> counter{0};
  std::string tag = std::to_string(++counter);
  std::string out_path = dir + "/run-" + tag + ".out";
  std::string err_path = dir + "/run-" + tag + ".err";

  pid_t pid = Spawn(args, dir, out_path, err_path, env);
  ExitResult result;
  if (!WaitForExit(pid, timeout, &result.exit_code)) {
    result.timed_out = true;
    KillAndWait(pid);
    result.exit_code = -1;
  }
  result.out = ReadFileBytes(out_path);
  result.err = ReadFileBytes(err_path);
  CheckNoSanitizerReport("otp-sidecar " + (args.empty() ? "" : args.front()), result.err);
  return result;
}

std::string NewTestDatabase(const std::string& dir) {
  return TestStoreIsPostgres() ? PostgresServer::Shared().CreateDatabase() : dir + "/otp.db";
}

static void EnsureSharedKey(const std::string& path) {
  if (path.empty() || std::filesystem::exists(path)) return;
  // As an operator copies the key every sidecar of a shared database uses: serve makes none
  // on PostgreSQL.
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  WriteFileBytes(path, std::string(hex) + "\n", 0600);
}

std::vector<std::string> TestDatabaseFlags(const std::string& dir) {
  std::vector<std::string> flags = {"--database", NewTestDatabase(dir)};
  if (IsPostgresUri(flags[1])) {
    EnsureSharedKey(dir + "/otp.key");
    flags.insert(flags.end(), {"--key-file", dir + "/otp.key"});
  }
  return flags;
}

std::string RateRules(const std::vector<std::string>& rules) {
  std::string text = "[";
  for (const std::string& rule : rules) {
    if (text.size() > 1) text += ", ";
    text += "\"" + rule + "\"";
  }
  return text + "]";
}

std::string LimitsToml(const SidecarOptions& options) {
  std::map<std::string, std::string> values;
  if (options.limits_off) {
    values = {
        {"resend_cooldown", "\"1s\""}, {"user_sends", "[]"},
        {"phone_sends", "[]"},         {"ip_sends", "[]"},
        {"region_sends", "[]"},        {"global_sends", "[]"},
        {"user_failures", "[]"},       {"ip_failures", "[]"},
        {"pumping.enabled", "false"},
    };
  }
  for (const auto& [key, value] : options.limits)
    values[key] = value;
  if (values.empty()) return "";

  static const std::string kPumping = "pumping.";
  std::string limits;
  std::string pumping;
  for (const auto& [key, value] : values) {
    if (key.compare(0, kPumping.size(), kPumping) == 0) {
      pumping += key.substr(kPumping.size()) + " = " + value + "\n";
    } else {
      limits += key + " = " + value + "\n";
    }
  }
  std::string text = "\n[limits]\n" + limits;
  if (!pumping.empty()) text += "\n[limits.pumping]\n" + pumping;
  return text;
}

SidecarProcess::SidecarProcess(SidecarOptions options) : options_(std::move(options)) {
  if (dir_.path().empty()) throw std::runtime_error("cannot make a temporary folder");
  std::string limits = LimitsToml(options_);
  if (!limits.empty() && options_.config_toml.find("[limits") != std::string::npos) {
    throw std::invalid_argument(
        "SidecarOptions: config_toml has its own [limits] table; set limits there or in "
        "SidecarOptions::limits, not both");
  }
  config_text_ = options_.config_toml;
  if (!config_text_.empty() && !limits.empty() && config_text_.back() != '\n') config_text_ += '\n';
  config_text_ += limits;
  if (!options_.log_file.empty())
    config_text_ = "log_file = \"" + log_path() + "\"\n" + config_text_;
  if (!config_text_.empty()) WriteFileBytes(config_path(), config_text_);

  database_ = options_.database.empty() ? NewTestDatabase(dir_.path()) : options_.database;
  if (IsPostgresUri(database_) && !ConfigNamesKeyFile(config_text_)) EnsureSharedKey(key_path());
  Start();
}

SidecarProcess::~SidecarProcess() {
  try {
    KillAndReap();
  } catch (...) {
    // Nothing more can be done from a destructor; PR_SET_PDEATHSIG is the last resort.
  }

  // Every run appended to the same file, and the last one has been reaped: whatever it
  // reported up to its end is there now.
  try {
    CheckNoSanitizerReport("otp-sidecar", stderr_text());
  } catch (...) {
    // Reading the file failed (out of memory); the test's own checks still stand.
  }
}

const std::string& SidecarProcess::database_path() const {
  if (IsPostgresUri(database_)) {
    throw std::logic_error("database_path(): the sidecar runs on PostgreSQL (" + database_ +
                           "); a test about SQLite's files must skip there");
  }
  return database_;
}

std::string SidecarProcess::key_path() const {
  if (!options_.key_file.empty()) return options_.key_file;
  if (ConfigNamesKeyFile(config_text_)) return "";
  if (IsPostgresUri(database_)) return dir_.File("otp.key");
  return std::filesystem::path(database_).parent_path().string() + "/otp-sidecar.key";
}

std::vector<std::string> SidecarProcess::Arguments() const {
  std::vector<std::string> args = {"serve", "--listen", options_.listen, "--database", database_};
  // A flag would override the configuration's own key_file, which some tests are about.
  if (!options_.key_file.empty() || (IsPostgresUri(database_) && !ConfigNamesKeyFile(config_text_)))
    args.insert(args.end(), {"--key-file", key_path()});
  if (options_.file_provider) {
    args.insert(args.end(), {"--sms-provider", "file", "--sms-file", sms_path()});
  }
  if (!config_text_.empty()) {
    args.push_back("--config");
    args.push_back(config_path());
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  return args;
}

std::string SidecarProcess::log_path() const {
  return options_.log_file.empty() ? "" : dir_.File(options_.log_file);
}

void SidecarProcess::Start() {
  // With a log file, the start-up line is there; stderr has what came before it.
  std::string err_path = options_.log_file.empty() ? dir_.File("stderr.log") : log_path();
  std::size_t offset = ReadFileBytes(err_path).size();  // earlier runs' lines come first
  pid_ = Spawn(Arguments(), dir_.path(), dir_.File("stdout.log"), dir_.File("stderr.log"),
               options_.env, options_.passed_listen_fd);
  port_ = 0;

  auto fail = [&](const std::string& why) {
    KillAndReap();
    std::string err = ReadFileBytes(err_path);
    std::string mine = err.substr(std::min(offset, err.size()));
    // A sanitizer report goes to stderr.log even when the log lines go to a log file.
    if (!options_.log_file.empty()) mine += "\n--- stderr.log ---\n" + stderr_text();
    throw std::runtime_error("otp-sidecar did not start: " + why + "\n--- stderr ---\n" + mine);
  };

  static const std::regex kListening(R"(msg=listening address=(?:[^ ]*,)?127\.0\.0\.1:([0-9]+))");
  bool exited = false;
  int exit_code = 0;
  bool listening = PollUntil(
      [&] {
        std::string err = ReadFileBytes(err_path);
        std::string mine = err.substr(std::min(offset, err.size()));
        std::smatch match;
        if (std::regex_search(mine, match, kListening)) {
          port_ = std::stoi(match[1].str());
          return true;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          exited = true;
          exit_code = DecodeStatus(status);
          pid_ = -1;
          return true;
        }
        return false;
      },
      kStartDeadline);
  if (exited) fail("it exited with status " + std::to_string(exit_code));
  if (!listening || port_ <= 0) fail("no listening line within the deadline");

  httplib::Client health = client();
  health.set_connection_timeout(std::chrono::milliseconds(500));
  bool healthy = PollUntil(
      [&] {
        httplib::Result res = health.Get("/healthz");
        return res && res->status == 200;
      },
      kStartDeadline);
  if (!healthy) fail("GET /healthz did not answer 200 within the deadline");
}

void SidecarProcess::KillAndReap() {
  if (pid_ <= 0) return;
  pid_t pid = pid_;
  pid_ = -1;
  KillAndWait(pid);
}

httplib::Client SidecarProcess::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(10));
  c.set_write_timeout(std::chrono::seconds(10));
  return c;
}

void SidecarProcess::Signal(int signal) {
  if (pid_ <= 0) throw std::runtime_error("Signal: the sidecar is not running");
  ::kill(pid_, signal);
}

int SidecarProcess::WaitForExit(Millis timeout) {
  if (pid_ <= 0) throw std::runtime_error("WaitForExit: the sidecar is not running");
  int code = -1;
  if (!sidecar::testing::WaitForExit(pid_, timeout, &code)) return -1;
  pid_ = -1;
  return code;
}

int SidecarProcess::Stop(Millis timeout) {
  Signal(SIGTERM);
  int code = WaitForExit(timeout);
  if (pid_ > 0) {
    KillAndReap();
    return -1;
  }
  return code;
}

void SidecarProcess::Kill9() {
  if (pid_ <= 0) throw std::runtime_error("Kill9: the sidecar is not running");
  KillAndReap();
}

void SidecarProcess::Restart() {
  if (pid_ > 0) Stop();
  Start();
}

std::string SidecarProcess::stderr_text() const {
  return ReadFileBytes(dir_.File("stderr.log"));
}

std::string SidecarProcess::stdout_text() const {
  return ReadFileBytes(dir_.File("stdout.log"));
}

std::vector<SmsRecord> SidecarProcess::AllSms() const {
  std::vector<SmsRecord> records;
  std::string text = ReadFileBytes(sms_path());
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a line still being written is not read
    std::string line = text.substr(start, end - start);
    start = end + 1;
    nlohmann::json value = nlohmann::json::parse(line, nullptr, false);
    if (!value.is_object())
      throw std::runtime_error("sms.jsonl has a line that is not JSON: " + line);
    SmsRecord record;
    record.to = value.value("to", "");
    record.body = value.value("body", "");
    record.challenge_id = value.value("challenge_id", "");
    record.sent_at = value.value("sent_at", "");
    record.code = FirstDigits(record.body);
    records.push_back(record);
  }
  return records;
}

std::vector<SmsRecord> SidecarProcess::SmsFor(const std::string& challenge_id) const {
  std::vector<SmsRecord> mine;
  for (SmsRecord& record : AllSms()) {
    if (record.challenge_id == challenge_id) mine.push_back(record);
  }
  return mine;
}

std::vector<SmsRecord> SidecarProcess::WaitForSmsCount(const std::string& challenge_id,
                                                       std::size_t count, Millis timeout) const {
  std::vector<SmsRecord> found;
  bool ok = PollUntil(
      [&] {
        found = SmsFor(challenge_id);
        return found.size() >= count;
      },
      timeout);
  if (!ok) {
    throw std::runtime_error("expected " + std::to_string(count) + " SMS for " + challenge_id +
                             ", found " + std::to_string(found.size()) + "\n--- sms.jsonl ---\n" +
                             ReadFileBytes(sms_path()));
  }
  return found;
}

std::string SidecarProcess::WaitForSms(const std::string& challenge_id, Millis timeout) const {
  return WaitForSmsCount(challenge_id, 1, timeout).front().code;
}

}  // namespace sidecar::testing
