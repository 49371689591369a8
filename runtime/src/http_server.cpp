#include <aether/runtime/http_server.hpp>
#include <aether/runtime/log.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <future>
#include <mutex>
#include <unordered_map>

namespace aether {

namespace {

using tcp = asio::ip::tcp;
using strand = asio::strand<asio::io_context::executor_type>;

std::string_view reason_of(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "Status";
  }
}

bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '<' && c != '>' && c != '@' && c != ',' && c != ';' &&
         c != ':' && c != '\\' && c != '"' && c != '/' && c != '[' && c != ']' && c != '?' && c != '=' && c != '{' &&
         c != '}';
}

/// What a request head asks for: a status of its own (400, 405) or a path to answer.
struct parsed_request {
  int status = 0; // 0: answer `path`
  std::string path;
};

/// Parses the request line and checks the header lines' form; the head ends
/// with an empty line.
parsed_request parse_head(std::string_view head) {
  const auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return {400, {}};
  const auto line = head.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos)
    return {400, {}};
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (method.empty()) return {400, {}};
  for (const char c : method) {
    if (!is_token_char(c)) return {400, {}};
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return {400, {}};
  if (target.empty() || target.front() != '/') return {400, {}};
  for (const char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return {400, {}};
  }
  // Header lines: `name: value`, no control characters.
  auto rest = head.substr(eol + 2);
  while (!rest.empty()) {
    const auto e = rest.find("\r\n");
    if (e == std::string_view::npos) return {400, {}};
    const auto h = rest.substr(0, e);
    rest = rest.substr(e + 2);
    if (h.empty()) break; // the end of the head
    const auto colon = h.find(':');
    if (colon == 0 || colon == std::string_view::npos) return {400, {}};
    for (const char c : h.substr(0, colon)) {
      if (!is_token_char(c)) return {400, {}};
    }
    for (const char c : h.substr(colon + 1)) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return {400, {}};
    }
  }
  if (method != "GET") return {405, {}};
  const auto q = target.find('?');
  return {0, std::string{target.substr(0, q)}};
}

} // namespace

struct http_server::impl : std::enable_shared_from_this<http_server::impl> {
  impl(asio::io_context& io, http_server_options o, handler h)
      : context{io}, exec{asio::make_strand(io)}, acceptor{exec}, options{std::move(o)}, on_get{std::move(h)} {}

  struct connection : std::enable_shared_from_this<connection> {
    connection(std::shared_ptr<impl> s, tcp::socket sock)
        : server{std::move(s)},
          socket{std::move(sock)},
          timer{socket.get_executor()},
          buffer{server->options.max_request_bytes} {}

    std::shared_ptr<impl> server;
    tcp::socket socket; // on its own strand
    asio::steady_timer timer;
    asio::streambuf buffer;
    std::string out;
    std::array<char, 4096> scratch;

    void start() {
      timer.expires_after(server->options.request_timeout);
      timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec) self->close(); // too slow: the client loses its connection
      });
      asio::async_read_until(
          socket, buffer, "\r\n\r\n",
          [self = shared_from_this()](const std::error_code& ec, std::size_t n) { self->read(ec, n); });
    }

    void read(const std::error_code& ec, std::size_t n) {
      if (ec == asio::error::not_found)
        return respond(http_response{431, "text/plain; charset=utf-8", "request too large\n"});
      if (ec) return close();
      const std::string_view head{static_cast<const char*>(buffer.data().data()), n};
      auto req = parse_head(head);
      if (req.status == 400) return respond(http_response{400, "text/plain; charset=utf-8", "bad request\n"});
      if (req.status == 405) return respond(http_response{405, "text/plain; charset=utf-8", "only GET\n"});
      try {
        respond(server->on_get(req.path));
      } catch (const std::exception& e) {
        log(log_level::error, "http: GET {}: {}", req.path, e.what());
        respond(http_response{500, "text/plain; charset=utf-8", "internal error\n"});
      }
    }

    void respond(const http_response& r) {
      timer.cancel();
      out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
                        r.status, reason_of(r.status), r.content_type, r.body.size(),
                        r.status == 405 ? "Allow: GET\r\n" : "");
      out += r.body;
      // A response is written whole within the request timeout, or the connection closes.
      timer.expires_after(server->options.request_timeout);
      timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec) self->close();
      });
      asio::async_write(socket, asio::buffer(out), [self = shared_from_this()](const std::error_code& ec, std::size_t) {
        if (ec) return self->close();
        // Lingering close: the answer is sent with a FIN, and what the client
        // still sends is read and dropped until it closes (or the timer ends
        // it), so a client still sending gets the answer rather than a reset.
        std::error_code ignored;
        self->socket.shutdown(tcp::socket::shutdown_send, ignored);
        self->discard();
      });
    }

    void discard() {
      socket.async_read_some(asio::buffer(scratch),
                             [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                               if (ec) return self->close();
                               self->discard();
                             });
    }

    void close() {
      timer.cancel();
      if (!socket.is_open()) return;
      std::error_code ignored;
      socket.close(ignored);
      asio::post(server->exec, [s = server, self = shared_from_this()] { s->open.erase(self.get()); });
    }
  };

  asio::io_context& context;
  strand exec; // the acceptor and the set of open connections
  tcp::acceptor acceptor;
  http_server_options options;
  handler on_get;
  std::uint16_t port = 0; // set before serving
  std::unordered_map<connection*, std::weak_ptr<connection>> open;
  bool stopped = false;

  void accept() {
    acceptor.async_accept(asio::make_strand(context),
                          [self = shared_from_this()](const std::error_code& ec, tcp::socket socket) {
                            if (self->stopped) return;
                            if (!ec) {
                              if (self->open.size() >= self->options.max_connections) {
                                std::error_code ignored;
                                socket.close(ignored);
                              } else {
                                auto c = std::make_shared<connection>(self, std::move(socket));
                                self->open.emplace(c.get(), c);
                                asio::post(c->socket.get_executor(), [c] { c->start(); });
                              }
                            }
                            self->accept();
                          });
  }
};

expected<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return error{errc::invalid_argument, fmt::format("{}={}: {}", what, text, why)};
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("expected [address]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address goes in brackets");
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
    return bad("the port is not a number from 0 to 65535");
  if (host.empty()) return bad("no address");
  std::error_code parse_error;
  const auto address = asio::ip::make_address(std::string{host}, parse_error);
  if (parse_error) return bad("not an IP address");
  return std::pair{address.to_string(), static_cast<std::uint16_t>(value)};
}

http_server::http_server(std::shared_ptr<impl> p) : port_{p->port}, impl_{std::move(p)} {}

http_server::~http_server() { stop(); }

expected<std::unique_ptr<http_server>> http_server::start(thread_pool_executor& pool, http_server_options options,
                                                          handler on_get) {
  auto where = parse_host_port(options.address, "address");
  if (!where) return where.error();
  if (options.max_request_bytes < 64) return error{errc::invalid_argument, "max_request_bytes is below 64"};
  auto p = std::make_shared<impl>(detail::pool_context(pool), std::move(options), std::move(on_get));
  std::error_code ec;
  const tcp::endpoint endpoint{asio::ip::make_address(where->first), where->second};
  p->acceptor.open(endpoint.protocol(), ec);
  if (!ec) p->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) p->acceptor.bind(endpoint, ec);
  if (!ec) p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return error{errc::io_error, fmt::format("http: cannot listen on {}: {}", p->options.address, ec.message())};
  }
  p->port = p->acceptor.local_endpoint(ec).port();
  asio::post(p->exec, [p] { p->accept(); });
  return std::unique_ptr<http_server>{new http_server{std::move(p)}};
}

std::uint16_t http_server::port() const noexcept { return port_; }

void http_server::stop() {
  if (!impl_) return;
  std::promise<void> done;
  auto finished = done.get_future();
  asio::post(impl_->exec, [p = impl_, &done] {
    p->stopped = true;
    std::error_code ignored;
    p->acceptor.close(ignored);
    for (auto& [raw, w] : p->open) {
      if (auto c = w.lock()) asio::post(c->socket.get_executor(), [c] { c->close(); });
    }
    p->open.clear();
    done.set_value();
  });
  finished.wait();
  impl_.reset();
}

} // namespace aether
