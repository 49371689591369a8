#include <aether/runtime/http_server.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include "support/eventually.hpp"
#include "support/http_client.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aether::testing::body_of;
using aether::testing::http_get;
using aether::testing::raw_http;
using aether::testing::status_of;

namespace {

struct fixture {
  explicit fixture(aether::http_server_options o = {}) {
    o.address = "127.0.0.1:0";
    auto s = aether::http_server::start(pool, o, [this](std::string_view path) {
      ++calls;
      if (path == "/hello") return aether::http_response{200, "text/plain", "hello\n"};
      if (path == "/boom") throw std::runtime_error{"boom"};
      return aether::http_response{404, "text/plain", "no\n"};
    });
    REQUIRE(s);
    server = std::move(*s);
    REQUIRE(server->port() != 0);
  }
  ~fixture() {
    server->stop();
    pool.stop();
    pool.join();
  }
  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;

  /// Sends `request` raw and returns the whole response.
  std::string exchange(std::string_view request) {
    raw_http c{server->port()};
    REQUIRE(c.connected());
    c.send(request);
    return c.read_all(10s);
  }

  aether::thread_pool_executor pool{2, 1};
  std::atomic<int> calls{0};
  std::unique_ptr<aether::http_server> server;
};

} // namespace

TEST_CASE("a GET is answered by the handler, by path without the query, and the connection closes") {
  fixture f;
  const auto r = f.exchange("GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == "hello\n");
  CHECK(r.find("Content-Length: 6\r\n") != std::string::npos);
  CHECK(r.find("Connection: close\r\n") != std::string::npos);
  CHECK(status_of(http_get(f.server->port(), "/nowhere")) == 404);
  CHECK(status_of(f.exchange("GET /hello HTTP/1.0\r\n\r\n")) == 200);
}

TEST_CASE("requests that do not parse get 400 and never reach the handler") {
  fixture f;
  for (const char* bad :
       {"garbage\r\n\r\n", "GET\r\n\r\n", "GET /x\r\n\r\n", "GET /x HTTP/2.0\r\n\r\n", "GET x HTTP/1.1\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty name\r\n\r\n", "\x16\x03\x01\x02\x01\xfc\x03\x03\r\n\r\n"}) {
    const std::string request{bad};
    CAPTURE(request);
    CHECK(status_of(f.exchange(request)) == 400);
  }
  CHECK(f.calls.load() == 0);
}

TEST_CASE("other methods get 405 with Allow: GET") {
  fixture f;
  const auto r = f.exchange("POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  CHECK(status_of(r) == 405);
  CHECK(r.find("Allow: GET\r\n") != std::string::npos);
  CHECK(status_of(f.exchange("DELETE /hello HTTP/1.1\r\n\r\n")) == 405);
  CHECK(f.calls.load() == 0);
}

TEST_CASE("a request larger than the bound gets 431 and the server goes on") {
  aether::http_server_options o;
  o.max_request_bytes = 4096;
  fixture f{o};
  const std::string huge = "GET /hello HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  raw_http c{f.server->port()};
  REQUIRE(c.connected());
  c.send(huge); // the server may close before reading it all
  const auto r = c.read_all(10s);
  CHECK(status_of(r) == 431);
  // Endless header lines with no end are cut off the same way.
  raw_http endless{f.server->port()};
  std::string lines = "GET /hello HTTP/1.1\r\n";
  for (int i = 0; i < 1000; ++i) lines += "X-A: b\r\n";
  endless.send(lines);
  CHECK(status_of(endless.read_all(10s)) == 431);
  CHECK(status_of(http_get(f.server->port(), "/hello")) == 200);
}

TEST_CASE("a handler that throws gets 500") {
  fixture f;
  CHECK(status_of(http_get(f.server->port(), "/boom")) == 500);
  CHECK(status_of(http_get(f.server->port(), "/hello")) == 200);
}

TEST_CASE("slow clients holding half a request do not keep others from being answered, and are cut off") {
  aether::http_server_options o;
  o.request_timeout = 1500ms;
  fixture f{o};
  std::vector<std::unique_ptr<raw_http>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<raw_http>(f.server->port()));
    REQUIRE(slow.back()->connected());
    slow.back()->send("GET /hello HTTP/1.1\r\nHost: sl"); // and nothing more
  }
  // The pool has two threads; eight stalled requests hold none of them.
  for (int i = 0; i < 5; ++i) CHECK(status_of(http_get(f.server->port(), "/hello", 5s)) == 200);
  // Past the request timeout the server closes them without an answer.
  for (auto& s : slow) {
    bool closed = false;
    const auto r = s->read_all(30s, &closed);
    CHECK(closed);
    CHECK(r.empty());
  }
}

TEST_CASE("connections past the limit are closed at once while the others are served") {
  aether::http_server_options o;
  o.max_connections = 2;
  o.request_timeout = 20s;
  fixture f{o};
  raw_http a{f.server->port()};
  raw_http b{f.server->port()};
  a.send("GET /hel");
  b.send("GET /hel");
  // Both are counted once the server accepted them; a third is turned away.
  AETHER_EVENTUALLY(
      [&] {
        raw_http c{f.server->port()};
        c.send("GET /hello HTTP/1.1\r\n\r\n");
        bool closed = false;
        const auto r = c.read_all(5s, &closed);
        return closed && r.empty();
      }(),
      20s);
  a.send("lo HTTP/1.1\r\n\r\n");
  CHECK(status_of(a.read_all(10s)) == 200);
}

TEST_CASE("an address that does not parse or cannot be bound is a typed error") {
  aether::thread_pool_executor pool{1, 1};
  for (const char* bad : {"", "9464", "localhost:9464", "127.0.0.1:99999", "127.0.0.1:x", "::1:80", "[::1]80"}) {
    CAPTURE(bad);
    aether::http_server_options o;
    o.address = bad;
    auto s = aether::http_server::start(pool, o, [](std::string_view) { return aether::http_response{}; });
    REQUIRE(!s);
    CHECK(s.error().code() == aether::errc::invalid_argument);
  }
  aether::http_server_options o;
  o.address = "127.0.0.1:0";
  auto first = aether::http_server::start(pool, o, [](std::string_view) { return aether::http_response{}; });
  REQUIRE(first);
  o.address = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = aether::http_server::start(pool, o, [](std::string_view) { return aether::http_response{}; });
  REQUIRE(!second);
  CHECK(second.error().code() == aether::errc::io_error);
  (*first)->stop();
  pool.stop();
  pool.join();
}
