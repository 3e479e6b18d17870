#pragma once

// Many clients at once against one sidecar, released together so the requests overlap.
// Included only by tests/integration/*.cc.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/sidecar_process.h"

namespace sidecar::testing {

// Releases all waiting threads at once.
class StartGate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++waiting_;
    arrived_.notify_all();
    open_cv_.wait(lock, [this] { return open_; });
  }
  void OpenWhenAllWait(int count) {
    std::unique_lock<std::mutex> lock(mutex_);
    arrived_.wait_for(lock, std::chrono::seconds(10), [&] { return waiting_ >= count; });
    open_ = true;
    open_cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::condition_variable open_cv_;
  int waiting_ = 0;
  bool open_ = false;
};

// Runs `request(client, i)` for i in [0, count) on `count` threads, each with its own
// connected client (thread i to sidecars[i % size], so a test can spread the requests over
// several sidecars that share a database), released together; returns the replies in thread
// order.
inline std::vector<HttpReply> InParallel(
    const std::vector<const SidecarProcess*>& sidecars, int count,
    const std::function<HttpReply(httplib::Client&, int)>& request) {
  std::vector<HttpReply> replies(static_cast<std::size_t>(count));
  std::vector<std::thread> threads;
  StartGate gate;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client client = sidecars[static_cast<std::size_t>(i) % sidecars.size()]->client();
      client.set_keep_alive(true);
      Get(client, "/healthz");  // connect before the gate so the requests really overlap
      gate.Wait();
      replies[static_cast<std::size_t>(i)] = request(client, i);
    });
  }
  gate.OpenWhenAllWait(count);
  for (std::thread& thread : threads)
    thread.join();
  return replies;
}

inline std::vector<HttpReply> InParallel(
    const SidecarProcess& sidecar, int count,
    const std::function<HttpReply(httplib::Client&, int)>& request) {
  return InParallel(std::vector<const SidecarProcess*>{&sidecar}, count, request);
}

}  // namespace sidecar::testing
