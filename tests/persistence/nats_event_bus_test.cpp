// What only the NATS bus does: durable subscriptions, bad messages from the
// wire, a dead server, and a three-server cluster.
#include "bus_fixtures.hpp"
#include "support/error_collector.hpp"

#include "support/eventually.hpp"
#include "support/nats_server.hpp"

#include <fmt/format.h>

#include <array>
#include <latch>
#include <thread>

using aether::errc;
using test::bus_event;
using test::collector;
using namespace std::chrono_literals;

namespace {

aether::subscribe_options durable(std::string name, std::size_t buffer = 4096) {
  aether::subscribe_options o;
  o.durable = std::move(name);
  o.buffer = buffer;
  return o;
}

/// `type/key:version` of each event, in delivery order.
std::vector<std::string> history(collector& c) {
  std::vector<std::string> out;
  for (const auto& e : c.events()) out.push_back(fmt::format("{}/{}:{}", e.actor.type(), e.actor.key(), e.version));
  return out;
}

std::uint64_t ack_floor(aether::nats::connection& conn, std::string_view stream, std::string_view name) {
  auto state = conn.consumer(stream, name);
  return state ? state->ack_floor : 0;
}

std::vector<std::string> range(std::string_view actor, int from, int to) {
  std::vector<std::string> out;
  for (int v = from; v <= to; ++v) out.push_back(fmt::format("{}:{}", actor, v));
  return out;
}

/// Where a delivered history first differs from the expected one, for a
/// failure's message.
std::string first_difference(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "none";
  const auto at = [](const std::vector<std::string>& v, std::size_t k) { return k < v.size() ? v[k] : "(end)"; };
  return fmt::format("{} delivered, {} expected; at {}: got {} then {}, expected {}", got.size(), want.size(), i,
                     at(got, i), at(got, i + 1), at(want, i));
}

/// Writes to one actor on a three-server cluster while servers die: a
/// store and bus on R3 over a connection to every server, and a thread
/// appending up to `total` versions, settling unknown outcomes by reading.
struct r3_writes {
  r3_writes(aether::testing::nats_cluster& cluster, aether::executor& pool, aether::actor_id a, std::uint64_t n)
      : actor{std::move(a)}, total{n} {
    conn = test::connect(cluster.urls());
    bus = test::open_bus(pool, conn, 3);
    aether::jetstream_store_options o;
    o.origin = bus->origin();
    o.replicas = 3;
    o.ack_timeout = 250ms;
    o.max_attempts = 8;
    store = test::open_store(conn, o);
    test::watch(*store, bus);
    REQUIRE(store->append_wait(actor, 0, {test::make_event("opened")})); // creates the R3 stream
  }
  ~r3_writes() {
    stop = true;
    if (load.joinable()) load.join();
    bus->close();
  }

  void start() {
    load = std::thread{[this] {
      std::uint64_t version = 1;
      while (version < total && !stop.load()) {
        auto r = store->append_wait(actor, version, {test::make_event("deposited")});
        if (r) {
          version = r->last_version;
        } else if (auto latest = store->latest_version_wait(actor)) {
          version = *latest; // an unknown outcome, settled by reading
        } else {
          std::this_thread::sleep_for(50ms); // a back-off while the cluster elects a leader
        }
        written = version;
      }
    }};
  }

  /// Waits until every version is written, then writes a marked event:
  /// once `kept` got it, nothing else is on its way. `kept` then holds
  /// every version, once each and in order.
  void check_delivered(collector& kept) {
    AETHER_EVENTUALLY(written.load() == total, 90s);
    auto last = test::make_event("sentinel");
    last.metadata["sentinel"] = "end";
    aether::expected<aether::append_result> marked = aether::error{errc::unavailable};
    AETHER_EVENTUALLY((marked = store->append_wait(aether::actor_id{"account", "end", "bank"}, 0, {last})) ||
                          marked.error().code() == errc::version_conflict,
                      60s);
    REQUIRE(kept.wait_sentinel("end", 90s));
    const auto got = history(kept);
    const auto want = range(fmt::format("{}/{}", actor.type(), actor.key()), 1, static_cast<int>(total));
    CHECK_MESSAGE(got == want, first_difference(got, want));
  }

  const aether::actor_id actor;
  const std::uint64_t total;
  std::shared_ptr<aether::nats::connection> conn;
  std::shared_ptr<aether::nats_event_bus> bus;
  std::shared_ptr<aether::event_store> store;
  std::atomic<std::uint64_t> written{1};
  std::atomic<bool> stop{false};
  std::thread load;
};

} // namespace

TEST_CASE("a durable subscriber gets what it missed while away, in order, and nothing it acknowledged again") {
  test::nats_bus_across_nodes b;
  const aether::actor_id a{"account", "a1", "bank"};
  // The first subscription creates the consumer; the namespace's stream starts empty.
  collector first;
  {
    auto sub = b.sub().subscribe("bank", {}, first.handler(), durable("ledger"));
    REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
    for (std::uint64_t v = 0; v < 10; ++v) REQUIRE(b.store->append_wait(a, v, {test::make_event("deposited")}));
    REQUIRE(first.wait_for(10));
  }
  CHECK(history(first) == range("account/a1", 1, 10));
  // Away: persisted events and published ones pile up in the stream.
  for (std::uint64_t v = 10; v < 20; ++v) {
    REQUIRE(b.store->append_wait(a, v, {test::make_event("deposited")}));
    auto note = bus_event("bank", "auditor", "x", "noted");
    note.version = v + 1;
    REQUIRE(b.bus->publish("bank", note));
  }
  // Published events reach the stream asynchronously: let them land.
  AETHER_EVENTUALLY(b.conn->stream_message_count("bank_events").value_or(0) == 30, 30s);
  collector second;
  auto sub = b.sub().subscribe("bank", {}, second.handler(), durable("ledger"));
  REQUIRE(sub);
  REQUIRE(second.wait_for(20));
  b.sync("bank", {}, {&second});
  std::vector<std::string> accounts;
  std::vector<std::string> notes;
  for (const auto& h : history(second)) (h.starts_with("account") ? accounts : notes).push_back(h);
  CHECK(accounts == range("account/a1", 11, 20));
  CHECK(notes == range("auditor/x", 11, 20));
  CHECK(second.size() == 20);
  // Stream order is the order they were stored: each one's sequence is higher.
  const auto events = second.events();
  for (std::size_t i = 1; i < events.size(); ++i) CHECK(events[i - 1].sequence < events[i].sequence);
}

TEST_CASE("a durable subscription filters, and what it filters out still counts as acknowledged") {
  test::nats_bus_across_nodes b;
  const aether::actor_id a{"order", "o1", "shop"};
  collector got;
  {
    auto sub = b.sub().subscribe("shop", {{"shipped"}, ""}, got.handler(), durable("shipping"));
    REQUIRE(sub);
    REQUIRE(b.store->append_wait(a, 0, {test::make_event("placed"), test::make_event("paid")}));
    REQUIRE(b.store->append_wait(a, 2, {test::make_event("shipped")}));
    REQUIRE(b.store->append_wait(a, 3, {test::make_event("delivered")}));
    REQUIRE(got.wait_for(1));
    // The last write is filtered out, and acknowledged all the same.
    AETHER_EVENTUALLY(ack_floor(*b.conn, "shop_events", "shipping") == 3, 30s);
  }
  CHECK(history(got) == std::vector<std::string>{"order/o1:3"});
  // Everything up to the last write was acknowledged, the filtered ones too.
  CHECK(ack_floor(*b.conn, "shop_events", "shipping") == 3);
  collector again;
  auto sub = b.sub().subscribe("shop", {{"shipped"}, ""}, again.handler(), durable("shipping"));
  REQUIRE(sub);
  b.sync("shop", {{"shipped"}, ""}, {&again});
  CHECK(again.size() == 0);
}

TEST_CASE("a durable subscription never drops: the server waits for a slow handler") {
  test::nats_bus_across_nodes b;
  const aether::actor_id a{"account", "slow", "bank"};
  std::atomic<int> handled{0};
  auto sub = b.sub().subscribe(
      "bank", {},
      [&](const aether::event&) {
        std::this_thread::sleep_for(1ms);
        handled.fetch_add(1);
      },
      durable("slow", 4));
  REQUIRE(sub);
  for (std::uint64_t v = 0; v < 100; ++v) REQUIRE(b.store->append_wait(a, v, {test::make_event("deposited")}));
  AETHER_EVENTUALLY(handled.load() == 100, 60s);
  CHECK(sub->dropped() == 0);
}

TEST_CASE("durable subscriptions need one namespace and a plain name") {
  test::nats_bus b;
  auto noop = [](const aether::event&) {};
  for (const char* pattern : {"*", ">", "bank.*", "*.eu", "bank.>"}) {
    auto s = b.bus->subscribe(pattern, {}, noop, durable("ledger"));
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::invalid_argument);
  }
  for (const std::string& name : std::vector<std::string>{"a.b", "a b", "a*", "a>", std::string(65, 'x')}) {
    auto s = b.bus->subscribe("bank", {}, noop, durable(name));
    INFO("durable name '", name, "'");
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::invalid_argument);
  }
}

TEST_CASE("a hierarchical namespace has a stream of its own: a durable subscriber reads exactly its events") {
  test::nats_bus b;
  const std::vector<std::string> namespaces{"acme.billing", "acme_billing", "acme", "acme.billing.eu", "acme-billing"};
  for (const auto& ns : namespaces) {
    const aether::actor_id a{"account", "a1", ns};
    REQUIRE(b.store->append_wait(a, 0, {test::make_event("opened"), test::make_event(ns)}));
    REQUIRE(b.bus->publish(ns, bus_event(ns, "notice", "n1", ns)));
  }
  // Each namespace's stream holds its own write and publish, nobody else's.
  for (const auto& [ns, stream] :
       std::vector<std::pair<std::string, std::string>>{{"acme.billing", "acme__billing-events"},
                                                        {"acme_billing", "acme_billing_events"},
                                                        {"acme", "acme_events"},
                                                        {"acme.billing.eu", "acme__billing__eu-events"},
                                                        {"acme-billing", "acme-billing_events"}}) {
    INFO(ns);
    AETHER_EVENTUALLY(b.conn->stream_message_count(stream).value_or(0) == 2, 30s);
  }
  collector got;
  auto sub = b.bus->subscribe("acme.billing", {}, got.handler(), durable("books"));
  REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
  REQUIRE(got.wait_for(3));
  b.sync("acme.billing", {}, {&got}, true);
  CHECK(got.names() ==
        std::vector<std::string>{"account/a1:acme.billing", "account/a1:opened", "notice/n1:acme.billing"});
  for (const auto& e : got.events()) CHECK(e.actor.ns() == "acme.billing");
}

TEST_CASE("a durable name has one subscriber at a time: others get in_use until it ends") {
  test::nats_bus_across_nodes b;
  const aether::actor_id a{"account", "a1", "bank"};
  collector holder;
  auto held = b.sub().subscribe("bank", {}, holder.handler(), durable("ledger"));
  REQUIRE_MESSAGE(held, (held ? "" : held.error().to_string()));
  REQUIRE(b.store->append_wait(a, 0, {test::make_event("opened")}));
  REQUIRE(holder.wait_for(1));
  // Another node, and the holder's own, are both refused; the holder goes on.
  for (auto* bus : {b.peer.get(), b.bus.get()}) {
    auto other = bus->subscribe(
        "bank", {}, [](const aether::event&) {}, durable("ledger"));
    REQUIRE_FALSE(other);
    CHECK(other.error().code() == errc::in_use);
  }
  REQUIRE(b.store->append_wait(a, 1, {test::make_event("deposited")}));
  REQUIRE(holder.wait_for(2));
  CHECK(history(holder) == range("account/a1", 1, 2));
  // Once it ends, the name is free, and the next holder goes on after it.
  held->unsubscribe();
  REQUIRE(b.store->append_wait(a, 2, {test::make_event("deposited")}));
  collector next;
  auto taken = b.bus->subscribe("bank", {}, next.handler(), durable("ledger"));
  REQUIRE_MESSAGE(taken, (taken ? "" : taken.error().to_string()));
  REQUIRE(next.wait_for(1));
  CHECK(history(next) == range("account/a1", 3, 3));
  CHECK(holder.size() == 2);
  // Two nodes asking for a fresh name at once: one gets it, every time.
  for (int round = 0; round < 10; ++round) {
    CAPTURE(round);
    const auto name = "audit-" + std::to_string(round);
    std::array<aether::expected<aether::event_subscription>, 2> racers{aether::error{errc::io_error},
                                                                       aether::error{errc::io_error}};
    std::latch start{2};
    std::thread other{[&] {
      start.arrive_and_wait();
      racers[1] = b.peer->subscribe(
          "bank", {}, [](const aether::event&) {}, durable(name));
    }};
    start.arrive_and_wait();
    racers[0] = b.bus->subscribe(
        "bank", {}, [](const aether::event&) {}, durable(name));
    other.join();
    CHECK(static_cast<bool>(racers[0]) != static_cast<bool>(racers[1]));
    for (const auto& r : racers) {
      if (!r) CHECK_MESSAGE(r.error().code() == errc::in_use, r.error().to_string());
    }
  }
}

TEST_CASE("a message on a bus subject that does not decode is reported, and the subscription goes on") {
  test::nats_bus_across_nodes b;
  collector got;
  test::error_collector errors;
  aether::subscribe_options o;
  o.on_error = errors.callback();
  auto sub = b.sub().subscribe("shop", {}, got.handler(), o);
  REQUIRE(sub);
  REQUIRE(b.conn->publish("aether_bus.pub.order.o1.1.shop", "{not json"));
  REQUIRE(b.conn->publish("aether_bus.pub.order.o1.x.shop", "[]"));
  REQUIRE(b.bus->publish("shop", bus_event("shop", "order", "o1", "placed")));
  REQUIRE(got.wait_for(1));
  b.sync("shop", {}, {&got});
  CHECK(got.size() == 1);
  REQUIRE(errors.size() == 2);
  CHECK(errors.count(errc::malformed_payload) == 2);
}

TEST_CASE("with the server gone, subscribing fails with a typed error and nothing hangs") {
  test::nats_bus b;
  b.server.kill();
  // Each call answers within a bound (the bus's own waits are a few seconds).
  const auto bounded = [](auto call) {
    const auto start = std::chrono::steady_clock::now();
    auto r = call();
    CHECK(std::chrono::steady_clock::now() - start < 30s);
    return r;
  };
  auto live = bounded([&] { return b.bus->subscribe("shop", {}, [](const aether::event&) {}); });
  REQUIRE_FALSE(live);
  CHECK(live.error().code() == errc::unavailable);
  auto kept = bounded([&] {
    return b.bus->subscribe(
        "shop", {}, [](const aether::event&) {}, durable("ledger"));
  });
  REQUIRE_FALSE(kept);
  CHECK(kept.error().code() == errc::unavailable);
}

TEST_CASE("publishing while the server is down or restarting never blocks, and publishing goes on after") {
  test::nats_bus_across_nodes b;
  b.server.kill();
  // Down: a publish answers at once, with success (buffered for the
  // reconnect, or live only) or a typed error; local subscribers get it.
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = b.bus->publish("shop", bus_event("shop", "order", "down", "placed"));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    if (!r) CHECK_MESSAGE(r.error().code() == errc::unavailable, r.error().to_string());
  }
  b.server.restart();
  // Back: both nodes' connections return, and what one publishes reaches
  // the other's subscriber through the server again.
  collector after;
  std::optional<aether::event_subscription> later;
  AETHER_EVENTUALLY(
      [&] {
        auto s = b.sub().subscribe("shop", {{"after"}, ""}, after.handler());
        if (s) later.emplace(std::move(*s));
        return s.has_value();
      }(),
      60s);
  AETHER_EVENTUALLY(b.bus->publish("shop", bus_event("shop", "order", "up", "after")) && after.wait_for(1, 1s), 60s);
  CHECK(after.events().front().actor.key() == "up");
}

TEST_CASE("on a three-server cluster, events cross servers and a durable subscriber catches up on R3") {
  aether::testing::nats_cluster cluster{3};
  aether::thread_pool_executor pool{2, 8};
  auto writer_conn = test::connect(cluster.server(0).url());
  auto reader_conn = test::connect(cluster.server(2).url());
  auto writer = test::open_bus(pool, writer_conn, 3);
  auto reader = test::open_bus(pool, reader_conn, 3);
  auto store = test::open_watched_store(writer_conn, writer, 3);
  const aether::actor_id a{"account", "r3", "bank"};
  REQUIRE(store->append_wait(a, 0, {test::make_event("opened")})); // creates the R3 stream

  collector live;
  collector kept;
  auto live_sub = reader->subscribe("bank", {}, live.handler());
  REQUIRE(live_sub);
  {
    auto sub = reader->subscribe("bank", {}, kept.handler(), durable("ledger"));
    REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
    REQUIRE(kept.wait_for(1));
  }
  for (std::uint64_t v = 1; v < 20; ++v) REQUIRE(store->append_wait(a, v, {test::make_event("deposited")}));
  REQUIRE(live.wait_for(19));
  CHECK(history(live) == range("account/r3", 2, 20));
  auto sub = reader->subscribe("bank", {}, kept.handler(), durable("ledger"));
  REQUIRE(sub);
  REQUIRE(kept.wait_for(20));
  // A last write, marked: once it is in, nothing else is on its way.
  auto last = test::make_event("sentinel");
  last.metadata["sentinel"] = "end";
  REQUIRE(store->append_wait(aether::actor_id{"account", "end", "bank"}, 0, {last}));
  REQUIRE(kept.wait_sentinel("end"));
  CHECK(history(kept) == range("account/r3", 1, 20));
  sub->unsubscribe();
  live_sub->unsubscribe();
  reader->close();
  writer->close();
  pool.stop();
  pool.join();
}

TEST_CASE("on a three-server cluster, a durable subscriber on R3 goes on in order with nothing lost when the "
          "server it is connected to is killed under write load") {
  aether::testing::nats_cluster cluster{3};
  aether::thread_pool_executor pool{2, 8};
  {
    r3_writes writes{cluster, pool, aether::actor_id{"account", "own", "bank"}, 400};
    // The subscriber knows one server only (it learns the others from it)
    // and the writer keeps writing while that server dies: what was on its
    // way to the subscriber when it died must still come, in order (the
    // consumer counts it delivered, and an acknowledgement of anything after
    // it would cover it too).
    const std::size_t victim = 1;
    auto reader_conn = test::connect(cluster.server(victim).url());
    auto reader = test::open_bus(pool, reader_conn, 3);
    collector kept;
    auto sub = reader->subscribe("bank", {}, kept.handler(), durable("ledger", 64));
    REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
    writes.start();
    REQUIRE(kept.wait_for(100, 60s));
    cluster.server(victim).kill();
    writes.check_delivered(kept);
    sub->unsubscribe();
    reader->close();
  }
  pool.stop();
  pool.join();
}

TEST_CASE("on a three-server cluster, a durable subscriber on R3 goes on in order with nothing lost when the "
          "stream's leader is killed") {
  aether::testing::nats_cluster cluster{3};
  aether::thread_pool_executor pool{2, 8};
  {
    r3_writes writes{cluster, pool, aether::actor_id{"account", "r3", "bank"}, 300};
    // The reader knows every server and fails over.
    auto reader_conn = test::connect(cluster.urls());
    auto reader = test::open_bus(pool, reader_conn, 3);
    collector kept;
    auto sub = reader->subscribe("bank", {}, kept.handler(), durable("ledger", 64));
    REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
    writes.start();
    REQUIRE(kept.wait_for(50, 60s));
    std::optional<std::size_t> leader;
    AETHER_EVENTUALLY((leader = cluster.stream_leader("bank_events")).has_value(), 30s);
    cluster.server(*leader).kill();
    writes.check_delivered(kept);
    sub->unsubscribe();
    reader->close();
  }
  pool.stop();
  pool.join();
}
