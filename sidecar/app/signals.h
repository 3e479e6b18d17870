#pragma once

// Signals, taken on one thread of their own: SIGTERM and SIGINT ask to stop, SIGHUP to
// reopen the log file and reload the templates.

#include <functional>
#include <string>
#include <thread>

namespace sidecar {

struct SignalHandlers {
  // Called once, with "TERM" or "INT"; the watcher ends after it.
  std::function<void(const std::string& signal)> stop;
  // Called for each SIGHUP, on the watcher's thread.
  std::function<void()> reload;
};

class SignalWatcher {
 public:
  // Blocks SIGTERM, SIGINT, SIGHUP (and SIGUSR1, used internally) in the calling thread,
  // and so in every thread it starts afterwards, and ignores SIGPIPE. Call it first thing,
  // before any thread starts, so the signals are only ever taken by the watcher.
  static void BlockSignals();

  // Starts watching. REQUIRES: BlockSignals() was called.
  explicit SignalWatcher(SignalHandlers handlers);

  // Stops watching (a stop already under way carries on).
  ~SignalWatcher();

  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void Run();

  SignalHandlers handlers_;
  std::thread thread_;
};

}  // namespace sidecar
