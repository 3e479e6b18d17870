#include "app/service_manager.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace sidecar;

namespace {

template <typename Predicate>
bool Eventually(Predicate predicate) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return predicate();
}

}  // namespace

TEST_SUITE("service_manager") {
  TEST_CASE("the watchdog pings only while healthy") {
    std::atomic<bool> healthy{true};
    std::atomic<int> checks{0};
    std::atomic<int> pings{0};
    Watchdog watchdog(
        5,
        [&]() -> Status {
          checks.fetch_add(1);
          if (healthy.load()) return OkStatus();
          return MakeError("delivery_worker_stalled", "stuck");
        },
        [&] { pings.fetch_add(1); });

    CHECK(Eventually([&] { return pings.load() >= 3; }));

    healthy.store(false);
    int checks_when_sick = checks.load();
    REQUIRE(Eventually([&] { return checks.load() >= checks_when_sick + 2; }));
    // One ping may have been on its way when health changed; none after a failed check.
    int pings_when_sick = pings.load();
    int checks_seen = checks.load();
    REQUIRE(Eventually([&] { return checks.load() >= checks_seen + 3; }));
    CHECK(pings.load() == pings_when_sick);

    healthy.store(true);
    CHECK(Eventually([&] { return pings.load() > pings_when_sick; }));
  }

  TEST_CASE(
      "no watchdog unless systemd asked for one, and notifications without systemd are "
      "harmless") {
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(Watchdog::ForSystemd([] { return OkStatus(); }) == nullptr);

    ::setenv("WATCHDOG_USEC", "2000000", 1);
    ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
    CHECK(Watchdog::ForSystemd([] { return OkStatus(); }) == nullptr);
    ::unsetenv("WATCHDOG_PID");
    CHECK(Watchdog::ForSystemd([] { return OkStatus(); }) != nullptr);
    ::unsetenv("WATCHDOG_USEC");

    NotifyReady("serving");
    NotifyStopping();
  }
}  // TEST_SUITE
