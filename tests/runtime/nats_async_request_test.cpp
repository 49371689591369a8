// Asynchronous requests of the NATS connection: each answered exactly once,
// by its reply, its deadline, "no responders", or the connection closing.
#include <aether/runtime/nats.hpp>

#include "support/eventually.hpp"
#include "support/nats_connection.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aether::errc;
using aether::testing::connect;
using aether::testing::nats_server;

namespace {

/// What one request was answered, and how often.
struct answered {
  std::atomic<int> count{0};
  std::atomic<int> code{-1}; // -1: a reply
  std::mutex mutex;
  std::string data;

  aether::nats::connection::reply_callback callback() {
    return [this](aether::expected<aether::nats::message> m) {
      {
        std::lock_guard lock{mutex};
        if (m) {
          data = m->data;
        } else {
          code = static_cast<int>(m.error().code());
        }
      }
      count.fetch_add(1);
    };
  }
  std::string got() {
    std::lock_guard lock{mutex};
    return data;
  }
};

/// A subscriber that keeps the reply subjects of the requests it gets and
/// answers them only when told.
struct holder {
  std::mutex mutex;
  std::vector<std::string> replies;
  aether::nats::subscription sub;

  holder(aether::nats::connection& conn, std::string_view subject) {
    auto s = conn.subscribe(subject, [this](const aether::nats::message_view& m) {
      std::lock_guard lock{mutex};
      replies.emplace_back(m.reply());
    });
    REQUIRE(s);
    sub = std::move(*s);
    REQUIRE(conn.flush(5s));
  }
  std::size_t taken() {
    std::lock_guard lock{mutex};
    return replies.size();
  }
  void answer(aether::nats::connection& conn, std::string_view data) {
    std::vector<std::string> all;
    {
      std::lock_guard lock{mutex};
      all.swap(replies);
    }
    for (const auto& r : all) REQUIRE(conn.publish(r, data));
    REQUIRE(conn.flush(5s));
  }
};

} // namespace

TEST_CASE("an asynchronous request gets its reply once, and many in flight each get their own") {
  nats_server server;
  auto conn = connect(server.url());
  auto sub = conn->subscribe(
      "echo", [conn = conn.get()](const aether::nats::message_view& m) { (void)conn->publish(m.reply(), m.data()); });
  REQUIRE(sub);
  REQUIRE(conn->flush(5s));
  constexpr int count = 500;
  std::vector<answered> answers(count);
  for (int i = 0; i < count; ++i) {
    conn->request_async("echo", std::to_string(i), 30s, answers[static_cast<std::size_t>(i)].callback());
  }
  AETHER_EVENTUALLY(conn->async_requests_pending() == 0, 30s);
  for (int i = 0; i < count; ++i) {
    auto& a = answers[static_cast<std::size_t>(i)];
    REQUIRE(a.count.load() == 1);
    REQUIRE(a.code.load() == -1);
    REQUIRE(a.got() == std::to_string(i));
  }
}

TEST_CASE("a reply after its request's deadline is dropped: the request was answered timeout, once") {
  nats_server server;
  auto conn = connect(server.url());
  holder silent{*conn, "slow"};
  answered a;
  answered later;
  conn->request_async("slow", "x", 300ms, a.callback());
  conn->request_async("slow", "y", 60s, later.callback());
  AETHER_EVENTUALLY(a.count.load() == 1, 10s);
  CHECK(a.code.load() == static_cast<int>(errc::timeout));
  CHECK(silent.taken() == 2);
  // Both are answered now: the first is past its deadline, the second not.
  silent.answer(*conn, "late");
  AETHER_EVENTUALLY(later.count.load() == 1, 10s);
  CHECK(later.got() == "late");
  CHECK(later.code.load() == -1);
  std::this_thread::sleep_for(200ms); // time for a wrong second answer to come
  CHECK(a.count.load() == 1);
  CHECK(a.code.load() == static_cast<int>(errc::timeout));
  CHECK(conn->async_requests_pending() == 0);
}

TEST_CASE("an asynchronous request nobody subscribes to is answered not_found at once") {
  nats_server server;
  auto conn = connect(server.url());
  answered a;
  conn->request_async("nobody.here", "x", 60s, a.callback());
  AETHER_EVENTUALLY(a.count.load() == 1, 10s); // not after the 60 s
  CHECK(a.code.load() == static_cast<int>(errc::not_found));
}

TEST_CASE("a connection closing answers each request in flight once, unavailable, without waiting for deadlines") {
  nats_server server;
  auto keep = connect(server.url());
  holder silent{*keep, "held"};
  constexpr int count = 50;
  std::vector<answered> answers(count);
  {
    auto conn = connect(server.url());
    for (auto& a : answers) conn->request_async("held", "x", 120s, a.callback());
    AETHER_EVENTUALLY(silent.taken() == count, 10s);
    CHECK(conn->async_requests_pending() == count);
    const auto started = std::chrono::steady_clock::now();
    conn.reset();
    CHECK(std::chrono::steady_clock::now() - started < 60s);
  }
  for (auto& a : answers) {
    REQUIRE(a.count.load() == 1);
    CHECK(a.code.load() == static_cast<int>(errc::unavailable));
  }
  silent.answer(*keep, "late"); // reaches nobody
  std::this_thread::sleep_for(100ms);
  for (auto& a : answers) CHECK(a.count.load() == 1);
}

TEST_CASE("a request to a dead server is answered with a typed error at its deadline") {
  nats_server server;
  aether::nats::connect_options o;
  o.url = server.url();
  auto c = aether::nats::connection::connect(o);
  REQUIRE(c);
  auto conn = *c;
  holder silent{*conn, "gone"};
  answered before; // in flight when the server dies
  conn->request_async("gone", "x", 1s, before.callback());
  AETHER_EVENTUALLY(silent.taken() == 1, 10s);
  server.kill();
  answered after; // sent while the client reconnects
  conn->request_async("gone", "y", 1s, after.callback());
  AETHER_EVENTUALLY(before.count.load() == 1 && after.count.load() == 1, 20s);
  for (const auto* a : {&before, &after}) {
    const auto code = a->code.load();
    CHECK((code == static_cast<int>(errc::unavailable) || code == static_cast<int>(errc::timeout)));
  }
}

TEST_CASE("an asynchronous read of a stream's last message through its leader: message, headers, not_found") {
  nats_server server;
  auto conn = connect(server.url());
  aether::nats::stream_config config;
  config.name = "ASYNC_GET";
  config.subjects = {"ag.>"};
  REQUIRE(conn->ensure_stream(config));
  // Bytes that base64 pads differently, and a header.
  const std::vector<std::string> payloads{"a", "ab", "abc", std::string{"\0\xff\r\n{}", 6}};
  for (const auto& data : payloads) {
    const aether::nats::header h[] = {{"Aether-Last-Version", "7"}};
    auto seq = conn->stream_publish("ag.one", data, h);
    REQUIRE(seq);
    answered a;
    std::uint64_t sequence = 0;
    std::string header;
    std::string subject;
    conn->leader_get_last_async("ASYNC_GET", "ag.one", 10s, [&](aether::expected<aether::nats::message> m) {
      if (m) {
        sequence = m->sequence;
        header = std::string{m->header("Aether-Last-Version").value_or("")};
        subject = m->subject;
      }
      a.callback()(std::move(m));
    });
    AETHER_EVENTUALLY(a.count.load() == 1, 10s);
    REQUIRE(a.code.load() == -1);
    CHECK(a.got() == data);
    CHECK(sequence == *seq);
    CHECK(header == "7");
    CHECK(subject == "ag.one");
  }
  answered none;
  conn->leader_get_last_async("ASYNC_GET", "ag.two", 10s, none.callback());
  AETHER_EVENTUALLY(none.count.load() == 1, 10s);
  CHECK(none.code.load() == static_cast<int>(errc::not_found));
  answered no_stream;
  conn->leader_get_last_async("NO_SUCH_STREAM", "ag.one", 10s, no_stream.callback());
  AETHER_EVENTUALLY(no_stream.count.load() == 1, 10s);
  CHECK(no_stream.code.load() == static_cast<int>(errc::not_found));
}
