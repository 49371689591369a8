// The bus's metrics: drops by namespace and reason, and a durable
// subscriber's lag read from its consumer, in the text a node's /metrics
// serves (promtool accepts it).
#include "bus_fixtures.hpp"

#include "support/eventually.hpp"
#include "support/prometheus_text.hpp"
#include "support/promtool.hpp"

#include <aether/runtime/metrics.hpp>

#include <fmt/format.h>

#include <atomic>
#include <latch>
#include <string>

using namespace std::chrono_literals;

using aether::testing::promtool_check;
using aether::testing::sample;

namespace {

std::string scrape(const aether::event_bus& bus) {
  aether::metric_sink sink;
  bus.collect(sink);
  return sink.text();
}

} // namespace

TEST_CASE("a subscriber that falls behind counts its drops by namespace and reason, never by actor") {
  aether::thread_pool_executor pool{1, 4};
  aether::local_event_bus bus{pool};
  std::latch release{1};
  aether::subscribe_options o;
  o.buffer = 1;
  auto held = bus.subscribe(
      "acme.>", {}, [&](const aether::event&) { release.wait(); }, o);
  REQUIRE(held);
  CHECK(scrape(bus).find("aether_bus_dropped_events_total") == std::string::npos);
  // The first event blocks the handler, the second fills the queue, the rest drop.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(bus.publish("acme.billing", test::bus_event("acme.billing", "invoice", fmt::format("i-{}", i), "issued")));
  }
  AETHER_EVENTUALLY(held->dropped() >= 8, 10s);
  const auto text = scrape(bus);
  CHECK(sample(text, R"(aether_bus_dropped_events_total{namespace="acme.billing",reason="subscriber_full"})") ==
        static_cast<double>(held->dropped()));
  CHECK(text.find("i-3") == std::string::npos); // no actor key in any label
  release.count_down();
  std::string said;
  CHECK_MESSAGE(promtool_check(text, said) == 0, said);
}

TEST_CASE("a durable subscriber's lag shows while its handler is stalled and goes back to 0 once it catches up") {
  test::nats_bus f;
  std::latch release{1};
  std::atomic<int> handled{0};
  aether::subscribe_options o;
  o.durable = "ledger";
  o.buffer = 2;
  auto sub = f.bus->subscribe(
      "acme", {},
      [&](const aether::event&) {
        release.wait();
        ++handled;
      },
      o);
  REQUIRE_MESSAGE(sub, (sub ? "" : sub.error().to_string()));
  const std::string lag = R"(aether_bus_durable_lag_messages{namespace="acme",durable="ledger"})";
  CHECK(sample(scrape(*f.bus), lag) == 0);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(f.store->append_wait(aether::actor_id{"order", fmt::format("o-{}", i), "acme"}, 0,
                                 {test::make_event("placed")}));
  }
  // Stalled: the server holds back what the subscriber has not acknowledged.
  AETHER_EVENTUALLY(sample(scrape(*f.bus), lag) == 20, 10s);
  const auto stalled = scrape(*f.bus);
  std::string said;
  CHECK_MESSAGE(promtool_check(stalled, said) == 0, said);
  release.count_down();
  AETHER_EVENTUALLY(handled.load() == 20, 15s);
  AETHER_EVENTUALLY(sample(scrape(*f.bus), lag) == 0, 10s);
}
