#pragma once

// Talking to systemd through sd_notify(3): readiness, shutdown and the watchdog. Every call
// does nothing when the sidecar was not started by systemd with Type=notify (no
// NOTIFY_SOCKET), so the same binary runs by hand, in tests and under systemd.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"

namespace sidecar {

// READY=1 with a human-readable STATUS=: the database is migrated and every listener bound.
void NotifyReady(const std::string& status);

// STOPPING=1: the sidecar has begun to shut down.
void NotifyStopping();

// Pings a watchdog every `interval_ms` from its own thread while `health` answers ok. When
// it does not, the ping is skipped and the reason logged as an error (once, until health
// comes back), so that systemd restarts a sidecar whose delivery worker is stuck or whose
// database does not answer.
class Watchdog {
 public:
  using HealthCheck = std::function<Status()>;
  using Ping = std::function<void()>;

  Watchdog(std::int64_t interval_ms, HealthCheck health, Ping ping);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // A watchdog pinging systemd (WATCHDOG=1) at half the interval systemd asked for, or
  // nullptr when systemd asked for none (WATCHDOG_USEC unset, or meant for another process).
  static std::unique_ptr<Watchdog> ForSystemd(HealthCheck health);

 private:
  void Run();

  const std::int64_t interval_ms_;
  const HealthCheck health_;
  const Ping ping_;
  std::mutex mutex_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sidecar
