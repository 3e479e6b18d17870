#pragma once

// The HTTP API as plain request-in, response-out, independent of the server library, so
// that routing and answers can be tested without sockets.
//
//   POST   /v1/challenges              create          202
//   GET    /v1/challenges/{id}         read            200
//   DELETE /v1/challenges/{id}         cancel          204
//   POST   /v1/challenges/{id}/verify  verify by id    200
//   POST   /v1/challenges/{id}/resend  resend          202
//   POST   /v1/verify                  verify by user  200
//   GET    /healthz                    liveness        200
//   GET    /readyz                     readiness       200, or 503 with the reason
//   GET    /metrics                    Prometheus text 200
//
// Unknown paths are 404 "not_found"; known paths with another method are 405 with Allow.
// Refusals by a limit are 429 with Retry-After (seconds). A verify answered "locked"
// because the user's failure budget is spent is a 200 that also carries Retry-After.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "challenges/challenge_service.h"
#include "common/clock.h"
#include "metrics/metrics.h"
#include "phone/phone_validator.h"

namespace sidecar {

struct HttpRequest {
  std::string method;
  std::string path;          // without the query string
  std::string content_type;  // the header as sent, possibly empty
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // empty when there is no body
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Whether the sidecar can do its work now: ok, or an error whose code says why
// ("database_unavailable", "delivery_worker_stalled"). Called on every GET /readyz.
using ReadinessCheck = std::function<Status()>;

class Api {
 public:
  // Without `readiness`, GET /readyz answers as GET /healthz does. `metrics` is what
  // GET /metrics shows (an empty page by default).
  Api(ChallengeService& challenges, const PhoneValidator& phones, const Clock& clock,
      ReadinessCheck readiness = nullptr, MetricsPage& metrics = NoMetrics());

  // Never throws; every failure is a problem response.
  HttpResponse Handle(const HttpRequest& request);

 private:
  HttpResponse Route(const HttpRequest& request);
  HttpResponse Create(const HttpRequest& request);
  HttpResponse Read(const std::string& id);
  HttpResponse Cancel(const HttpRequest& request, const std::string& id);
  HttpResponse Verify(const HttpRequest& request, const std::string* id);
  HttpResponse Resend(const HttpRequest& request, const std::string& id);
  HttpResponse Ready(const HttpRequest& request);

  ChallengeService& challenges_;
  const PhoneValidator& phones_;
  const Clock& clock_;
  ReadinessCheck readiness_;
  MetricsPage& metrics_;
};

// The route pattern a path is served by ("/v1/challenges/{id}/verify"), or "other" for a
// path no endpoint serves. Metrics are labelled with it rather than the raw path, so ids
// never multiply the series.
std::string RouteOf(const std::string& path);

// Every (route pattern, method) pair the API answers other than with 405.
std::vector<std::pair<std::string, std::string>> ApiRoutes();

// A problem+json response for `error`; exposed for the server's own error paths.
HttpResponse ProblemResponse(const Error& error, const std::string& instance);

}  // namespace sidecar
