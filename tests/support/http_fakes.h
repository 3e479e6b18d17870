#pragma once

// Servers for the tests of the providers that speak HTTP, shared by the unit and the
// integration tests: a throw-away PKI, a running httplib server, a recording HTTP(S) server,
// a listener that closes every connection and a port that refuses them. All of them live on
// 127.0.0.1 and only as long as the test that made them.

#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/fakes.h"

namespace sidecar::testing {

// OpenSSL writes to a connection the peer has closed without MSG_NOSIGNAL; the daemon
// ignores SIGPIPE for the same reason. Set when the test binary starts.
[[maybe_unused]] inline const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

namespace http_fakes_detail {

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

// Waits (polling every millisecond, at most ten seconds) until `server` is running.
inline bool WaitUntilRunning(const httplib::Server& server) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace http_fakes_detail

// A throw-away certificate authority and a server certificate for `ip` signed by it, made
// with the openssl command line in `dir`. The files are named after `name`.
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
    http_fakes_detail::WriteText(
        extensions,
        "subjectAltName=IP:" + ip + "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");

    const std::string new_key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    Openssl("req -x509" + new_key + " -days 2 -subj '/CN=otp-sidecar test CA " + name + "'" +
            " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign" +
            " -keyout " + Quoted(ca_key) + " -out " + Quoted(ca_file));
    Openssl("req" + new_key + " -subj /CN=" + ip + " -keyout " + Quoted(key_file) + " -out " +
            Quoted(request));
    Openssl("x509 -req -days 2 -set_serial 2 -in " + Quoted(request) + " -CA " + Quoted(ca_file) +
            " -CAkey " + Quoted(ca_key) + " -extfile " + Quoted(extensions) + " -out " +
            Quoted(cert_file));
  }

  std::string ca_file;
  std::string cert_file;
  std::string key_file;

 private:
  static std::string Quoted(const std::string& path) { return "'" + path + "'"; }

  void Openssl(const std::string& arguments) const {
    int rc = std::system(("openssl " + arguments + " >" + Quoted(log_file_) + " 2>&1").c_str());
    REQUIRE_MESSAGE(rc == 0,
                    "openssl " << arguments << ": " << http_fakes_detail::ReadText(log_file_));
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
    port_ = Bind(port);
    REQUIRE(port_ > 0);

    thread_ = std::thread([this] { server_.listen_after_bind(); });
    bool running = http_fakes_detail::WaitUntilRunning(server_);
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
  int Bind(int port) {
    if (port == 0) return server_.bind_to_any_port("127.0.0.1");
    return server_.bind_to_port("127.0.0.1", port) ? port : -1;
  }

  httplib::Server& server_;
  int port_ = 0;
  std::thread thread_;
};

// An HTTP server on 127.0.0.1, or HTTPS with the server certificate of `pki`, that keeps what
// `record` makes of each POST and answers every one with `reply`. `Reply` has the fields
// status, body, retry_after (sent as Retry-After when not empty) and stall (answer only once
// the server is being destroyed).
template <typename Reply, typename Seen>
class RecordingServer {
 public:
  using Recorder = std::function<Seen(const httplib::Request&)>;

  RecordingServer(Reply reply, Recorder record, const TestPki* pki)
      : reply_(std::move(reply)), record_(std::move(record)) {
    if (pki != nullptr) {
      server_ = std::make_unique<httplib::SSLServer>(pki->cert_file.c_str(), pki->key_file.c_str());
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
    scheme_ = pki != nullptr ? "https" : "http";
    server_->Post(
        ".*", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    running_ = std::make_unique<RunningServer>(*server_);
  }
  ~RecordingServer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
    running_.reset();
  }
  RecordingServer(const RecordingServer&) = delete;
  RecordingServer& operator=(const RecordingServer&) = delete;

  // "http://127.0.0.1:<port>", or "https://..." with a PKI.
  std::string origin() const { return scheme_ + "://127.0.0.1:" + std::to_string(port()); }
  int port() const { return running_->port(); }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    Seen seen = record_(req);

    std::unique_lock<std::mutex> lock(mutex_);
    seen_.push_back(std::move(seen));
    if (reply_.stall) {
      released_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return released_; });
    }

    res.status = reply_.status;
    if (!reply_.retry_after.empty()) res.set_header("Retry-After", reply_.retry_after);
    res.set_content(reply_.body, "application/json");
  }

  Reply reply_;
  Recorder record_;
  std::string scheme_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<RunningServer> running_;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;   // guarded by mutex_
  std::vector<Seen> seen_;  // guarded by mutex_
};

// A TCP socket bound to a free port of 127.0.0.1, not listening yet; sets `port` to it.
inline int BindLoopbackSocket(int& port) {
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);

  socklen_t size = sizeof address;
  REQUIRE(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  port = ntohs(address.sin_port);
  return sock;
}

// A listener on 127.0.0.1 that accepts each connection and closes it without answering: at
// once, or with `read_request` only once the whole request (head and Content-Length body)
// has arrived.
class SilentServer {
 public:
  explicit SilentServer(bool read_request = false) : read_request_(read_request) {
    listener_ = BindLoopbackSocket(port_);
    REQUIRE(::listen(listener_, 16) == 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~SilentServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listener_);
  }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // The requests read in full (with `read_request`), oldest first.
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  // The last request read in full; "" when there is none.
  std::string last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.empty() ? "" : requests_.back();
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
      if (n <= 0) break;  // keeps what arrived, for the test's message
      request.append(buffer, static_cast<std::size_t>(n));
    }

    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(request);
  }

  static bool Complete(const std::string& request) {
    std::size_t head_end = request.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;

    static const std::regex kLength("\r\nContent-Length: *([0-9]+)\r\n", std::regex::icase);
    std::string head = request.substr(0, head_end + 2);
    std::smatch match;
    std::size_t length = std::regex_search(head, match, kLength) ? std::stoul(match[1].str()) : 0;
    return request.size() >= head_end + 4 + length;
  }

  bool read_request_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;  // guarded by mutex_
};

// A port of 127.0.0.1 that is bound but not listening: connections to it are refused, and
// nothing else can take it until Release() (or the end of the test).
class RefusingPort {
 public:
  RefusingPort() { socket_ = BindLoopbackSocket(port_); }
  ~RefusingPort() { Release(); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  int port() const { return port_; }
  // Frees the port, so that a test can start a server on it.
  void Release() {
    if (socket_ >= 0) ::close(socket_);
    socket_ = -1;
  }

 private:
  int socket_ = -1;
  int port_ = 0;
};

}  // namespace sidecar::testing
