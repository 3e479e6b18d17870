#include "app/service_manager.h"

#include <systemd/sd-daemon.h>

#include <chrono>

#include "common/log.h"

namespace sidecar {

void NotifyReady(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void NotifyStopping() {
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

Watchdog::Watchdog(std::int64_t interval_ms, HealthCheck health, Ping ping)
    : interval_ms_(interval_ms), health_(std::move(health)), ping_(std::move(ping)) {
  thread_ = std::thread([this] { Run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::unique_ptr<Watchdog> Watchdog::ForSystemd(HealthCheck health) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return nullptr;

  // Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not yet fatal.
  auto interval_ms = static_cast<std::int64_t>(std::max<std::uint64_t>(usec / 2000, 1));
  Log(LogLevel::kInfo, "main", "watchdog enabled", {{"interval_ms", std::to_string(interval_ms)}});
  return std::make_unique<Watchdog>(interval_ms, std::move(health),
                                    [] { sd_notify(0, "WATCHDOG=1"); });
}

void Watchdog::Run() {
  bool healthy = true;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    lock.unlock();
    Status health = health_();
    if (health.ok()) {
      ping_();
      if (!healthy) Log(LogLevel::kInfo, "main", "healthy again; watchdog pings resumed");
    } else if (healthy) {
      Log(LogLevel::kError, "main", "unhealthy; watchdog pings stopped",
          {{"code", health.error().code}, {"error", health.error().message}});
    }
    healthy = health.ok();

    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; });
  }
}

}  // namespace sidecar
