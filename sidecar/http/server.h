#pragma once

// The HTTP server: cpp-httplib configured for a sidecar on loopback.
//
// Debian's cpp-httplib needs care: TCP_NODELAY is turned on (otherwise each answer waits
// ~40 ms for Nagle), the default socket options are replaced with SO_REUSEADDR alone
// (the defaults add SO_REUSEPORT, which would let a second sidecar share the port
// silently), bodies are capped at 16 KiB, and the thread pool grows on demand because each
// keep-alive connection holds a thread for as long as it stays open.

#include <memory>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "http/api.h"
#include "metrics/metrics.h"

namespace httplib {
class Server;
}

namespace sidecar {

struct ServerSettings {
  ListenAddress listen;
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
  // Each request answered by the API is observed in `metrics` by route and method.
  HttpServer(Api& api, ServerSettings settings, Metrics& metrics = NoMetrics());
  ~HttpServer();

  // Binds the listening socket. Errors ("listen_failed") when the address is in use or
  // cannot be bound; returns the bound port (useful with port 0).
  Result<int> Bind();

  // Serves until Stop() is called. REQUIRES: Bind() succeeded.
  void Serve();

  // Stops accepting and makes Serve() return once in-flight requests finish. Thread-safe.
  void Stop();

 private:
  void Configure();

  Api& api_;
  ServerSettings settings_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;  // recorded by the socket-options hook; see Bind()
};

}  // namespace sidecar
