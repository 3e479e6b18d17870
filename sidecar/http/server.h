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

class HttpServer {
 public:
  HttpServer(Api& api, ServerSettings settings);
  ~HttpServer();

  // Binds the listening socket. Errors ("listen_failed") when the address is in use or
  // cannot be bound; returns the bound port (useful with port 0).
  Result<int> Bind();

  // Serves until Stop() is called. REQUIRES: Bind() succeeded.
  void Serve();

  // Stops accepting and makes Serve() return once in-flight requests finish. Called before
  // Serve() has begun, it waits up to a second for it. Thread-safe.
  void Stop();

 private:
  void Configure();

  Api& api_;
  ServerSettings settings_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;  // recorded by the socket-options hook; see Bind()
};

}  // namespace sidecar
