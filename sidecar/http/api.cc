#include "http/api.h"

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/phone.h"
#include "common/time_format.h"
#include "http/problem.h"
#include "http/requests.h"

namespace sidecar {
namespace {

using nlohmann::json;

constexpr const char* kHealthz = "/healthz";
constexpr const char* kReadyz = "/readyz";
constexpr const char* kMetrics = "/metrics";
constexpr const char* kChallenges = "/v1/challenges";
constexpr const char* kVerify = "/v1/verify";
constexpr const char* kChallenge = "/v1/challenges/{id}";
constexpr const char* kChallengeVerify = "/v1/challenges/{id}/verify";
constexpr const char* kChallengeResend = "/v1/challenges/{id}/resend";
constexpr const char* kOtherRoute = "other";
// The version of the text exposition format Prometheus scrapes.
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

HttpResponse JsonResponse(int status, const json& body) {
  return HttpResponse{
      status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

HttpResponse MethodNotAllowed(const std::string& path, const std::string& allow) {
  HttpResponse response =
      ProblemResponse(MakeError("method_not_allowed", "this endpoint takes " + allow), path);
  response.headers.emplace_back("Allow", allow);
  return response;
}

// Accepts a missing Content-Type (some callers omit it) and application/json with any
// parameters; anything else is refused before the body is read.
bool AcceptableContentType(const std::string& header) {
  if (header.empty()) return true;
  std::string type = header.substr(0, header.find(';'));
  while (!type.empty() && type.back() == ' ')
    type.pop_back();
  for (char& c : type)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type == "application/json";
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

void LogStorageError(const Error& error) {
  if (StatusForErrorCode(error.code) >= 500) {
    Log(LogLevel::kError, "http", "request failed",
        {{"code", error.code}, {"error", error.message}});
  }
}

json DeliveryJson(const std::optional<Delivery>& delivery) {
  if (!delivery) return json{{"state", "failed"}, {"error", "no delivery"}};
  json out = {{"state", std::string(ToString(delivery->state))},
              {"provider", delivery->provider},
              {"attempts", delivery->attempts}};
  out["provider_message_id"] =
      delivery->provider_message_id.empty() ? json(nullptr) : json(delivery->provider_message_id);
  out["error"] = delivery->error.empty() ? json(nullptr) : json(delivery->error);
  out["sent_at"] =
      delivery->sent_at ? json(FormatRfc3339Millis(*delivery->sent_at)) : json(nullptr);
  return out;
}

}  // namespace

std::string RouteOf(const std::string& path) {
  if (path == kHealthz || path == kReadyz || path == kMetrics || path == kChallenges ||
      path == kVerify) {
    return path;
  }

  std::vector<std::string> parts = SplitPath(path);
  bool challenge =
      parts.size() >= 3 && parts[0] == "v1" && parts[1] == "challenges" && !parts[2].empty();
  if (challenge && parts.size() == 3) return kChallenge;
  if (challenge && parts.size() == 4 && parts[3] == "verify") return kChallengeVerify;
  if (challenge && parts.size() == 4 && parts[3] == "resend") return kChallengeResend;
  return kOtherRoute;
}

std::vector<std::pair<std::string, std::string>> ApiRoutes() {
  return {{kReadyz, "GET"},          {kReadyz, "HEAD"},      {kHealthz, "GET"},
          {kHealthz, "HEAD"},        {kMetrics, "GET"},      {kMetrics, "HEAD"},
          {kChallenges, "POST"},     {kVerify, "POST"},      {kChallenge, "GET"},
          {kChallenge, "HEAD"},      {kChallenge, "DELETE"}, {kChallengeVerify, "POST"},
          {kChallengeResend, "POST"}};
}

HttpResponse ProblemResponse(const Error& error, const std::string& instance) {
  Problem problem = MakeProblem(error, instance);
  HttpResponse response{problem.status, "application/problem+json", problem.body, {}};
  if (error.retry_after_ms > 0) {
    response.headers.emplace_back("Retry-After",
                                  std::to_string(RetryAfterSeconds(error.retry_after_ms)));
  } else if (problem.status == 503) {
    // The database was busy past its timeout: worth another try soon, not a hammering.
    response.headers.emplace_back("Retry-After", "1");
  }
  return response;
}

Api::Api(ChallengeService& challenges, const PhoneValidator& phones, const Clock& clock,
         ReadinessCheck readiness, MetricsPage& metrics)
    : challenges_(challenges),
      phones_(phones),
      clock_(clock),
      readiness_(std::move(readiness)),
      metrics_(metrics) {}

HttpResponse Api::Handle(const HttpRequest& request) {
  try {
    return Route(request);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "http", "unexpected exception", {{"error", e.what()}});
  } catch (...) {
    Log(LogLevel::kError, "http", "unexpected exception");
  }
  return ProblemResponse(MakeError("internal_error", "internal error"), request.path);
}

HttpResponse Api::Route(const HttpRequest& request) {
  const std::string& method = request.method;
  const std::string& path = request.path;
  std::string route = RouteOf(path);
  std::vector<std::string> parts = SplitPath(path);

  if (route == kHealthz) {
    if (method != "GET" && method != "HEAD") return MethodNotAllowed(path, "GET, HEAD");
    return JsonResponse(200, {{"status", "ok"}});
  }
  if (route == kReadyz) {
    if (method != "GET" && method != "HEAD") return MethodNotAllowed(path, "GET, HEAD");
    return Ready(request);
  }
  if (route == kMetrics) {
    if (method != "GET" && method != "HEAD") return MethodNotAllowed(path, "GET, HEAD");
    return HttpResponse{200, kMetricsContentType, metrics_.Render(), {}};
  }
  // The route is found first, so a wrong path is 404 and a wrong method 405 whatever the
  // body; only a request that reached its handler is judged on its Content-Type.
  auto unacceptable = [&]() -> std::optional<HttpResponse> {
    if (AcceptableContentType(request.content_type)) return std::nullopt;
    return ProblemResponse(
        MakeError("unsupported_media_type", "Content-Type must be application/json"), path);
  };
  if (route == kChallenges) {
    if (method != "POST") return MethodNotAllowed(path, "POST");
    if (auto refused = unacceptable()) return *refused;
    return Create(request);
  }
  if (route == kVerify) {
    if (method != "POST") return MethodNotAllowed(path, "POST");
    if (auto refused = unacceptable()) return *refused;
    return Verify(request, nullptr);
  }
  if (route == kChallenge) {
    if (method == "GET" || method == "HEAD") return Read(parts[2]);
    if (method == "DELETE") {
      if (auto refused = unacceptable(); refused && !request.body.empty()) return *refused;
      return Cancel(request, parts[2]);
    }
    return MethodNotAllowed(path, "GET, HEAD, DELETE");
  }
  if (route == kChallengeVerify || route == kChallengeResend) {
    if (method != "POST") return MethodNotAllowed(path, "POST");
    if (auto refused = unacceptable()) return *refused;
    return route == kChallengeVerify ? Verify(request, &parts[2]) : Resend(request, parts[2]);
  }
  return ProblemResponse(MakeError("not_found", "there is no endpoint at this path"), path);
}

HttpResponse Api::Create(const HttpRequest& request) {
  Result<CreateRequest> parsed = ParseCreateRequest(request.body, phones_);
  if (!parsed.ok()) return ProblemResponse(parsed.error(), request.path);

  Result<CreatedChallenge> created = challenges_.Create(*parsed);
  if (!created.ok()) {
    LogStorageError(created.error());
    return ProblemResponse(created.error(), request.path);
  }

  std::int64_t remaining_ms = created->expires_at - created->created_at;
  return JsonResponse(202, {{"challenge_id", created->id},
                            {"status", "pending"},
                            {"expires_at", FormatRfc3339(created->expires_at)},
                            {"expires_in", remaining_ms / 1000}});
}

HttpResponse Api::Read(const std::string& id) {
  Result<ChallengeView> view = challenges_.Get(id);
  if (!view.ok()) {
    LogStorageError(view.error());
    return ProblemResponse(view.error(), "/v1/challenges/" + id);
  }

  const Challenge& c = view->challenge;
  std::int64_t remaining_ms = std::max<std::int64_t>(0, c.expires_at - clock_.Now());
  bool pending = c.status == ChallengeStatus::kPending;
  json body = {{"challenge_id", c.id},
               {"status", std::string(ToString(c.status))},
               {"user", c.user},
               {"phone", MaskPhone(c.phone)},
               {"attempts_remaining", pending ? c.max_attempts - c.attempts : 0},
               {"created_at", FormatRfc3339(c.created_at)},
               {"expires_at", FormatRfc3339(c.expires_at)},
               {"expires_in", pending ? remaining_ms / 1000 : 0},
               {"delivery", DeliveryJson(view->delivery)}};
  body["ended_at"] = c.ended_at ? json(FormatRfc3339(*c.ended_at)) : json(nullptr);
  return JsonResponse(200, body);
}

HttpResponse Api::Cancel(const HttpRequest& request, const std::string& id) {
  Result<std::string> client_ip = ParseOptionalClientIp(request.body);
  if (!client_ip.ok()) return ProblemResponse(client_ip.error(), request.path);

  Status canceled = challenges_.Cancel(id, *client_ip);
  if (!canceled.ok()) {
    LogStorageError(canceled.error());
    return ProblemResponse(canceled.error(), request.path);
  }
  return HttpResponse{204, "", "", {}};
}

HttpResponse Api::Verify(const HttpRequest& request, const std::string* id) {
  Result<VerifyRequest> parsed = ParseVerifyRequest(request.body, id == nullptr);
  if (!parsed.ok()) return ProblemResponse(parsed.error(), request.path);

  Result<VerifyResult> result =
      id != nullptr ? challenges_.VerifyById(*id, parsed->attempt, parsed->client_ip)
                    : challenges_.VerifyByUser(parsed->user, parsed->attempt, parsed->client_ip);
  if (!result.ok()) {
    LogStorageError(result.error());
    return ProblemResponse(result.error(), request.path);
  }

  json body = {{"status", std::string(ToString(result->status))},
               {"challenge_id", result->challenge_id}};
  if (result->status == VerifyStatus::kDenied) {
    body["attempts_remaining"] = result->attempts_remaining;
  }
  if (!result->reason.empty()) body["reason"] = result->reason;
  HttpResponse response = JsonResponse(200, body);
  if (result->retry_after_ms > 0) {
    std::int64_t seconds = RetryAfterSeconds(result->retry_after_ms);
    body["retry_after"] = seconds;
    response = JsonResponse(200, body);
    response.headers.emplace_back("Retry-After", std::to_string(seconds));
  }
  return response;
}

HttpResponse Api::Resend(const HttpRequest& request, const std::string& id) {
  Result<std::string> client_ip = ParseOptionalClientIp(request.body);
  if (!client_ip.ok()) return ProblemResponse(client_ip.error(), request.path);

  Status resent = challenges_.Resend(id, *client_ip);
  if (!resent.ok()) {
    LogStorageError(resent.error());
    return ProblemResponse(resent.error(), request.path);
  }
  return JsonResponse(202, {{"challenge_id", id}, {"status", "pending"}});
}

HttpResponse Api::Ready(const HttpRequest& request) {
  Status ready = readiness_ ? readiness_() : OkStatus();
  if (ready.ok()) return JsonResponse(200, {{"status", "ready"}});

  // The reason goes to the log; the caller gets the code, which says what to look at.
  Log(LogLevel::kWarn, "http", "not ready",
      {{"code", ready.error().code}, {"error", ready.error().message}});
  return ProblemResponse(ready.error(), request.path);
}

}  // namespace sidecar
