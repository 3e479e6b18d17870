#include "support/http_client.h"

namespace sidecar::testing {

std::string HttpReply::header(const std::string& name) const {
  auto it = headers.find(name);  // httplib::Headers compares names case-insensitively
  return it == headers.end() ? "" : it->second;
}

std::string HttpReply::str(const std::string& key) const {
  if (!json.is_object()) return "";
  auto it = json.find(key);
  if (it == json.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

long long HttpReply::integer(const std::string& key, long long fallback) const {
  if (!json.is_object()) return fallback;
  auto it = json.find(key);
  if (it == json.end() || !it->is_number_integer()) return fallback;
  return it->get<long long>();
}

std::string HttpReply::describe() const {
  if (!ok()) return "no response (" + error + ")";
  std::string shown = body.size() > 600 ? body.substr(0, 600) + "..." : body;
  return std::to_string(status) + " " + content_type + " " + shown;
}

HttpReply Send(httplib::Client& client, const std::string& method, const std::string& path,
               const std::string& body, const std::string& content_type) {
  httplib::Request request;
  request.method = method;
  request.path = path;
  request.body = body;
  // cpp-httplib's server waits for a body on POST/PUT/PATCH without Content-Length, so a
  // length is always sent, even for an empty body.
  request.set_header("Content-Length", std::to_string(body.size()));
  if (!content_type.empty()) request.set_header("Content-Type", content_type);

  HttpReply reply;
  httplib::Result result = client.send(request);
  if (!result) {
    reply.error = httplib::to_string(result.error());
    return reply;
  }
  reply.status = result->status;
  reply.body = result->body;
  reply.headers = result->headers;
  reply.content_type = result->get_header_value("Content-Type");
  reply.json = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  return reply;
}

HttpReply Get(httplib::Client& client, const std::string& path) {
  return Send(client, "GET", path, "", "");
}

HttpReply Delete(httplib::Client& client, const std::string& path) {
  return Send(client, "DELETE", path, "", "");
}

HttpReply PostJson(httplib::Client& client, const std::string& path, const nlohmann::json& body) {
  return Send(client, "POST", path, body.dump(), "application/json");
}

HttpReply PostRaw(httplib::Client& client, const std::string& path, const std::string& body,
                  const std::string& content_type) {
  return Send(client, "POST", path, body, content_type);
}

}  // namespace sidecar::testing
