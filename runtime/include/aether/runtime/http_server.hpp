#pragma once

#include <aether/runtime/expected.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace aether {

class thread_pool_executor;

/// What a handler answers to a GET.
struct http_response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct http_server_options {
  /// `host:port` (`[v6]:port` for IPv6); port 0 takes a free one. Loopback
  /// unless a program asks for another address.
  std::string address = "127.0.0.1:9464";
  /// The request line and headers together; a longer request gets 431.
  std::size_t max_request_bytes = 8 * 1024;
  /// How long a client may take to send its request; then it is closed.
  std::chrono::milliseconds request_timeout{5'000};
  /// Connections served at once; more are closed at once.
  std::size_t max_connections = 64;
};

/// A small HTTP/1.1 server for a node's operational endpoints, on the node's
/// own thread pool (Asio): GET only, one request per connection (it answers
/// with `Connection: close`), bounded request size and time. A request that
/// does not parse gets 400, another method 405, an oversized one 431; the
/// handler answers the rest (by path, without the query). A slow or silent
/// client holds only its own connection, never a thread.
///
/// Thread-safety: `port` from any thread; `stop` once, from a thread that is
/// not the pool's, before the pool stops. The handler runs on pool threads,
/// possibly for several requests at once.
class http_server {
public:
  using handler = std::function<http_response(std::string_view path)>;

  /// Binds `options.address` and serves on `pool`; `invalid_argument` for an
  /// address that does not parse, `io_error` when it cannot be bound.
  [[nodiscard]] static expected<std::unique_ptr<http_server>> start(thread_pool_executor& pool,
                                                                    http_server_options options, handler on_get);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound port (the one taken when the address said 0).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// Stops accepting and closes every open connection; waits until the
  /// server's own steps are done. Idempotent.
  void stop();

  struct impl;

private:
  explicit http_server(std::shared_ptr<impl> p);
  std::uint16_t port_;
  std::shared_ptr<impl> impl_;
};

/// Splits `host:port` (or `[v6]:port`); `invalid_argument` naming `what` otherwise.
[[nodiscard]] expected<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text,
                                                                              std::string_view what);

} // namespace aether
