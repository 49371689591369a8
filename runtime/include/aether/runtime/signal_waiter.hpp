#pragma once

#include <memory>

namespace aether {

/// Waits until SIGINT or SIGTERM arrives, or until `notify()`.
///
/// When constructed with `catch_signals`, the two signals are caught from
/// construction on (one that arrives before `wait()` is not lost) until
/// destruction; otherwise only `notify()` ends a wait. A `notify()` before
/// `wait()` makes it return at once.
///
/// Thread-safety: `notify` from any thread (not from a signal handler);
/// `wait` from one thread at a time.
class signal_waiter {
public:
  explicit signal_waiter(bool catch_signals);
  ~signal_waiter();
  signal_waiter(const signal_waiter&) = delete;
  signal_waiter& operator=(const signal_waiter&) = delete;

  /// Blocks until a signal or `notify()`; returns the signal number, or 0 for `notify()`.
  int wait();
  void notify() noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
