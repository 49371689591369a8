#include "sd_notify.hpp"

#include <aether/runtime/log.hpp>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace aether {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string{} : std::string{v};
}

} // namespace

systemd_notifier::systemd_notifier() : socket_{env("NOTIFY_SOCKET")} {
  // Only a path or an abstract name; systemd also passes nothing else.
  if (!socket_.empty() && socket_.front() != '/' && socket_.front() != '@') {
    log(log_level::warn, "NOTIFY_SOCKET is neither a path nor an abstract name (@...): not notifying systemd");
    socket_.clear();
  }
  const auto usec = env("WATCHDOG_USEC");
  const auto pid = env("WATCHDOG_PID");
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(usec.data(), usec.data() + usec.size(), value);
  long watchdog_pid = 0;
  const auto [pid_end, pid_ec] = std::from_chars(pid.data(), pid.data() + pid.size(), watchdog_pid);
  const bool for_us = pid.empty() || (pid_ec == std::errc{} && watchdog_pid == static_cast<long>(::getpid()));
  if (!usec.empty() && ec == std::errc{} && end == usec.data() + usec.size() && value > 0 && for_us) {
    watchdog_ = std::chrono::microseconds{value};
  }
}

systemd_notifier::~systemd_notifier() {
  {
    std::lock_guard lock{mutex_};
    done_ = true;
  }
  wake_.notify_all();
  if (pinger_.joinable()) pinger_.join();
}

bool systemd_notifier::send(std::string_view state) const {
  if (socket_.empty()) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, socket_.data(), socket_.size());
  if (socket_.front() == '@') address.sun_path[0] = '\0';
  // An abstract name's length counts exactly; a path's includes its NUL.
  const auto length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size() + (socket_.front() == '@' ? 0 : 1));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto sent =
      ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address), length);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

void systemd_notifier::ready() {
  if (!enabled()) return;
  if (!send("READY=1")) log(log_level::warn, "could not tell systemd READY=1 on {}", socket_);
  if (watchdog_.count() == 0 || pinger_.joinable()) return;
  pinger_ = std::thread{[this] {
    const auto half = watchdog_ / 2;
    std::unique_lock lock{mutex_};
    while (!wake_.wait_for(lock, half, [this] { return done_; })) send("WATCHDOG=1");
  }};
}

void systemd_notifier::stopping() {
  if (enabled()) send("STOPPING=1");
}

} // namespace aether
