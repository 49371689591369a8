#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace aether {

/// Tells systemd how the service is doing, as `sd_notify(3)` does, without
/// libsystemd: one datagram per state (`READY=1`, `WATCHDOG=1`,
/// `STOPPING=1`) to the unix socket named by `$NOTIFY_SOCKET` (a leading
/// `@` names an abstract socket). Without `$NOTIFY_SOCKET` it does nothing.
/// With `$WATCHDOG_USEC` (and `$WATCHDOG_PID` unset or this process's), a
/// thread sends `WATCHDOG=1` every half interval from `ready()` until
/// destruction.
///
/// Thread-safety: `ready()` and `stopping()` from one thread; `send` from any.
class systemd_notifier {
public:
  /// Reads the environment.
  systemd_notifier();
  ~systemd_notifier();
  systemd_notifier(const systemd_notifier&) = delete;
  systemd_notifier& operator=(const systemd_notifier&) = delete;

  [[nodiscard]] bool enabled() const noexcept { return !socket_.empty(); }
  /// The watchdog interval systemd asked for; zero when none.
  [[nodiscard]] std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_; }

  /// `READY=1`, then the watchdog pings start.
  void ready();
  /// `STOPPING=1`.
  void stopping();
  /// Sends one state datagram; false when there is no socket or it failed.
  bool send(std::string_view state) const;

private:
  std::string socket_;
  std::chrono::microseconds watchdog_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread pinger_;
};

} // namespace aether
