#pragma once

// Time comes in through Clock so that tests can fix it. All times in otp-sidecar are
// UTC milliseconds since the Unix epoch; they are stored that way too, so hosts in
// different time zones agree.

#include <chrono>
#include <cstdint>

namespace sidecar {

using TimeMs = std::int64_t;  // UTC milliseconds since 1970-01-01T00:00:00Z

class Clock {
 public:
  virtual ~Clock() = default;
  // Thread-safe.
  virtual TimeMs Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs Now() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
};

}  // namespace sidecar
