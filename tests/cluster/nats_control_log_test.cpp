// The control log and heartbeats on a real nats-server.
#include "support/nats_connection.hpp"
#include "support/nats_server.hpp"

#include <aether/cluster/nats_control_log.hpp>
#include <aether/cluster/nats_heartbeat_transport.hpp>

#include <doctest/doctest.h>

#include <condition_variable>
#include <future>
#include <mutex>

using namespace std::chrono_literals;
using aether::testing::connect;

namespace {

aether::expected<std::uint64_t> append(aether::control_log& log, std::string subject, std::string data) {
  std::promise<aether::expected<std::uint64_t>> p;
  auto f = p.get_future();
  log.append(std::move(subject), std::move(data), [&p](aether::expected<std::uint64_t> r) { p.set_value(r); });
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  return f.get();
}

/// Collects what a follow delivers.
struct follower {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<aether::control_record> records;
  bool caught_up = false;

  aether::control_log_follower callbacks() {
    aether::control_log_follower f;
    f.on_record = [this](aether::control_record r) {
      std::lock_guard lock{mutex};
      records.push_back(std::move(r));
      cv.notify_all();
    };
    f.on_caught_up = [this] {
      std::lock_guard lock{mutex};
      caught_up = true;
      cv.notify_all();
    };
    return f;
  }
  template <class F>
  void wait(F done) {
    std::unique_lock lock{mutex};
    REQUIRE(cv.wait_for(lock, 10s, done));
  }
};

} // namespace

TEST_CASE("a subject is written once: the second append is a version conflict, and followers see one order") {
  aether::testing::nats_server server;
  auto log = aether::nats_control_log::open(connect(server.url()), {"t", 1, 1000});
  REQUIRE(log);
  follower early;
  auto f1 = (*log)->follow(early.callbacks());
  REQUIRE(f1);
  early.wait([&] { return early.caught_up; }); // an empty stream: caught up at once
  auto first = append(**log, "term.1", R"({"node":"a","incarnation":1})");
  REQUIRE(first);
  auto second = append(**log, "term.1", R"({"node":"b","incarnation":2})");
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == aether::errc::version_conflict);
  REQUIRE(append(**log, "term.2", R"({"node":"b","incarnation":2})"));

  follower late;
  auto f2 = (*log)->follow(late.callbacks());
  REQUIRE(f2);
  late.wait([&] { return late.caught_up && late.records.size() == 2; });
  early.wait([&] { return early.records.size() == 2; });
  for (auto* f : {&early, &late}) {
    CHECK(f->records[0].subject == "term.1");
    CHECK(f->records[0].data.find("\"a\"") != std::string::npos);
    CHECK(f->records[1].subject == "term.2");
    CHECK(f->records[0].sequence < f->records[1].sequence);
  }
}

TEST_CASE("heartbeats reach every subscriber, the sender included") {
  aether::testing::nats_server server;
  auto conn_a = connect(server.url());
  auto conn_b = connect(server.url());
  aether::nats_heartbeat_transport a{conn_a, "t"};
  aether::nats_heartbeat_transport b{conn_b, "t"};
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<aether::heartbeat> at_a, at_b;
  auto sa = a.subscribe([&](const aether::heartbeat& hb) {
    std::lock_guard lock{mutex};
    at_a.push_back(hb);
    cv.notify_all();
  });
  auto sb = b.subscribe([&](const aether::heartbeat& hb) {
    std::lock_guard lock{mutex};
    at_b.push_back(hb);
    cv.notify_all();
  });
  REQUIRE(sa);
  REQUIRE(sb);
  // The server has both subscriptions before anything is published.
  REQUIRE(conn_a->flush(5s));
  REQUIRE(conn_b->flush(5s));
  aether::heartbeat hb;
  hb.from = aether::member_id{"a", 0xfeedULL};
  hb.sequence = 7;
  hb.term = 3;
  hb.epoch = 9;
  REQUIRE(a.publish(hb));
  std::unique_lock lock{mutex};
  REQUIRE(cv.wait_for(lock, 10s, [&] { return !at_a.empty() && !at_b.empty(); }));
  for (const auto& got : {at_a.front(), at_b.front()}) {
    CHECK(got.from == hb.from);
    CHECK(got.sequence == 7);
    CHECK(got.term == 3);
    CHECK(got.epoch == 9);
  }
}
