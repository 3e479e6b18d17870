#include "support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include "support/sidecar_process.h"

extern char** environ;

#ifndef OTP_SIDECAR_POSTGRES_BINDIR
#error "OTP_SIDECAR_POSTGRES_BINDIR must name PostgreSQL's bin folder (pg_config --bindir)"
#endif
#ifndef OTP_SIDECAR_TEST_STATE_DIR
#error "OTP_SIDECAR_TEST_STATE_DIR must name a folder the tests may keep files in"
#endif

namespace sidecar::testing {
namespace {

constexpr Millis kStartDeadline{30'000};
constexpr Millis kStopDeadline{30'000};
constexpr Millis kCommandDeadline{60'000};

// Settings that make the server quick to start and to write, at the cost of what a crash of
// the machine would lose. A commit still reaches the operating system before it is answered
// (synchronous_commit stays on), so a crash of the server alone loses no answered commit, as
// in production. Only the Unix socket: no test may open a TCP port for it.
const std::vector<std::string> kServerSettings = {
    "listen_addresses=", "fsync=off",         "full_page_writes=off",
    "wal_level=minimal", "max_wal_senders=0",
};

// Who initdb and postgres run as.
struct ServerUser {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// PostgreSQL refuses to run as root, so root hands the server to the `postgres` user that
// Debian's package makes.
ServerUser ServerUserForThisProcess() {
  if (::geteuid() != 0) return {};
  struct passwd* entry = ::getpwnam("postgres");
  if (entry == nullptr) {
    throw std::runtime_error(
        "the tests run as root, and there is no user postgres to run "
        "PostgreSQL as (install Debian's postgresql package)");
  }
  return {true, entry->pw_uid, entry->pw_gid};
}

std::string Binary(const std::string& name) {
  return std::string(OTP_SIDECAR_POSTGRES_BINDIR) + "/" + name;
}

// Starts `args` as `user` with stdout and stderr appended to `log_path`. `death_signal` is
// what the kernel sends the child when this thread ends. Only async-signal-safe calls happen
// between fork and exec.
pid_t SpawnAs(const ServerUser& user, std::vector<std::string> args, const std::string& log_path,
              int death_signal) {
  std::vector<char*> argv = NullTerminated(args);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error("cannot open /dev/null");
  int log = OpenForAppend(log_path);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid == 0) {
    if (user.switch_user) {
      if (::setgroups(1, &user.gid) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0)
        ::_exit(127);
    }
    PrepareChildAfterFork(parent, death_signal);
    if (::dup2(in, 0) < 0 || ::dup2(log, 1) < 0 || ::dup2(log, 2) < 0) ::_exit(127);
    for (int fd = 3; fd < 4096; ++fd)
      ::close(fd);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(in);
  ::close(log);
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(fork_errno));
  return pid;
}

// Runs `args` as `user` to its end; throws std::runtime_error, with its output, when it fails.
void RunToEnd(const ServerUser& user, const std::vector<std::string>& args,
              const std::string& log_path) {
  pid_t pid = SpawnAs(user, args, log_path, SIGKILL);
  int code = -1;
  if (!WaitForExit(pid, kCommandDeadline, &code)) {
    KillAndWait(pid);
    code = -1;
  }
  if (code != 0) {
    throw std::runtime_error(args.front() + " failed with status " + std::to_string(code) +
                             "\n--- output ---\n" + ReadFileBytes(log_path));
  }
}

// The server's version ("15.18"), which names the template: a cluster works only with the
// major version that made it.
std::string ServerVersion(const ServerUser& user, const std::string& scratch) {
  RunToEnd(user, {Binary("postgres"), "--version"}, scratch);
  std::string text = ReadFileBytes(scratch);
  static const std::string kName = "(PostgreSQL) ";
  std::size_t start = text.find(kName);
  if (start == std::string::npos) throw std::runtime_error("postgres --version said: " + text);
  start += kName.size();
  return text.substr(start, text.find_first_not_of("0123456789.", start) - start);
}

// Holds an exclusive lock on a file until destroyed.
class FileLock {
 public:
  explicit FileLock(const std::string& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0)
      throw std::runtime_error("cannot lock " + path + ": " + std::strerror(errno));
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

// Characters of a path that a URI query value may hold as they are.
bool UriSafe(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/-._~", c) != nullptr;
}

std::string PercentEncoded(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    if (UriSafe(c)) {
      out += c;
    } else {
      auto byte = static_cast<unsigned char>(c);
      out += {'%', kHex[byte >> 4], kHex[byte & 15]};
    }
  }
  return out;
}

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

}  // namespace

bool TestStoreIsPostgres() {
  const char* value = std::getenv("OTP_SIDECAR_TEST_STORE");
  std::string store = value == nullptr ? "" : value;
  if (store.empty() || store == "sqlite") return false;
  if (store == "postgres") return true;
  throw std::runtime_error("OTP_SIDECAR_TEST_STORE is \"" + store +
                           "\"; it must be sqlite or postgres");
}

PostgresServer::PostgresServer() {
  std::string pattern = (std::filesystem::temp_directory_path() / "otp-sidecar-pg-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot make a temporary folder: " + std::string(strerror(errno)));
  dir_ = pattern;
  data_dir_ = dir_ + "/data";

  ServerUser user = ServerUserForThisProcess();
  if (user.switch_user && ::chown(dir_.c_str(), user.uid, user.gid) != 0)
    throw std::runtime_error("cannot hand " + dir_ + " to postgres: " + strerror(errno));
  MakeCluster();
  Start();
}

PostgresServer::~PostgresServer() {
  try {
    Stop();
  } catch (...) {
    // PR_SET_PDEATHSIG still ends it when this process exits.
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

PostgresServer& PostgresServer::Shared() {
  static PostgresServer server;
  return server;
}

void PostgresServer::MakeCluster() {
  ServerUser user = ServerUserForThisProcess();
  std::string state = OTP_SIDECAR_TEST_STATE_DIR;
  std::string made = state + "/postgres-template-" + ServerVersion(user, dir_ + "/version.txt");

  // The first process makes the template while the others wait on the lock; after that it is
  // only read. Copying keeps the owner when root copies, as the server needs.
  FileLock lock(state + "/postgres-template.lock");
  if (std::filesystem::exists(made + "/PG_VERSION")) {
    RunToEnd({}, {"/bin/cp", "-a", made, data_dir_}, log_path());
    return;
  }
  RunToEnd(user,
           {Binary("initdb"), "-D", data_dir_, "--auth=trust", "-U", "postgres", "--no-sync", "-E",
            "UTF8", "--locale=C", "--no-instructions"},
           log_path());
  // Renamed into place only when whole, so a process killed here leaves no half template.
  std::string partial = made + ".partial-" + std::to_string(::getpid());
  std::filesystem::remove_all(made);
  std::filesystem::remove_all(partial);
  RunToEnd({}, {"/bin/cp", "-a", data_dir_, partial}, log_path());
  std::filesystem::rename(partial, made);
}

void PostgresServer::Start() {
  if (pid_ > 0) return;
  std::vector<std::string> args = {Binary("postgres"), "-D", data_dir_, "-k", dir_};
  for (const std::string& setting : kServerSettings)
    args.insert(args.end(), {"-c", setting});
  std::size_t offset = ReadFileBytes(log_path()).size();
  pid_ = SpawnAs(ServerUserForThisProcess(), args, log_path(), SIGQUIT);

  bool exited = false;
  std::string admin = AdminUri();
  bool ready = PollUntil(
      [&] {
        int code = 0;
        if (WaitForExit(pid_, Millis(0), &code)) {
          exited = true;
          pid_ = -1;
          return true;
        }
        return PQping(admin.c_str()) == PQPING_OK;
      },
      kStartDeadline);
  if (ready && !exited) return;

  if (pid_ > 0) KillAndWait(pid_);
  pid_ = -1;
  std::string log = log_text();
  throw std::runtime_error("PostgreSQL did not start in " + dir_ + "\n--- its log ---\n" +
                           log.substr(std::min(offset, log.size())));
}

void PostgresServer::Stop(bool immediate) {
  if (pid_ <= 0) return;
  pid_t pid = pid_;
  pid_ = -1;
  ::kill(pid, immediate ? SIGQUIT : SIGINT);
  int code = 0;
  if (!WaitForExit(pid, kStopDeadline, &code)) KillAndWait(pid);
}

std::string PostgresServer::log_text() const {
  return ReadFileBytes(log_path());
}

std::string PostgresServer::Uri(const std::string& database) const {
  return "postgresql://postgres@/" + database + "?host=" + PercentEncoded(dir_);
}

std::string PostgresServer::CreateDatabase() {
  std::string name = "otp_" + std::to_string(++databases_);
  Connection connection(PQconnectdb(AdminUri().c_str()), &PQfinish);
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to " + AdminUri() + ": " +
                             PQerrorMessage(connection.get()));
  }
  Result result(PQexec(connection.get(), ("CREATE DATABASE " + name).c_str()), &PQclear);
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    throw std::runtime_error("CREATE DATABASE " + name + ": " + PQerrorMessage(connection.get()));
  }
  return Uri(name);
}

}  // namespace sidecar::testing
