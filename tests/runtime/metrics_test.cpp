#include "support/promtool.hpp"
#include <aether/runtime/metrics.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using aether::testing::promtool_check;

TEST_CASE("a striped counter sums what every thread added") {
  aether::striped_counter c;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 10'000; ++i) c.add(t);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.value() == 40'000);
}

TEST_CASE("a latency histogram puts each duration in the first bucket that holds it") {
  aether::latency_histogram h;
  h.observe_ns(10'000);         // 10 µs: the first bucket (50 µs)
  h.observe_ns(50'000);         // exactly 50 µs: still the first (le is inclusive)
  h.observe_ns(2'000'000);      // 2 ms: the 2.5 ms bucket
  h.observe_ns(60'000'000'000); // a minute: only +Inf
  const auto s = h.read();
  CHECK(s.buckets[0] == 2);
  CHECK(s.buckets[5] == 1);
  CHECK(s.count == 4);
  CHECK(s.sum_ns == 10'000 + 50'000 + 2'000'000 + 60'000'000'000ULL);
}

TEST_CASE("the text exposition groups a metric's samples under one HELP and TYPE, and promtool accepts it") {
  aether::metrics_registry r;
  auto a = r.add([](aether::metric_sink& s) {
    s.counter("aether_test_events_total", "Events seen.", 3, {{"type", "account"}});
    s.gauge("aether_test_depth", "Depth now.", 7);
  });
  auto b = r.add([](aether::metric_sink& s) {
    s.counter("aether_test_events_total", "Events seen.", 5, {{"type", "we\"ird\\name\n"}});
    aether::latency_histogram h;
    h.observe_ns(1'000'000);
    s.histogram("aether_test_duration_seconds", "Durations.", h.read(), {{"namespace", "shop"}});
  });
  const auto text = r.text();
  CHECK(text.find("# TYPE aether_test_events_total counter\n") != std::string::npos);
  CHECK(text.find("aether_test_events_total{type=\"account\"} 3\n") != std::string::npos);
  // Label values are escaped.
  CHECK(text.find("aether_test_events_total{type=\"we\\\"ird\\\\name\\n\"} 5\n") != std::string::npos);
  // One HELP per name, whichever collector wrote first.
  CHECK(text.find("# HELP aether_test_events_total") == text.rfind("# HELP aether_test_events_total"));
  CHECK(text.find("aether_test_duration_seconds_bucket{namespace=\"shop\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(text.find("aether_test_duration_seconds_bucket{namespace=\"shop\",le=\"0.0005\"} 0\n") != std::string::npos);
  CHECK(text.find("aether_test_duration_seconds_bucket{namespace=\"shop\",le=\"+Inf\"} 1\n") != std::string::npos);
  CHECK(text.find("aether_test_duration_seconds_count{namespace=\"shop\"} 1\n") != std::string::npos);
  CHECK(text.find("aether_test_duration_seconds_sum{namespace=\"shop\"} 0.001\n") != std::string::npos);
  std::string said;
  CHECK_MESSAGE(promtool_check(text, said) == 0, said);
}

TEST_CASE("promtool refuses what breaks the conventions, so the check above can fail") {
  aether::metrics_registry r;
  auto a = r.add([](aether::metric_sink& s) { s.counter("aether_test_events", "A counter without _total.", 1); });
  std::string said;
  CHECK(promtool_check(r.text(), said) != 0);
  CHECK(said.find("_total") != std::string::npos);
}

TEST_CASE("a dropped registration removes its collector") {
  aether::metrics_registry r;
  auto keep = r.add([](aether::metric_sink& s) { s.gauge("aether_test_kept", "Kept.", 1); });
  {
    auto gone = r.add([](aether::metric_sink& s) { s.gauge("aether_test_gone", "Gone.", 1); });
    CHECK(r.text().find("aether_test_gone") != std::string::npos);
  }
  CHECK(r.text().find("aether_test_gone") == std::string::npos);
  CHECK(r.text().find("aether_test_kept 1\n") != std::string::npos);
}

TEST_CASE("one name written as two kinds is a programming error") {
  aether::metric_sink s;
  s.gauge("aether_test_x", "x", 1);
  CHECK_THROWS_AS(s.counter("aether_test_x", "x", 1), std::logic_error);
}
