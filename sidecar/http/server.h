#pragma once

// The HTTP server: cpp-httplib configured for a sidecar, serving one listening socket
// (see listeners.h; one HttpServer per socket, all sharing the Api).
//
// Debian's cpp-httplib needs care: the sockets are bound by listeners.cc (TCP_NODELAY on
// TCP, SO_REUSEADDR without SO_REUSEPORT, a full backlog), bodies are capped at 16 KiB, and
// the thread pool grows on demand because each keep-alive connection holds a thread for as
// long as it stays open. Callers are authenticated (see auth.h) before the Api sees the
// request.

#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "http/api.h"
#include "http/auth.h"
#include "http/listeners.h"
#include "metrics/metrics.h"

namespace httplib {
class Server;
}

namespace sidecar {

struct ServerSettings {
  int min_threads = 8;
  int max_threads = 512;
  std::int64_t keep_alive_timeout_ms = 5000;
  std::int64_t request_timeout_ms = 5000;
};

// The request id for a request whose X-Request-Id header is `given` ("" when absent): the
// caller's own when it is 1..64 characters of letters, digits, '-', '_' and '.', so logs on
// both sides match; otherwise 16 fresh random hex digits.
std::string RequestIdFrom(const std::string& given);

// The method as a metrics label: the method when HTTP defines it, else "other".
std::string MethodLabel(const std::string& method);

class HttpServer {
 public:
  // Serves `listener`, whose socket it owns from now on (see ListenerSet::TakeFd); `api`
  // and `auth` must outlive the server. A socket passed in by systemd is never shut down,
  // only closed, so that systemd keeps it for the next start. Each request answered by the
  // API is observed in `metrics` by route and method.
  HttpServer(Api& api, const CallerAuth& auth, ServerSettings settings, const Listener& listener,
             Metrics& metrics = NoMetrics());
  ~HttpServer();

  // Serves until Stop() is called; returns false when accepting failed for another reason.
  // Returns at once when Stop() came first.
  bool Serve();

  const ListenAddress& address() const { return address_; }

  // Stops accepting and makes Serve() return once in-flight requests finish. Thread-safe;
  // may come before, during or after Serve().
  void Stop();

 private:
  void Configure();

  Api& api_;
  const CallerAuth& auth_;
  ServerSettings settings_;
  ListenAddress address_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::mutex mutex_;             // guards the two flags below
  bool stop_requested_ = false;  // Stop() was called
  bool serving_ = false;         // Serve() is in the library's accept loop (or about to be)
};

}  // namespace sidecar
