#pragma once

// Fake SMS providers for the integration tests: real servers on 127.0.0.1, started and
// stopped by each test, that the real otp-sidecar binary talks to. Header-only, included
// only by tests/integration/*.cc. They build on support/http_fakes.h (TestPki,
// RunningServer, SilentServer, RefusingPort).
//
//   FakeTwilio      Twilio's Messages endpoint over HTTPS (or HTTP), scripted answers
//   FakeWebhook     a webhook receiver over HTTP, on a free or a given port
//
// Nothing here ever talks to anything but 127.0.0.1.

#include <doctest/doctest.h>
#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/http_fakes.h"
#include "support/sidecar_process.h"

namespace sidecar::testing {

using SteadyTime = std::chrono::steady_clock::time_point;

// One scripted answer.
struct FakeReply {
  int status = 201;
  std::string body;         // for FakeTwilio, "" is a Twilio message with the fake's sid
  std::string retry_after;  // sent as Retry-After when not empty
  bool stall = false;       // answer only once the fake is destroyed (or after 60 s)
};

// One request as a fake saw it.
struct SeenRequest {
  SteadyTime at;
  std::string method;
  std::string path;
  httplib::Headers headers;
  std::string body;
  httplib::Params form;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string field(const std::string& name) const {
    auto it = form.find(name);
    return it == form.end() ? "" : it->second;
  }
  std::size_t field_count(const std::string& name) const { return form.count(name); }
};

// The part shared by the fakes: records every request and answers with the next scripted
// reply (the last one repeats; an empty body is `default_body`), releasing stalled handlers on
// destruction.
class ScriptedServer {
 public:
  ScriptedServer(std::unique_ptr<httplib::Server> server, std::vector<FakeReply> script, int port,
                 std::string default_body)
      : server_(std::move(server)),
        default_body_(std::move(default_body)),
        script_(script.begin(), script.end()) {
    if (script_.empty()) script_.push_back(FakeReply{});
    server_->Post(
        ".*", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    running_ = std::make_unique<RunningServer>(*server_, port);
  }
  virtual ~ScriptedServer() { Shutdown(); }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return running_ ? running_->port() : 0; }

  std::vector<SeenRequest> seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_.size();
  }
  // The most requests that were in a handler at the same time.
  int max_concurrent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_concurrent_;
  }
  // Waits until the fake has seen `n` requests; false at the deadline.
  bool WaitForCount(std::size_t n, Millis timeout = Millis(10'000)) {
    return PollUntil([&] { return count() >= n; }, timeout);
  }

  // Lets stalled handlers answer, then stops the server.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
    running_.reset();
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mutex_);
    seen_.push_back(SeenRequest{std::chrono::steady_clock::now(), req.method, req.path, req.headers,
                                req.body, req.params});
    FakeReply reply = script_.front();
    if (script_.size() > 1) script_.pop_front();
    ++concurrent_;
    max_concurrent_ = std::max(max_concurrent_, concurrent_);
    if (reply.stall)
      released_cv_.wait_for(lock, std::chrono::seconds(60), [this] { return released_; });
    --concurrent_;
    res.status = reply.status;
    if (!reply.retry_after.empty()) res.set_header("Retry-After", reply.retry_after);
    res.set_content(reply.body.empty() ? default_body_ : reply.body, "application/json");
  }

  std::unique_ptr<httplib::Server> server_;
  // A value, not a virtual call: the server serves from the end of this class's constructor,
  // while a derived class is still being constructed (its vtable pointer still being written).
  const std::string default_body_;
  std::unique_ptr<RunningServer> running_;
  std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;          // guarded by mutex_
  std::deque<FakeReply> script_;   // guarded by mutex_
  std::vector<SeenRequest> seen_;  // guarded by mutex_
  int concurrent_ = 0;             // guarded by mutex_
  int max_concurrent_ = 0;         // guarded by mutex_
};

inline constexpr const char* kFakeTwilioSid = "SM00aa11bb22cc33dd44ee55ff66778899";

inline std::unique_ptr<httplib::Server> MakeServer(const TestPki* pki) {
  if (pki == nullptr) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>(pki->cert_file.c_str(), pki->key_file.c_str());
}

// Twilio's Messages endpoint: HTTPS with `pki`'s server certificate (HTTP without one).
class FakeTwilio final : public ScriptedServer {
 public:
  explicit FakeTwilio(const TestPki* pki, std::vector<FakeReply> script = {})
      : ScriptedServer(MakeServer(pki), std::move(script), 0, MessageBody()),
        tls_(pki != nullptr) {}
  ~FakeTwilio() override { Shutdown(); }

  std::string base_url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
  }

 private:
  static std::string MessageBody() {
    return std::string(R"({"sid": ")") + kFakeTwilioSid +
           R"(", "status": "queued", "to": "+12065550100"})";
  }

  bool tls_;
};

// A Twilio error answer in Twilio's shape.
inline FakeReply TwilioErrorReply(int status, int code, const std::string& message) {
  FakeReply reply;
  reply.status = status;
  reply.body = nlohmann::json{
      {"code", code},
      {"message", message},
      {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)},
      {"status",
       status}}.dump();
  return reply;
}

// A webhook receiver over plain HTTP; answers {"id": "gw-N"} unless scripted otherwise.
class FakeWebhook final : public ScriptedServer {
 public:
  explicit FakeWebhook(std::vector<FakeReply> script = {}, int port = 0)
      : ScriptedServer(std::make_unique<httplib::Server>(), std::move(script), port,
                       R"({"id": "gw-4711"})") {}
  ~FakeWebhook() override { Shutdown(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/sms/send"; }
};

inline std::string Base64(const std::string& text) {
  std::string out(sodium_base64_ENCODED_LEN(text.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(&out[0], out.size(), reinterpret_cast<const unsigned char*>(text.data()),
                    text.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

}  // namespace sidecar::testing
