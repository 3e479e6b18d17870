#pragma once

// Fake SMS providers for the integration tests: real servers on 127.0.0.1, started and
// stopped by each test, that the real otp-sidecar binary talks to. Header-only, included
// only by tests/integration/*.cc.
//
//   TestPki         a throw-away CA and a server certificate for an IP, made with openssl
//   FakeTwilio      Twilio's Messages endpoint over HTTPS (or HTTP), scripted answers
//   FakeWebhook     a webhook receiver over HTTP, on a free or a given port
//   ClosingServer   accepts each connection and closes it at once, without reading
//   ReservedPort    a port that is bound but not listening: connections are refused
//   ServeProcess    `otp-sidecar serve` without the harness's --sms-provider file flag, so
//                   that [sms] providers (a failover list) is honoured, with extra env
//
// Nothing here ever talks to anything but 127.0.0.1.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/fakes.h"
#include "support/sidecar_process.h"

extern char** environ;

namespace sidecar::testing {

using SteadyTime = std::chrono::steady_clock::time_point;

inline std::string ShellQuoted(const std::string& text) { return "'" + text + "'"; }

// A throw-away certificate authority and a server certificate for `ip` signed by it, made
// with /usr/bin/openssl in `dir` (as tests/unit/twilio_provider_test.cc does).
class TestPki {
 public:
  TestPki(const TempDir& dir, const std::string& name, const std::string& ip = "127.0.0.1") {
    std::string base = dir.File(name);
    std::string ca_key = base + "-ca.key";
    std::string request = base + "-server.csr";
    std::string extensions = base + "-ext.cnf";
    ca_file = base + "-ca.crt";
    cert_file = base + "-server.crt";
    key_file = base + "-server.key";
    log_file_ = base + "-openssl.log";
    WriteFileBytes(extensions, "subjectAltName=IP:" + ip +
                                   "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");

    const std::string new_key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    Openssl("req -x509" + new_key + " -days 2 -subj '/CN=otp-sidecar test CA " + name + "'" +
            " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign" +
            " -keyout " + ShellQuoted(ca_key) + " -out " + ShellQuoted(ca_file));
    Openssl("req" + new_key + " -subj /CN=" + ip + " -keyout " + ShellQuoted(key_file) +
            " -out " + ShellQuoted(request));
    Openssl("x509 -req -days 2 -set_serial 2 -in " + ShellQuoted(request) + " -CA " +
            ShellQuoted(ca_file) + " -CAkey " + ShellQuoted(ca_key) + " -extfile " +
            ShellQuoted(extensions) + " -out " + ShellQuoted(cert_file));
  }

  std::string ca_file;
  std::string cert_file;
  std::string key_file;

 private:
  void Openssl(const std::string& arguments) const {
    int rc = std::system(("/usr/bin/openssl " + arguments + " >" + ShellQuoted(log_file_) +
                          " 2>&1")
                             .c_str());
    REQUIRE_MESSAGE(rc == 0, "openssl " << arguments << ": " << ReadFileBytes(log_file_));
  }

  std::string log_file_;
};

// Runs `server` on 127.0.0.1 (a free port, or `port`) from construction to destruction.
class RunningServer {
 public:
  explicit RunningServer(httplib::Server& server, int port = 0) : server_(server) {
    REQUIRE(server_.is_valid());
    server_.set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    if (port == 0) {
      port_ = server_.bind_to_any_port("127.0.0.1");
    } else {
      port_ = server_.bind_to_port("127.0.0.1", port) ? port : -1;
    }
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    bool running = PollUntil([this] { return server_.is_running(); }, Millis(5000), Millis(2));
    if (!running) thread_.detach();
    REQUIRE(running);
  }
  ~RunningServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  int port() const { return port_; }

 private:
  httplib::Server& server_;
  int port_ = 0;
  std::thread thread_;
};

// One scripted answer.
struct FakeReply {
  int status = 201;
  std::string body;         // for FakeTwilio, "" is a Twilio message with the fake's sid
  std::string retry_after;  // sent as Retry-After when not empty
  bool stall = false;       // answer only once the fake is destroyed (or after 60 s)
};

// One request as a fake saw it.
struct SeenRequest {
  SteadyTime at;
  std::string method;
  std::string path;
  httplib::Headers headers;
  std::string body;
  httplib::Params form;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string field(const std::string& name) const {
    auto it = form.find(name);
    return it == form.end() ? "" : it->second;
  }
  std::size_t field_count(const std::string& name) const { return form.count(name); }
};

// The part shared by the fakes: records every request and answers with the next scripted
// reply (the last one repeats), releasing stalled handlers on destruction.
class ScriptedServer {
 public:
  ScriptedServer(std::unique_ptr<httplib::Server> server, std::vector<FakeReply> script, int port)
      : server_(std::move(server)), script_(script.begin(), script.end()) {
    if (script_.empty()) script_.push_back(FakeReply{});
    server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Handle(req, res);
    });
    running_ = std::make_unique<RunningServer>(*server_, port);
  }
  virtual ~ScriptedServer() { Shutdown(); }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return running_ ? running_->port() : 0; }

  std::vector<SeenRequest> seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_.size();
  }
  // The most requests that were in a handler at the same time.
  int max_concurrent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_concurrent_;
  }
  // Waits until the fake has seen `n` requests; false at the deadline.
  bool WaitForCount(std::size_t n, Millis timeout = Millis(10'000)) {
    return PollUntil([&] { return count() >= n; }, timeout);
  }

  // Lets stalled handlers answer, then stops the server.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
    running_.reset();
  }

 protected:
  virtual std::string DefaultBody() const { return "{}"; }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mutex_);
    seen_.push_back(SeenRequest{std::chrono::steady_clock::now(), req.method, req.path,
                                req.headers, req.body, req.params});
    FakeReply reply = script_.front();
    if (script_.size() > 1) script_.pop_front();
    ++concurrent_;
    max_concurrent_ = std::max(max_concurrent_, concurrent_);
    if (reply.stall) released_cv_.wait_for(lock, std::chrono::seconds(60), [this] { return released_; });
    --concurrent_;
    res.status = reply.status;
    if (!reply.retry_after.empty()) res.set_header("Retry-After", reply.retry_after);
    res.set_content(reply.body.empty() ? DefaultBody() : reply.body, "application/json");
  }

  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<RunningServer> running_;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;           // guarded by mutex_
  std::deque<FakeReply> script_;    // guarded by mutex_
  std::vector<SeenRequest> seen_;   // guarded by mutex_
  int concurrent_ = 0;              // guarded by mutex_
  int max_concurrent_ = 0;          // guarded by mutex_
};

inline constexpr const char* kFakeTwilioSid = "SM00aa11bb22cc33dd44ee55ff66778899";

inline std::unique_ptr<httplib::Server> MakeServer(const TestPki* pki) {
  if (pki == nullptr) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>(pki->cert_file.c_str(), pki->key_file.c_str());
}

// Twilio's Messages endpoint: HTTPS with `pki`'s server certificate (HTTP without one).
class FakeTwilio final : public ScriptedServer {
 public:
  explicit FakeTwilio(const TestPki* pki, std::vector<FakeReply> script = {})
      : ScriptedServer(MakeServer(pki), std::move(script), 0), tls_(pki != nullptr) {}
  ~FakeTwilio() override { Shutdown(); }

  std::string base_url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
  }

 protected:
  std::string DefaultBody() const override {
    return std::string(R"({"sid": ")") + kFakeTwilioSid +
           R"(", "status": "queued", "to": "+12065550100"})";
  }

 private:
  bool tls_;
};

// A Twilio error answer in Twilio's shape.
inline FakeReply TwilioErrorReply(int status, int code, const std::string& message) {
  FakeReply reply;
  reply.status = status;
  reply.body = nlohmann::json{{"code", code},
                              {"message", message},
                              {"more_info", "https://www.twilio.com/docs/errors/" +
                                                std::to_string(code)},
                              {"status", status}}
                   .dump();
  return reply;
}

// A webhook receiver over plain HTTP; answers {"id": "gw-N"} unless scripted otherwise.
class FakeWebhook final : public ScriptedServer {
 public:
  explicit FakeWebhook(std::vector<FakeReply> script = {}, int port = 0)
      : ScriptedServer(std::make_unique<httplib::Server>(), std::move(script), port) {}
  ~FakeWebhook() override { Shutdown(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/sms/send"; }

 protected:
  std::string DefaultBody() const override { return R"({"id": "gw-4711"})"; }
};

// A listener on 127.0.0.1 that accepts each connection and closes it without answering:
// at once, or with `read_request` only once the whole request (head and Content-Length
// body) has arrived.
class ClosingServer {
 public:
  explicit ClosingServer(bool read_request = false) : read_request_(read_request) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t size = sizeof address;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~ClosingServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listener_);
  }
  ClosingServer(const ClosingServer&) = delete;
  ClosingServer& operator=(const ClosingServer&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // The requests read in full (with `read_request`).
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void Run() {
    while (true) {
      int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection < 0) return;
      accepted_.fetch_add(1);
      if (read_request_) ReadRequest(connection);
      ::close(connection);
    }
  }

  void ReadRequest(int connection) {
    timeval limit{5, 0};
    ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string request;
    char buffer[4096];
    while (!Complete(request)) {
      ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      request.append(buffer, static_cast<std::size_t>(n));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(request);
  }

  static bool Complete(const std::string& request) {
    std::size_t head_end = request.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    std::smatch match;
    static const std::regex kLength("\r\nContent-Length: *([0-9]+)\r\n", std::regex::icase);
    std::string head = request.substr(0, head_end + 2);
    std::size_t length = std::regex_search(head, match, kLength) ? std::stoul(match[1].str()) : 0;
    return request.size() >= head_end + 4 + length;
  }

  bool read_request_;
  std::mutex mutex_;
  std::vector<std::string> requests_;  // guarded by mutex_
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A port of 127.0.0.1 that is bound but not listening: connections to it are refused, and
// nothing else takes it until Release().
class ReservedPort {
 public:
  ReservedPort() {
    socket_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(socket_ >= 0);
    int yes = 1;
    ::setsockopt(socket_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t size = sizeof address;
    REQUIRE(::getsockname(socket_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~ReservedPort() { Release(); }
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;

  int port() const { return port_; }
  void Release() {
    if (socket_ >= 0) ::close(socket_);
    socket_ = -1;
  }

 private:
  int socket_ = -1;
  int port_ = 0;
};

// "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body), computed independently of the
// product's WebhookSignature (the multi-part API takes a key of any length).
inline std::string ExpectedSignature(const std::string& secret, const std::string& timestamp,
                                     const std::string& body) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
  std::string text = timestamp + "." + body;
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(text.data()),
                                text.size());
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return std::string("v1=") + hex;
}

inline std::string Base64(const std::string& text) {
  std::string out(sodium_base64_ENCODED_LEN(text.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(&out[0], out.size(), reinterpret_cast<const unsigned char*>(text.data()),
                    text.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

// `otp-sidecar serve --listen 127.0.0.1:0 --database DIR/otp.db --config DIR/config.toml`
// in its own temporary folder, with `env` ("NAME=value") added to the test's environment.
// Unlike SidecarProcess it passes no --sms-provider flag, so the configuration's provider
// list is what the sidecar uses. Killed in the destructor (and by the kernel if the test
// binary dies).
class ServeProcess {
 public:
  explicit ServeProcess(std::string config_toml, std::vector<std::string> env = {})
      : config_(std::move(config_toml)), env_(std::move(env)) {
    if (dir_.path().empty()) throw std::runtime_error("cannot make a temporary folder");
    WriteFileBytes(config_path(), config_);
    Start();
  }
  ~ServeProcess() { Kill(); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  const TempDir& dir() const { return dir_; }
  std::string config_path() const { return dir_.File("config.toml"); }
  std::string database_path() const { return dir_.File("otp.db"); }
  std::string stderr_text() const { return ReadFileBytes(dir_.File("stderr.log")); }
  std::string stdout_text() const { return ReadFileBytes(dir_.File("stdout.log")); }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(std::chrono::seconds(2));
    c.set_read_timeout(std::chrono::seconds(10));
    c.set_write_timeout(std::chrono::seconds(10));
    return c;
  }

  // SIGTERM, then waits up to 5 s; the exit status (-1 when it had to be killed).
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int code = -1;
    bool exited = PollUntil([&] { return Reaped(&code); }, Millis(5000), Millis(5));
    if (!exited) {
      Kill();
      return -1;
    }
    return code;
  }

 private:
  bool Reaped(int* code) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r != pid_) return false;
    pid_ = -1;
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  void Start() {
    std::vector<std::string> args = {OTP_SIDECAR_BINARY, "serve",      "--listen",
                                     "127.0.0.1:0",      "--database", database_path(),
                                     "--config",         config_path()};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    env.insert(env.end(), env_.begin(), env_.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    std::string err_path = dir_.File("stderr.log");
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = ::open(dir_.File("stdout.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    REQUIRE(in >= 0);
    REQUIRE(out >= 0);
    REQUIRE(err >= 0);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);
      if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      if (::chdir(dir_.path().c_str()) != 0) ::_exit(127);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(in);
    ::close(out);
    ::close(err);
    REQUIRE(pid > 0);
    pid_ = pid;

    static const std::regex kListening(R"(msg=listening address=127\.0\.0\.1:([0-9]+))");
    int exit_code = 0;
    bool exited = false;
    bool up = PollUntil(
        [&] {
          std::smatch match;
          std::string text = stderr_text();
          if (std::regex_search(text, match, kListening)) {
            port_ = std::stoi(match[1].str());
            return true;
          }
          exited = Reaped(&exit_code);
          return exited;
        },
        Millis(10'000));
    INFO("stderr: ", stderr_text());
    REQUIRE_MESSAGE(!exited, "otp-sidecar exited with status " << exit_code);
    REQUIRE(up);
    httplib::Client health = client();
    REQUIRE(PollUntil(
        [&] {
          httplib::Result res = health.Get("/healthz");
          return res && res->status == 200;
        },
        Millis(10'000)));
  }

  std::string config_;
  std::vector<std::string> env_;
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace sidecar::testing
