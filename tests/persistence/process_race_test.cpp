// The fence between processes: two writer processes race for the same
// actor versions, on one server (R1) and on different servers of a
// three-server cluster (R3).
#include "store_fixtures.hpp"
#include "support/child_process.hpp"

#include <fmt/format.h>

#include <sstream>

using namespace std::chrono_literals;
using aether::testing::child_process;

namespace {

/// Runs `trials` races between two writer processes; returns the trials
/// that did not end with exactly one win and one conflict.
std::vector<std::string> race(const std::string& left_url, const std::string& right_url, int replicas,
                              const std::string& prefix, int trials) {
  child_process left{{AETHER_RACE_WRITER, left_url, std::to_string(replicas), prefix}};
  child_process right{{AETHER_RACE_WRITER, right_url, std::to_string(replicas), prefix}};
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  REQUIRE(left.line(deadline) == std::optional<std::string>{"ready"});
  REQUIRE(right.line(deadline) == std::optional<std::string>{"ready"});
  std::vector<std::string> broken;
  for (int t = 0; t < trials; ++t) {
    const auto n = std::to_string(t);
    left.write(n + "\n");
    right.write(n + "\n");
    const auto until = std::chrono::steady_clock::now() + 30s;
    const auto a = left.line(until).value_or("(no answer)");
    const auto b = right.line(until).value_or("(no answer)");
    const bool one_winner = (a == n + " win" && b == n + " conflict") || (a == n + " conflict" && b == n + " win");
    if (!one_winner) broken.push_back(fmt::format("{} / {}", a, b));
  }
  return broken;
}

} // namespace

TEST_CASE("two writer processes on one server racing on an R1 stream: one winner in each of 200 trials") {
  aether::testing::nats_server server;
  const auto broken = race(server.url(), server.url(), 1, "p1-", 200);
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
}

TEST_CASE("two writer processes on different servers racing on an R3 stream: one winner in each of 200 trials") {
  aether::testing::nats_cluster cluster{3};
  const auto broken = race(cluster.server(0).url(), cluster.server(2).url(), 3, "p3-", 200);
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
  // Each trial left exactly one event.
  aether::jetstream_store_options r3;
  r3.replicas = 3;
  auto store = test::open_store(test::connect(cluster.server(1).url()), r3);
  for (int t = 0; t < 200; t += 23)
    CHECK(store->read_wait(aether::actor_id{"race", "p3-" + std::to_string(t)})->size() == 1);
}
