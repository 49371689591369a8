#pragma once

// A raw HTTP client for tests: sends bytes as they are (well-formed or not)
// to a loopback port and reads the answer until the server closes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace aether::testing {

/// A connection to 127.0.0.1:port; closed when destroyed.
class raw_http {
public:
  explicit raw_http(std::uint16_t port) : fd_{::socket(AF_INET, SOCK_STREAM, 0)} {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~raw_http() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_http(const raw_http&) = delete;
  raw_http& operator=(const raw_http&) = delete;

  [[nodiscard]] bool connected() const noexcept { return connected_; }

  /// Sends all of `bytes`; false when the server closed first.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads until the server closes or `timeout` passes; `closed` says which.
  std::string read_all(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed != nullptr) *closed = true;
        return out;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (closed != nullptr) *closed = false;
    return out;
  }

private:
  int fd_;
  bool connected_ = false;
};

/// The status code of a response (0 when it has none).
inline int status_of(std::string_view response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) return 0;
  return std::stoi(std::string{response.substr(9, 3)});
}

/// The body of a response (after the empty line).
inline std::string body_of(std::string_view response) {
  const auto p = response.find("\r\n\r\n");
  return p == std::string_view::npos ? std::string{} : std::string{response.substr(p + 4)};
}

/// One GET of `path`; the whole response, or empty when none came in time.
inline std::string http_get(std::uint16_t port, std::string_view path,
                            std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
  raw_http c{port};
  if (!c.connected()) return {};
  c.send("GET " + std::string{path} + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  return c.read_all(timeout);
}

} // namespace aether::testing
