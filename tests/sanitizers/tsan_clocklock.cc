// Linked into every target of a ThreadSanitizer build (ENABLE_TSAN), and only there.
//
// libstdc++ implements std::timed_mutex::try_lock_for and try_lock_until on the steady clock
// with pthread_mutex_clocklock, which the ThreadSanitizer runtimes of GCC 12 and Clang 14 do
// not intercept. ThreadSanitizer then never sees such a lock taken: it reports the matching
// unlock as "unlock of an unlocked mutex", and it would miss the order the lock gives, so it
// would report races on what the mutex guards. Defined in the executable, this function is
// the one those calls reach; it waits with pthread_mutex_timedlock, which the runtime does
// intercept, for the same remaining time.

#include <errno.h>
#include <pthread.h>
#include <time.h>

namespace {

constexpr long long kNanosPerSecond = 1'000'000'000;

long long Nanos(const timespec& t) {
  return t.tv_sec * kNanosPerSecond + t.tv_nsec;
}

}  // namespace

extern "C" int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock,
                                       const timespec* deadline) noexcept {
  if (clock == CLOCK_REALTIME) return pthread_mutex_timedlock(mutex, deadline);
  if (clock != CLOCK_MONOTONIC) return EINVAL;

  // The realtime deadline that leaves the same time to wait; a wall clock step during the
  // wait lengthens or shortens it, which a test build can live with.
  timespec monotonic_now{};
  timespec realtime_now{};
  clock_gettime(CLOCK_MONOTONIC, &monotonic_now);
  clock_gettime(CLOCK_REALTIME, &realtime_now);
  long long remaining = Nanos(*deadline) - Nanos(monotonic_now);
  if (remaining < 0) remaining = 0;

  long long until = Nanos(realtime_now) + remaining;
  timespec realtime_deadline{};
  realtime_deadline.tv_sec = static_cast<time_t>(until / kNanosPerSecond);
  realtime_deadline.tv_nsec = static_cast<long>(until % kNanosPerSecond);
  return pthread_mutex_timedlock(mutex, &realtime_deadline);
}
