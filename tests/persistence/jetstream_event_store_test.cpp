// What only the JetStream store has to prove: the fence across connections
// and servers, lost acknowledgements, corrupt bytes, server restarts.
#include "store_fixtures.hpp"

#include <atomic>
#include <barrier>
#include <fmt/format.h>

#include <future>
#include <map>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using test::make_event;

namespace {

/// Two writers, each with its own connection and store, race for version 1
/// of a fresh actor per trial. Returns the trials without exactly one
/// winner, described ("win/conflict", or the error).
std::vector<std::string> race(aether::event_store& left, aether::event_store& right, const std::string& prefix,
                              int trials) {
  std::barrier sync{2};
  std::vector<std::string> outcomes(2 * static_cast<std::size_t>(trials));
  auto writer = [&](aether::event_store& store, int side) {
    for (int t = 0; t < trials; ++t) {
      const actor_id a{"race", prefix + std::to_string(t)};
      sync.arrive_and_wait();
      auto r = store.append_wait(a, 0, {make_event("claimed", std::to_string(side))});
      outcomes[static_cast<std::size_t>(2 * t + side)] =
          r ? "win" : (r.error().code() == errc::version_conflict ? "conflict" : r.error().to_string());
    }
  };
  std::thread a{writer, std::ref(left), 0};
  std::thread b{writer, std::ref(right), 1};
  a.join();
  b.join();
  std::vector<std::string> broken;
  for (int t = 0; t < trials; ++t) {
    const auto& x = outcomes[static_cast<std::size_t>(2 * t)];
    const auto& y = outcomes[static_cast<std::size_t>(2 * t + 1)];
    const bool one_winner = (x == "win" && y == "conflict") || (x == "conflict" && y == "win");
    if (!one_winner) broken.push_back(fmt::format("trial {}: {} / {}", t, x, y));
  }
  return broken;
}

} // namespace

TEST_CASE("two connections racing for the same versions of an R1 stream: one winner in each of 200 trials") {
  aether::testing::nats_server server;
  auto left = test::open_store(test::connect(server.url()));
  auto right = test::open_store(test::connect(server.url()));
  const auto broken = race(*left, *right, "r1-", 200);
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
}

TEST_CASE("writers on different servers of a cluster racing on an R3 stream: one winner in each of 200 trials") {
  aether::testing::nats_cluster cluster{3};
  aether::jetstream_store_options o;
  o.replicas = 3;
  auto left = test::open_store(test::connect(cluster.server(0).url()), o);
  auto right = test::open_store(test::connect(cluster.server(1).url()), o);
  REQUIRE(left->prepare("default"));
  const auto broken = race(*left, *right, "r3-", 200);
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
  // Every trial left exactly one event, readable through the third server.
  auto reader = test::open_store(test::connect(cluster.server(2).url()), o);
  for (int t = 0; t < 200; t += 37) {
    auto events = reader->read_wait(actor_id{"race", "r3-" + std::to_string(t)});
    REQUIRE(events);
    CHECK(events->size() == 1);
  }
}

TEST_CASE("a write whose acknowledgement is late is sent again and stored once") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 200ms;
  o.max_attempts = 10;
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "late"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));

  server.pause(); // the server takes the bytes but answers nothing
  std::promise<aether::expected<aether::append_result>> done;
  store->append(a, 1, {make_event("deposited", "1")},
                [&](aether::expected<aether::append_result> r) { done.set_value(std::move(r)); });
  auto result = done.get_future();
  CHECK(result.wait_for(700ms) == std::future_status::timeout); // at least three sends by now
  server.resume();
  auto r = result.get();
  REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  CHECK(r->first_version == 2);
  CHECK(*conn->stream_message_count(aether::jetstream_event_store::stream_name("default")) == 2);
  CHECK(store->read_wait(a)->size() == 2);
}

TEST_CASE("a write that is never acknowledged is reported as not stored, truthfully") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 100ms;
  o.max_attempts = 2;
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "lost"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
  server.pause();
  auto r = store->append_wait(a, 1, {make_event("deposited")});
  server.resume();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::unavailable);
  // Whatever the server did with the bytes, the store now tells the truth:
  // either the write is there as version 2, or version 2 is free.
  const auto latest = *store->latest_version_wait(a);
  CHECK((latest == 1 || latest == 2));
  auto again = store->append_wait(a, latest, {make_event("deposited")});
  REQUIRE(again);
  CHECK(again->first_version == latest + 1);
}

TEST_CASE("a corrupt stored event stops a read with replay_failed naming actor, version and sequence") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  auto store = test::open_store(conn);
  const actor_id a{"account", "corrupt"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
  // Someone writes garbage where version 2 belongs.
  const aether::nats::header last[] = {{"Aether-Last-Version", "2"}};
  auto ack = conn->request(aether::jetstream_event_store::subject(a, 2), "{not json", 5s, last);
  REQUIRE(ack);
  auto r = store->read_wait(a);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::replay_failed);
  CHECK(r.error().value() == 2);
  CHECK(r.error().detail().find("default/account/corrupt") != std::string::npos);
  CHECK(r.error().detail().find("version 2") != std::string::npos);
  CHECK(r.error().detail().find("stream sequence 2") != std::string::npos);
  // What came before is still there, untouched.
  CHECK(store->read_wait(a, 1).error().code() == errc::replay_failed);
  CHECK(*store->latest_version_wait(a) == 2);
}

TEST_CASE("an oversized append is refused before anything is sent") {
  aether::testing::nats_server server;
  auto store = test::open_store(test::connect(server.url()));
  const actor_id a{"account", "big"};
  const std::string huge = "\"" + std::string(2 * 1024 * 1024, 'x') + "\"";
  auto r = store->append_wait(a, 0, {make_event("blob", huge)});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::payload_too_large);
  CHECK(*store->latest_version_wait(a) == 0);
}

TEST_CASE("a server killed and restarted mid-load loses nothing that was acknowledged") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 500ms;
  o.max_attempts = 20; // keep trying across the restart
  auto store = test::open_store(conn, o);
  REQUIRE(store->prepare("default"));

  std::mutex mutex;
  std::map<std::string, std::uint64_t> acknowledged; // actor key -> last acknowledged version
  std::atomic<bool> stop{false};
  std::atomic<int> acks{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      const actor_id a{"load", "w" + std::to_string(w)};
      std::uint64_t version = 0;
      while (!stop.load()) {
        auto r = store->append_wait(a, version, {make_event("tick", std::to_string(version + 1))});
        if (r) {
          version = r->last_version;
          acks.fetch_add(1);
          std::lock_guard lock{mutex};
          acknowledged[std::string{a.key()}] = version;
        } else if (r.error().code() == errc::version_conflict) {
          version = r.error().value(); // an unacknowledged write of ours landed after all
        }
      }
    });
  }
  auto wait_for_acks = [&](int n) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (acks.load() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    REQUIRE(acks.load() >= n);
  };
  wait_for_acks(200);
  server.kill();
  server.restart();
  const int before = acks.load();
  wait_for_acks(before + 200); // reconnected and writing again
  stop = true;
  for (auto& t : writers) t.join();

  for (const auto& [key, version] : acknowledged) {
    auto events = store->read_wait(actor_id{"load", key});
    REQUIRE(events);
    CHECK(events->size() >= version);
    for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == i + 1);
  }
}

TEST_CASE("a long history is read whole: past the writes read by subject a consumer goes on without a gap") {
  aether::testing::nats_server server;
  auto store = test::open_store(test::connect(server.url()));
  for (const std::size_t per_write : {std::size_t{1}, std::size_t{100}}) {
    const actor_id a{"ledger", "long-" + std::to_string(per_write)};
    std::uint64_t version = 0;
    for (int w = 0; w < 60; ++w) {
      std::vector<aether::event> batch;
      for (std::size_t i = 0; i < per_write; ++i) batch.push_back(make_event("entry", std::to_string(version + i + 1)));
      auto r = store->append_wait(a, version, std::move(batch));
      REQUIRE(r);
      version = r->last_version;
    }
    for (const std::uint64_t from : {std::uint64_t{1}, version / 2}) {
      CAPTURE(per_write);
      CAPTURE(from);
      auto events = store->read_wait(a, from);
      REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
      REQUIRE(events->size() == version - from + 1);
      for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == from + i);
    }
  }
}

TEST_CASE("one actor's pipelined appends are stored in order, whichever connection they leave on") {
  aether::testing::nats_server server;
  aether::nats::connect_options quick;
  quick.url = server.url();
  quick.send_asap = true;
  auto store = test::open_store(test::connect(server.url()), {}, *aether::nats::connection::connect(quick));
  const actor_id a{"ledger", "pipelined"};
  constexpr int writes = 200;
  std::atomic<int> acked{0};
  std::promise<void> all;
  for (int w = 0; w < writes; ++w) {
    store->append(a, static_cast<std::uint64_t>(w), {make_event("entry", std::to_string(w + 1))},
                  [&](aether::expected<aether::append_result> r) {
                    CHECK(r);
                    if (acked.fetch_add(1) + 1 == writes) all.set_value();
                  });
  }
  REQUIRE(all.get_future().wait_for(60s) == std::future_status::ready);
  auto events = store->read_wait(a);
  REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
  REQUIRE(events->size() == writes);
  for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == i + 1);
}
