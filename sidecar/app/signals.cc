#include "app/signals.h"

#include <pthread.h>
#include <signal.h>

namespace sidecar {
namespace {

sigset_t WatchedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1})
    sigaddset(&set, sig);
  return set;
}

}  // namespace

void SignalWatcher::BlockSignals() {
  sigset_t set = WatchedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

SignalWatcher::SignalWatcher(SignalHandlers handlers) : handlers_(std::move(handlers)) {
  thread_ = std::thread([this] { Run(); });
}

SignalWatcher::~SignalWatcher() {
  // SIGUSR1, aimed at the watcher's thread alone, is how it is told to end.
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

void SignalWatcher::Run() {
  sigset_t set = WatchedSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) return;
    if (sig == SIGHUP) {
      handlers_.reload();
      continue;
    }
    handlers_.stop(sig == SIGTERM ? "TERM" : "INT");
    return;
  }
}

}  // namespace sidecar
