#include "http/server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "codes/random.h"
#include "common/log.h"
#include "http/requests.h"

namespace sidecar {
namespace {

// A pool that starts with `min` threads and adds one whenever a task arrives and no thread
// is idle, up to `max`. Threads are kept once made: a burst of keep-alive connections is
// usually followed by another.
class ElasticThreadPool final : public httplib::TaskQueue {
 public:
  ElasticThreadPool(int min_threads, int max_threads) : max_(max_threads) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int i = 0; i < min_threads; ++i)
      SpawnLocked();
  }

  ~ElasticThreadPool() override { shutdown(); }

  void enqueue(std::function<void()> task) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
      if (tasks_.size() > idle_ && static_cast<int>(threads_.size()) < max_) SpawnLocked();
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& thread : threads_)
      thread.join();
  }

 private:
  void SpawnLocked() {
    threads_.emplace_back([this] { Work(); });
  }

  void Work() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ++idle_;
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        --idle_;
        if (tasks_.empty()) return;  // stopping, and nothing left to finish
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  const int max_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

std::string NewRequestId() {
  SodiumRandom random;
  unsigned char bytes[8];
  random.Fill(bytes, sizeof bytes);
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 0xf];
  }
  return id;
}

// A caller's X-Request-Id is kept when it is short and plain, so logs on both sides match.
std::string RequestIdFor(const httplib::Request& req) {
  std::string given = req.get_header_value("X-Request-Id");
  bool usable = !given.empty() && given.size() <= 64;
  for (char c : given) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
    usable = usable && plain;
  }
  return usable ? given : NewRequestId();
}

void Apply(const HttpResponse& from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [name, value] : from.headers)
    to.set_header(name, value);
  if (!from.content_type.empty()) to.set_content(from.body, from.content_type.c_str());
}

std::string ErrorCodeForStatus(int status) {
  switch (status) {
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    default:
      return status >= 500 ? "internal_error" : "bad_request";
  }
}

}  // namespace

HttpServer::HttpServer(Api& api, ServerSettings settings)
    : api_(api), settings_(std::move(settings)), server_(std::make_unique<httplib::Server>()) {
  Configure();
}

HttpServer::~HttpServer() = default;

void HttpServer::Configure() {
  httplib::Server& server = *server_;
  int min_threads = settings_.min_threads;
  int max_threads = settings_.max_threads;
  server.new_task_queue = [min_threads, max_threads] {
    return new ElasticThreadPool(min_threads, max_threads);
  };

  server.set_tcp_nodelay(true);
  server.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket_ = sock;  // only the listening socket comes here, before bind
  });
  server.set_payload_max_length(kMaxBodyBytes);
  server.set_keep_alive_max_count(10'000);
  server.set_keep_alive_timeout(
      std::max<time_t>(1, static_cast<time_t>(settings_.keep_alive_timeout_ms / 1000)));
  auto timeout = std::chrono::milliseconds(settings_.request_timeout_ms);
  server.set_read_timeout(timeout);
  server.set_write_timeout(timeout);

  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    auto started = std::chrono::steady_clock::now();
    std::string request_id = RequestIdFor(req);

    HttpRequest request{req.method, req.path, req.get_header_value("Content-Type"), req.body};
    Apply(api_.Handle(request), res);
    res.set_header("X-Request-Id", request_id);

    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.3f", ms);
    Log(LogLevel::kInfo, "http", "request",
        {{"request_id", request_id},
         {"method", req.method},
         {"path", req.path.substr(0, 200)},
         {"status", std::to_string(res.status)},
         {"duration_ms", duration},
         {"remote", req.remote_addr}});
  };
  for (const char* pattern : {".*"}) {
    server.Get(pattern, handler);
    server.Post(pattern, handler);
    server.Put(pattern, handler);
    server.Patch(pattern, handler);
    server.Delete(pattern, handler);
    server.Options(pattern, handler);
  }

  // Answers the library produced itself (oversized body, unparsable request line) become
  // problems too, so every error a caller sees has the same shape.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                   httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string code = ErrorCodeForStatus(res.status);
    HttpResponse problem = ProblemResponse(MakeError(code, "the request was refused"), req.path);
    res.status = problem.status == 500 && res.status < 500 ? res.status : problem.status;
    res.set_content(problem.body, problem.content_type.c_str());
    std::string request_id = RequestIdFor(req);
    res.set_header("X-Request-Id", request_id);
    Log(LogLevel::kInfo, "http", "request refused",
        {{"request_id", request_id},
         {"method", req.method},
         {"path", req.path.substr(0, 200)},
         {"status", std::to_string(res.status)},
         {"code", code},
         {"remote", req.remote_addr}});
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                  std::exception_ptr) {
    HttpResponse problem = ProblemResponse(MakeError("internal_error", "internal error"), req.path);
    Apply(problem, res);
    Log(LogLevel::kError, "http", "handler threw", {{"path", req.path.substr(0, 200)}});
  });
}

Result<int> HttpServer::Bind() {
  const ListenAddress& address = settings_.listen;
  errno = 0;
  int port = address.port;
  bool bound = false;
  if (port == 0) {
    port = server_->bind_to_any_port(address.host);
    bound = port > 0;
  } else {
    bound = server_->bind_to_port(address.host, port);
  }
  if (!bound) {
    int saved = errno;
    std::string why = saved == EADDRINUSE ? "the address is already in use (is another "
                                            "otp-sidecar running?)"
                      : saved != 0        ? std::strerror(saved)
                                          : "it cannot be bound";
    return MakeError("listen_failed", "cannot listen on " + address.ToString() + ": " + why);
  }
  // Debian's cpp-httplib listens with a backlog of 5: a burst of new connections overflows
  // it and each dropped SYN is retried only after a second or more. Listening again on the
  // bound socket raises the backlog (capped by net.core.somaxconn).
  if (listen_socket_ >= 0) ::listen(listen_socket_, SOMAXCONN);
  return port;
}

void HttpServer::Serve() {
  server_->listen_after_bind();
}

void HttpServer::Stop() {
  // cpp-httplib's stop() does nothing before listening has begun, so a SIGTERM that comes
  // just before Serve() would be lost: give Serve() a moment to start first.
  for (int waited_ms = 0; waited_ms < 1000 && !server_->is_running(); ++waited_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
}

}  // namespace sidecar
