// One conformance suite, run against the local bus and the NATS bus.
#include "bus_fixtures.hpp"
#include "support/error_collector.hpp"
#include "support/eventually.hpp"

#include <aether/actors/actor_system.hpp>

#include <fmt/format.h>

#include <atomic>
#include <latch>
#include <set>
#include <thread>

using aether::errc;
using aether::event_filter;
using test::bus_event;
using test::collector;
using namespace std::chrono_literals;

#define BUSES test::local_bus, test::nats_bus, test::nats_bus_across_nodes

TEST_CASE_TEMPLATE("an exact subscriber gets what is published to its namespace, whole and in order", B, BUSES) {
  B b;
  collector got;
  auto sub = b.sub().subscribe("orders", {}, got.handler());
  REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
  for (int i = 0; i < 50; ++i) {
    auto e = bus_event("orders", "order", "o1", "placed", fmt::format(R"({{"n":{}}})", i));
    e.version = static_cast<std::uint64_t>(i + 1);
    e.metadata["correlation"] = "c-" + std::to_string(i);
    REQUIRE(b.bus->publish("orders", std::move(e)));
  }
  REQUIRE(got.wait_for(50));
  const auto events = got.events();
  for (int i = 0; i < 50; ++i) {
    const auto& e = events[static_cast<std::size_t>(i)];
    CHECK(e.data == fmt::format(R"({{"n":{}}})", i));
    CHECK(e.version == static_cast<std::uint64_t>(i + 1));
    CHECK(e.type == "placed");
    CHECK(e.actor == aether::actor_id{"order", "o1", "orders"});
    CHECK(e.metadata.at("correlation") == "c-" + std::to_string(i));
    CHECK_FALSE(e.id.empty());
    CHECK(e.timestamp_ns > 0);
  }
  b.sync("orders", {}, {&got});
  CHECK(got.size() == 50);
  CHECK(sub->delivered() == 50 + 1); // and the sentinel
}

TEST_CASE_TEMPLATE("namespace patterns: exact, '*' and '>' match, and nothing leaks across namespaces", B, BUSES) {
  B b;
  collector orders, payments, star, rest;
  auto s1 = b.sub().subscribe("orders", {}, orders.handler());
  auto s2 = b.sub().subscribe("payments", {}, payments.handler());
  auto s3 = b.sub().subscribe("*", {}, star.handler());
  auto s4 = b.sub().subscribe(">", {}, rest.handler());
  REQUIRE((s1 && s2 && s3 && s4));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed")));
  REQUIRE(b.bus->publish("payments", bus_event("payments", "payment", "p1", "paid")));
  REQUIRE(b.bus->publish("orders-eu", bus_event("orders-eu", "order", "o2", "placed")));
  REQUIRE(star.wait_for(3));
  REQUIRE(rest.wait_for(3));
  REQUIRE(orders.wait_for(1));
  REQUIRE(payments.wait_for(1));
  b.sync("orders", {}, {&orders, &star, &rest});
  b.sync("payments", {}, {&payments});
  CHECK(orders.names() == std::vector<std::string>{"order/o1:placed"});
  CHECK(payments.names() == std::vector<std::string>{"payment/p1:paid"});
  CHECK(star.names() == std::vector<std::string>{"order/o1:placed", "order/o2:placed", "payment/p1:paid"});
  CHECK(rest.names() == star.names());
}

TEST_CASE_TEMPLATE("hierarchical namespaces: every pattern gets exactly the namespaces NATS's rules match, published "
                   "and persisted",
                   B, BUSES) {
  B b;
  const auto& namespaces = test::adversarial_namespaces();
  const auto& patterns = test::matrix_patterns();
  std::vector<collector> got(patterns.size());
  std::vector<aether::event_subscription> subs;
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    auto s = b.sub().subscribe(patterns[i], {}, got[i].handler());
    REQUIRE_MESSAGE(s, patterns[i] << ": " << (s ? "" : s.error().to_string()));
    subs.push_back(std::move(*s));
  }
  // One published and one persisted event per namespace, each naming its
  // namespace in its key so that a leak shows which one leaked.
  for (std::size_t n = 0; n < namespaces.size(); ++n) {
    const auto& ns = namespaces[n];
    REQUIRE(b.bus->publish(ns, bus_event(ns, "pub", "n" + std::to_string(n), "published")));
    const aether::actor_id stored{"kept", "n" + std::to_string(n), ns};
    auto r = b.store->append_wait(stored, 0, {test::make_event("persisted")});
    REQUIRE_MESSAGE(r, ns << ": " << (r ? "" : r.error().to_string()));
  }
  // Each namespace's sentinels, published and persisted, behind its events.
  for (const auto& ns : namespaces) {
    std::vector<collector*> matching;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
      if (test::reference_match(patterns[i], ns)) matching.push_back(&got[i]);
    }
    for (const bool stored : {false, true}) b.sync(ns, {}, matching, stored);
  }
  std::size_t deliveries = 0;
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    std::vector<std::string> expected;
    for (std::size_t n = 0; n < namespaces.size(); ++n) {
      if (!test::reference_match(patterns[i], namespaces[n])) continue;
      expected.push_back("kept/n" + std::to_string(n) + ":persisted");
      expected.push_back("pub/n" + std::to_string(n) + ":published");
    }
    std::sort(expected.begin(), expected.end());
    std::vector<std::string> seen;
    for (const auto& e : got[i].events()) {
      seen.push_back(fmt::format("{}/{}:{}", e.actor.type(), e.actor.key(), e.type));
      CHECK_MESSAGE(test::reference_match(patterns[i], e.actor.ns()),
                    patterns[i] << " got an event of " << e.actor.ns());
    }
    std::sort(seen.begin(), seen.end());
    INFO("pattern '", patterns[i], "'");
    CHECK(seen == expected);
    deliveries += expected.size();
  }
  // The matrix is not trivial: patterns match some namespaces and miss others.
  CHECK(deliveries > 2 * namespaces.size());
}

TEST_CASE_TEMPLATE("seed C8: publish to 'orders', exact and wildcard subscribers get it, filters narrow it exactly", B,
                   BUSES) {
  B b;
  collector exact, star, all, placed, customer, both, deeper;
  auto s1 = b.sub().subscribe("orders", {}, exact.handler());
  auto s2 = b.sub().subscribe("*", {}, star.handler());
  auto s3 = b.sub().subscribe(">", {}, all.handler());
  auto s4 = b.sub().subscribe("orders", {{"OrderPlaced"}, ""}, placed.handler());
  auto s5 = b.sub().subscribe("orders", {{}, "order.customer-123"}, customer.handler());
  auto s6 = b.sub().subscribe("*", {{"OrderPlaced"}, "order.customer-123"}, both.handler());
  auto s7 = b.sub().subscribe("orders.>", {}, deeper.handler());
  REQUIRE((s1 && s2 && s3 && s4 && s5 && s6 && s7));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "customer-123", "OrderPlaced")));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "customer-123", "OrderShipped")));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "customer-456", "OrderPlaced")));
  REQUIRE(b.bus->publish("orders.eu", bus_event("orders.eu", "order", "customer-123", "OrderPlaced")));
  b.sync("orders", {}, {&exact, &star, &all});
  b.sync("orders", {{"OrderPlaced"}, ""}, {&placed});
  b.sync("orders", {{}, "order.customer-123"}, {&customer});
  b.sync("orders", {{"OrderPlaced"}, "order.customer-123"}, {&both});
  b.sync("orders.eu", {}, {&deeper, &all});
  const std::vector<std::string> three{"order/customer-123:OrderPlaced", "order/customer-123:OrderShipped",
                                       "order/customer-456:OrderPlaced"};
  CHECK(exact.names() == three);
  CHECK(star.names() == three);
  CHECK(all.names().size() == 4);
  CHECK(placed.names() == std::vector<std::string>{"order/customer-123:OrderPlaced", "order/customer-456:OrderPlaced"});
  CHECK(customer.names() ==
        std::vector<std::string>{"order/customer-123:OrderPlaced", "order/customer-123:OrderShipped"});
  CHECK(both.names() == std::vector<std::string>{"order/customer-123:OrderPlaced"});
  REQUIRE(deeper.names().size() == 1);
  CHECK(deeper.events()[0].actor.ns() == "orders.eu");
  for (const auto& e : exact.events()) CHECK(e.actor.ns() == "orders");
}

TEST_CASE_TEMPLATE("filters by event type and by actor pattern, alone and together", B, BUSES) {
  B b;
  struct expectation {
    event_filter filter;
    std::vector<std::string> names;
  };
  // Published: order/c1 placed+shipped, order/c2 placed, invoice/c1 sent.
  std::vector<expectation> cases{
      {{{"placed"}, ""}, {"order/c1:placed", "order/c2:placed"}},
      {{{"placed", "sent"}, ""}, {"invoice/c1:sent", "order/c1:placed", "order/c2:placed"}},
      {{{"cancelled"}, ""}, {}},
      {{{}, "order.c1"}, {"order/c1:placed", "order/c1:shipped"}},
      {{{}, "order.*"}, {"order/c1:placed", "order/c1:shipped", "order/c2:placed"}},
      {{{}, "order.>"}, {"order/c1:placed", "order/c1:shipped", "order/c2:placed"}},
      {{{}, "*.c1"}, {"invoice/c1:sent", "order/c1:placed", "order/c1:shipped"}},
      {{{}, "*.*"}, {"invoice/c1:sent", "order/c1:placed", "order/c1:shipped", "order/c2:placed"}},
      {{{}, ">"}, {"invoice/c1:sent", "order/c1:placed", "order/c1:shipped", "order/c2:placed"}},
      {{{}, "order.c3"}, {}},
      {{{"placed"}, "order.c1"}, {"order/c1:placed"}},
      {{{"sent"}, "order.*"}, {}},
  };
  std::vector<collector> got(cases.size());
  std::vector<aether::event_subscription> subs;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto s = b.sub().subscribe("shop", cases[i].filter, got[i].handler());
    REQUIRE_MESSAGE(s, (s ? "" : s.error().to_string()));
    subs.push_back(std::move(*s));
  }
  REQUIRE(b.bus->publish("shop", bus_event("shop", "order", "c1", "placed")));
  REQUIRE(b.bus->publish("shop", bus_event("shop", "order", "c1", "shipped")));
  REQUIRE(b.bus->publish("shop", bus_event("shop", "order", "c2", "placed")));
  REQUIRE(b.bus->publish("shop", bus_event("shop", "invoice", "c1", "sent")));
  for (std::size_t i = 0; i < cases.size(); ++i) b.sync("shop", cases[i].filter, {&got[i]});
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("filter ", i, ": actor pattern '", cases[i].filter.actor_pattern, "'");
    CHECK(got[i].names() == cases[i].names);
  }
}

TEST_CASE_TEMPLATE("persisted events reach subscribers once, in version order, with no publish of their own", B,
                   BUSES) {
  B b;
  collector got;
  auto sub = b.sub().subscribe("bank", {{}, "account.*"}, got.handler());
  REQUIRE(sub);
  const aether::actor_id a{"account", "a1", "bank"};
  REQUIRE(b.store->append_wait(a, 0, {test::make_event("opened"), test::make_event("deposited", "5")}));
  REQUIRE(b.store->append_wait(a, 2, {test::make_event("withdrawn", "2")}));
  REQUIRE(got.wait_for(3));
  b.sync("bank", {{}, "account.*"}, {&got}, true);
  const auto events = got.events();
  REQUIRE(events.size() == 3);
  CHECK(events[0].type == "opened");
  CHECK(events[1].data == "5");
  for (std::size_t i = 0; i < 3; ++i) CHECK(events[i].version == i + 1);
  // A stale writer's append stores nothing, so nothing reaches the bus.
  CHECK(b.store->append_wait(a, 0, {test::make_event("opened")}).error().code() == errc::version_conflict);
  b.sync("bank", {{}, "account.*"}, {&got}, true);
  CHECK(got.size() == 3);
}

TEST_CASE_TEMPLATE("dropping the handle ends the subscription", B, BUSES) {
  B b;
  collector got;
  collector witness; // stays subscribed throughout
  auto watching = b.sub().subscribe("orders", {}, witness.handler());
  REQUIRE(watching);
  {
    auto sub = b.sub().subscribe("orders", {}, got.handler());
    REQUIRE(sub);
    REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed")));
    REQUIRE(got.wait_for(1));
  }
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "shipped")));
  // "shipped" has reached every subscriber before the next one starts.
  b.sync("orders", {}, {&witness});
  CHECK(got.size() == 1);
  auto moved = b.sub().subscribe("orders", {}, got.handler());
  REQUIRE(moved);
  moved->unsubscribe();
  CHECK_FALSE(moved->active());
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "delivered")));
  b.sync("orders", {}, {&witness});
  CHECK(got.size() == 1);
}

TEST_CASE_TEMPLATE("handlers run one at a time, off the publisher's thread", B, BUSES) {
  B b;
  std::atomic<int> running{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> on_publisher{0};
  std::atomic<int> seen{0};
  const auto publisher = std::this_thread::get_id();
  auto sub = b.sub().subscribe("orders", {}, [&](const aether::event&) {
    if (running.fetch_add(1) != 0) overlaps.fetch_add(1);
    if (std::this_thread::get_id() == publisher) on_publisher.fetch_add(1);
    std::this_thread::sleep_for(50us);
    running.fetch_sub(1);
    seen.fetch_add(1);
  });
  REQUIRE(sub);
  std::vector<std::thread> publishers;
  for (int t = 0; t < 3; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i)
        (void)b.bus->publish("orders", bus_event("orders", "order", "o" + std::to_string(t), "placed"));
    });
  }
  for (int i = 0; i < 100; ++i) REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "main", "placed")));
  for (auto& p : publishers) p.join();
  AETHER_EVENTUALLY(seen.load() == 400, 30s);
  CHECK(overlaps.load() == 0);
  CHECK(on_publisher.load() == 0);
}

TEST_CASE_TEMPLATE("a slow subscriber's overflow is dropped, counted and reported, and the rest still arrive", B,
                   BUSES) {
  B b;
  std::latch release{1};
  std::atomic<int> handled{0};
  test::error_collector errors;
  aether::subscribe_options o;
  o.buffer = 8;
  o.on_error = errors.callback();
  auto sub = b.sub().subscribe(
      "orders", {},
      [&](const aether::event&) {
        if (handled.fetch_add(1) == 0) release.wait();
      },
      o);
  REQUIRE(sub);
  const auto publish = [&] { REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed"))); };
  // The handler holds the first event; the next 8 fill the buffer and the other 191 overflow, all in one burst.
  publish();
  AETHER_EVENTUALLY(handled.load() == 1, 30s);
  for (int i = 1; i < 200; ++i) publish();
  AETHER_EVENTUALLY(sub->dropped() == 191, 30s);
  release.count_down();
  AETHER_EVENTUALLY(handled.load() == 9, 30s);
  CHECK(sub->delivered() == 9);
  CHECK(sub->dropped() == 191);
  AETHER_EVENTUALLY(errors.size() > 0, 30s);
  const auto reported = errors.errors();
  CHECK(reported.front().code() == errc::mailbox_full);
  CHECK(reported.front().value() > 0);
  // Reported once per burst, not once per event.
  CHECK(reported.size() == 1);
}

TEST_CASE_TEMPLATE("invalid patterns, filters and events get typed errors and publish nothing", B, BUSES) {
  B b;
  collector got;
  auto all = b.sub().subscribe(">", {}, got.handler());
  REQUIRE(all);
  auto noop = [](const aether::event&) {};
  const std::string too_long = std::string(70, 'a') + ".b.>";
  const std::string hostile[] = {"",       "order*", "acme.>.x", "a..b", "*x",     ".acme", "acme.", "> ",
                                 ">.acme", "a.**",   "$sys",     "a b",  "a\r\nb", "a/b",   "zoë",   too_long};
  for (const auto& pattern : hostile) {
    auto s = b.sub().subscribe(pattern, {}, noop);
    INFO("namespace pattern '", pattern, "'");
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::invalid_argument);
    CHECK(s.error().detail().find("namespace pattern") != std::string::npos);
  }
  for (const char* actor : {"order", ">.c1", "order.c1.x", "order.c 1", "order.", ".c1", "or*der.c1"}) {
    auto s = b.sub().subscribe("orders", {{}, actor}, noop);
    INFO("actor pattern '", actor, "'");
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::invalid_argument);
  }
  auto empty_type = b.sub().subscribe("orders", {{""}, ""}, noop);
  REQUIRE_FALSE(empty_type);
  CHECK(empty_type.error().code() == errc::invalid_argument);

  aether::event anonymous;
  anonymous.type = "placed";
  CHECK(b.bus->publish("orders", anonymous).error().code() == errc::invalid_id);
  CHECK(b.bus->publish("orders", bus_event("payments", "order", "o1", "placed")).error().code() ==
        errc::invalid_argument);
  CHECK(b.bus->publish("or..ders", bus_event("orders", "order", "o1", "placed")).error().code() == errc::invalid_id);
  CHECK(b.bus->publish("orders.*", bus_event("orders", "order", "o1", "placed")).error().code() == errc::invalid_id);
  CHECK(b.bus->publish("orders.eu", bus_event("orders", "order", "o1", "placed")).error().code() ==
        errc::invalid_argument);
  CHECK(b.bus->publish("orders", bus_event("orders", "order", "o1", "")).error().code() == errc::invalid_argument);
  CHECK(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed", "{not json")).error().code() ==
        errc::malformed_payload);
  const std::string huge = "\"" + std::string(2u << 20, 'x') + "\"";
  CHECK(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed", huge)).error().code() ==
        errc::payload_too_large);
  b.sync("orders", {}, {&got});
  CHECK(got.size() == 0);
}

TEST_CASE_TEMPLATE("an actor can subscribe: events arrive as messages on its own turn", B, BUSES) {
  B b;
  struct projection : aether::actor {
    explicit projection(std::atomic<int>& count, std::atomic<int>& other, std::atomic<int>& off_turn) {
      // Counts every event it gets: the bus's type filter is what keeps "shipped" out.
      on([&count, &other, &off_turn](const aether::event& e, aether::context& ctx) {
        if (ctx.self() != aether::actor_id{"projection", "p1"}) off_turn.fetch_add(1); // on its own turn
        (e.type == "placed" ? count : other).fetch_add(1);
      });
    }
  };
  std::atomic<int> count{0};
  std::atomic<int> other{0};
  std::atomic<int> off_turn{0};
  aether::actor_system system{aether::system_config{}, b.pool};
  system.register_actor("projection",
                        [&](const aether::actor_id&) { return std::make_unique<projection>(count, other, off_turn); });
  auto sub = b.sub().subscribe("orders", {{"placed"}, ""}, system, aether::actor_id{"projection", "p1"});
  REQUIRE(sub);
  for (int i = 0; i < 20; ++i) REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "placed")));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o1", "shipped")));
  REQUIRE(b.bus->publish("orders", bus_event("orders", "order", "o2", "placed"))); // after "shipped", in order
  AETHER_EVENTUALLY(count.load() == 21, 30s);
  CHECK(other.load() == 0);
  CHECK(off_turn.load() == 0);
  sub->unsubscribe();
  aether::close_and_join(system, b.pool);
}

TEST_CASE_TEMPLATE("a closed bus ends its subscriptions and refuses publishes", B, BUSES) {
  B b;
  collector got;
  auto sub = b.sub().subscribe("orders", {}, got.handler());
  REQUIRE(sub);
  b.sub().close();
  b.bus->close();
  auto late = b.bus->publish("orders", bus_event("orders", "order", "o1", "placed"));
  REQUIRE_FALSE(late);
  CHECK(late.error().code() == errc::shutting_down);
  CHECK(b.sub().subscribe("orders", {}, got.handler()).error().code() == errc::shutting_down);
}

TEST_CASE("the local bus keeps no events, so it refuses durable subscriptions") {
  test::local_bus b;
  aether::subscribe_options o;
  o.durable = "projection";
  auto s = b.sub().subscribe(
      "orders", {}, [](const aether::event&) {}, o);
  REQUIRE_FALSE(s);
  CHECK(s.error().code() == errc::invalid_argument);
}
