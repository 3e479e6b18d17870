#pragma once

// Small helpers over httplib::Client for the integration tests: send a request, keep the
// status, headers and body, and parse the body as JSON when it is JSON.

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

namespace sidecar::testing {

struct HttpReply {
  int status = 0;     // 0 when no response arrived
  std::string error;  // cpp-httplib's error when no response arrived
  std::string content_type;
  std::string body;
  httplib::Headers headers;
  nlohmann::json json;  // the parsed body; discarded when the body is not JSON

  bool ok() const { return status != 0; }
  bool is_json_object() const { return json.is_object(); }
  std::string header(const std::string& name) const;
  // json[key] as a string, or "" when absent or not a string.
  std::string str(const std::string& key) const;
  // json[key] as an integer, or `fallback` when absent or not an integer.
  long long integer(const std::string& key, long long fallback = -999) const;
  // A one-line description for failure messages.
  std::string describe() const;
};

// Sends `method path` with `body` (always with a Content-Length; with a Content-Type
// unless `content_type` is empty) and returns what came back.
HttpReply Send(httplib::Client& client, const std::string& method, const std::string& path,
               const std::string& body = "", const std::string& content_type = "application/json");

HttpReply Get(httplib::Client& client, const std::string& path);
HttpReply Delete(httplib::Client& client, const std::string& path);
HttpReply PostJson(httplib::Client& client, const std::string& path, const nlohmann::json& body);
HttpReply PostRaw(httplib::Client& client, const std::string& path, const std::string& body,
                  const std::string& content_type = "application/json");

}  // namespace sidecar::testing
