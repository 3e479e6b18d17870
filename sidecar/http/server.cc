#include "http/server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
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

// How often the accept loop of a socket systemd passed in looks whether it should stop.
constexpr long kSharedSocketPollMicros = 100'000;

// cpp-httplib 0.11.4 can only accept on a socket it bound itself; this hands it one made
// elsewhere (bound by listeners.cc, or passed in by systemd) through its protected member.
class AdoptingServer final : public httplib::Server {
 public:
  AdoptingServer(int fd, bool shared) : shared_(shared) {
    svr_sock_ = fd;
    if (shared_) set_idle_interval(0, kSharedSocketPollMicros);
  }

  // A socket never served is still ours to close.
  ~AdoptingServer() override {
    int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
    AfterServe();
  }

  // The library's stop() shuts the socket down to wake accept(). A socket systemd passed in
  // is shared with systemd: shutting it down would end it for systemd and for the next
  // start too. Such a socket is only let go of; its accept loop polls and sees it gone.
  void StopAccepting() {
    if (!shared_) {
      stop();
      return;
    }
    int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) released_ = fd;
  }

  // Once the accept loop has returned, the library has closed its socket (in stop(), or on
  // an accept error without forgetting it): it must not be closed again. A let-go shared
  // socket is closed now that nothing polls it.
  void AfterServe() {
    svr_sock_ = INVALID_SOCKET;
    int fd = released_.exchange(-1);
    if (fd >= 0) ::close(fd);
  }

 private:
  const bool shared_;
  std::atomic<int> released_{-1};
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

std::string RequestIdFor(const httplib::Request& req) {
  return RequestIdFrom(req.get_header_value("X-Request-Id"));
}

}  // namespace

std::string RequestIdFrom(const std::string& given) {
  bool usable = !given.empty() && given.size() <= 64;
  for (char c : given) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
    usable = usable && plain;
  }
  return usable ? given : NewRequestId();
}

std::string MethodLabel(const std::string& method) {
  for (const char* known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    if (method == known) return method;
  }
  return "other";
}

HttpServer::HttpServer(Api& api, const CallerAuth& auth, ServerSettings settings,
                       const Listener& listener, Metrics& metrics)
    : api_(api),
      auth_(auth),
      settings_(std::move(settings)),
      address_(listener.address),
      metrics_(metrics),
      server_(std::make_unique<AdoptingServer>(listener.fd, listener.activated)) {
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

  server.set_payload_max_length(kMaxBodyBytes);
  server.set_keep_alive_max_count(10'000);
  server.set_keep_alive_timeout(
      std::max<time_t>(1, static_cast<time_t>(settings_.keep_alive_timeout_ms / 1000)));
  auto timeout = std::chrono::milliseconds(settings_.request_timeout_ms);
  server.set_read_timeout(timeout);
  server.set_write_timeout(timeout);

  // A Unix socket's peer has no address worth logging.
  bool unix_socket = address_.is_unix();
  auto remote_of = [unix_socket](const httplib::Request& req) {
    return unix_socket ? std::string("unix") : req.remote_addr;
  };

  auto handler = [this, remote_of](const httplib::Request& req, httplib::Response& res) {
    auto started = std::chrono::steady_clock::now();
    std::string request_id = RequestIdFor(req);
    ScopedRequestId logged_as(request_id);
    // Set first, so that the exception handler finds it should anything below throw.
    res.set_header("X-Request-Id", request_id);

    // The caller is checked before the Api parses anything of the request.
    std::optional<HttpResponse> refused =
        auth_.Check(req.path, req.get_header_value("Authorization"));
    HttpRequest request{req.method, req.path, req.get_header_value("Content-Type"), req.body};
    Apply(refused ? *refused : api_.Handle(request), res);

    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics_.ObserveRequest(RouteOf(req.path), MethodLabel(req.method), seconds);
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.3f", seconds * 1000);
    Log(LogLevel::kInfo, "http", "request",
        {{"method", req.method},
         {"path", req.path.substr(0, 200)},
         {"status", std::to_string(res.status)},
         {"duration_ms", duration},
         {"remote", remote_of(req)}});
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
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [remote_of](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string code = ErrorCodeForStatus(res.status);
        HttpResponse problem =
            ProblemResponse(MakeError(code, "the request was refused"), req.path);
        res.status = problem.status == 500 && res.status < 500 ? res.status : problem.status;
        res.set_content(problem.body, problem.content_type.c_str());
        std::string request_id = RequestIdFor(req);
        ScopedRequestId logged_as(request_id);
        res.set_header("X-Request-Id", request_id);
        Log(LogLevel::kInfo, "http", "request refused",
            {{"method", req.method},
             {"path", req.path.substr(0, 200)},
             {"status", std::to_string(res.status)},
             {"code", code},
             {"remote", remote_of(req)}});
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                  std::exception_ptr) {
    std::string request_id = res.get_header_value("X-Request-Id");
    if (request_id.empty()) {
      request_id = RequestIdFor(req);
      res.set_header("X-Request-Id", request_id);
    }
    ScopedRequestId logged_as(request_id);
    HttpResponse problem = ProblemResponse(MakeError("internal_error", "internal error"), req.path);
    Apply(problem, res);
    Log(LogLevel::kError, "http", "handler threw", {{"path", req.path.substr(0, 200)}});
  });
}

bool HttpServer::Serve() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_requested_) return true;
    serving_ = true;
  }
  bool served = server_->listen_after_bind();
  static_cast<AdoptingServer&>(*server_).AfterServe();

  std::lock_guard<std::mutex> lock(mutex_);
  serving_ = false;
  return served || stop_requested_;
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_requested_ = true;
    if (!serving_) return;
  }
  // The library ignores stop() until its accept loop has marked itself running, which
  // Serve() may not have reached yet.
  while (!server_->is_running()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!serving_) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  static_cast<AdoptingServer&>(*server_).StopAccepting();
}

}  // namespace sidecar
