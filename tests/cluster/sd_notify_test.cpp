#include "sd_notify.hpp"

#include <aether/cluster/node.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;

/// A unix datagram socket standing in for systemd's notification socket,
/// named by a path or (starting with '@') an abstract name; it sets
/// $NOTIFY_SOCKET while it lives.
class fake_notify_socket {
public:
  explicit fake_notify_socket(std::string name) : name_{std::move(name)} {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(name_.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, name_.data(), name_.size());
    if (name_.front() == '@') address.sun_path[0] = '\0';
    const auto length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + (name_.front() == '@' ? 0 : 1));
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0);
    timeval wait{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    ::setenv("NOTIFY_SOCKET", name_.c_str(), 1);
  }
  ~fake_notify_socket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    if (name_.front() == '/') ::unlink(name_.c_str());
  }
  fake_notify_socket(const fake_notify_socket&) = delete;
  fake_notify_socket& operator=(const fake_notify_socket&) = delete;

  /// The next datagram, or nothing within 10 s.
  std::optional<std::string> next() {
    char buffer[512];
    const auto n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string{buffer, static_cast<std::size_t>(n)};
  }
  /// Datagrams up to and including `state`; false if it does not come.
  bool skip_to(std::string_view state) {
    for (int i = 0; i < 1000; ++i) {
      const auto got = next();
      if (!got) return false;
      if (*got == state) return true;
    }
    return false;
  }

private:
  std::string name_;
  int fd_ = -1;
};

std::string temp_socket_path() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string{tmp != nullptr && *tmp != '\0' ? tmp : "/tmp"} + "/aether-notify-" + std::to_string(::getpid());
}

} // namespace

TEST_CASE("the notifier tells a socket path READY, WATCHDOG at half the interval, and STOPPING") {
  fake_notify_socket socket{temp_socket_path()};
  ::setenv("WATCHDOG_USEC", "200000", 1);
  ::unsetenv("WATCHDOG_PID");
  {
    aether::systemd_notifier notifier;
    CHECK(notifier.enabled());
    CHECK(notifier.watchdog_interval() == 200ms);
    notifier.ready();
    CHECK(socket.next() == "READY=1");
    const auto first = std::chrono::steady_clock::now();
    CHECK(socket.next() == "WATCHDOG=1");
    CHECK(socket.next() == "WATCHDOG=1");
    // Liveness only: two pings at 100 ms each took well under the interval's 10-fold.
    CHECK(std::chrono::steady_clock::now() - first < 2s);
    notifier.stopping();
    CHECK(socket.skip_to("STOPPING=1"));
  }
  ::unsetenv("WATCHDOG_USEC");
}

TEST_CASE("the notifier reaches an abstract socket named with '@'") {
  fake_notify_socket socket{"@aether-notify-test-" + std::to_string(::getpid())};
  ::unsetenv("WATCHDOG_USEC");
  aether::systemd_notifier notifier;
  CHECK(notifier.watchdog_interval() == 0us);
  notifier.ready();
  CHECK(socket.next() == "READY=1");
  notifier.stopping();
  CHECK(socket.next() == "STOPPING=1");
}

TEST_CASE("a watchdog meant for another process and a missing socket are left alone") {
  ::setenv("WATCHDOG_USEC", "200000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  {
    fake_notify_socket socket{temp_socket_path()};
    aether::systemd_notifier notifier;
    CHECK(notifier.watchdog_interval() == 0us);
  }
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("NOTIFY_SOCKET");
  aether::systemd_notifier quiet;
  CHECK_FALSE(quiet.enabled());
  CHECK_FALSE(quiet.send("READY=1"));
  ::unsetenv("WATCHDOG_USEC");
}

TEST_CASE("a running node tells systemd it is ready, pings the watchdog and says it stops") {
  fake_notify_socket socket{temp_socket_path()};
  ::setenv("WATCHDOG_USEC", "300000", 1);
  ::unsetenv("WATCHDOG_PID");
  aether::node_config config;
  config.handle_signals = false;
  config.threads = 2;
  aether::node node{config};
  std::thread runner{[&] { node.run(); }};
  CHECK(socket.next() == "READY=1");
  CHECK(socket.next() == "WATCHDOG=1");
  CHECK(socket.next() == "WATCHDOG=1");
  node.stop();
  runner.join();
  CHECK(socket.skip_to("STOPPING=1"));
  ::unsetenv("WATCHDOG_USEC");
}
