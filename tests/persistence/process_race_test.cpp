// The fence between processes: two writer processes race for the same
// actor versions, on one server (R1) and on different servers of a
// three-server cluster (R3), for version 1 of fresh actors and after
// existing history.
#include "store_fixtures.hpp"
#include "support/child_process.hpp"
#include "support/race_tally.hpp"
#include "support/scale.hpp"

#include <fmt/format.h>

using namespace std::chrono_literals;
using aether::testing::child_process;
using aether::testing::race_tally;
using aether::testing::write_outcome;

namespace {

/// Runs races between two writer processes (`left_url`, `right_url`); the
/// histories are written and every trial read back through `reader_url`.
/// Checks each trial whole (one winner at the expected version, the loser
/// told it, the winner's event stored) and that both processes win some.
/// A writer that does not answer fails the test at once.
void race(const std::string& left_url, const std::string& right_url, const std::string& reader_url, int replicas,
          const std::string& prefix, std::size_t trials) {
  aether::jetstream_store_options o;
  o.replicas = replicas;
  auto store = test::open_store(test::connect(reader_url), o);
  REQUIRE(store->prepare("default"));
  for (std::size_t t = 0; t < trials; ++t) {
    test::write_history(*store, aether::actor_id{"race", prefix + std::to_string(t)}, test::race_history(t));
  }
  const std::vector<std::string> names{"left", "right"};
  std::vector<std::unique_ptr<child_process>> writers;
  writers.push_back(std::make_unique<child_process>(
      std::vector<std::string>{AETHER_RACE_WRITER, left_url, std::to_string(replicas), prefix, names[0]}));
  writers.push_back(std::make_unique<child_process>(
      std::vector<std::string>{AETHER_RACE_WRITER, right_url, std::to_string(replicas), prefix, names[1]}));
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (auto& w : writers) REQUIRE(w->line(deadline) == std::optional<std::string>{"ready"});

  race_tally tally{2};
  for (std::size_t t = 0; t < trials; ++t) {
    const auto n = std::to_string(t);
    for (auto& w : writers) w->write(fmt::format("{} {}\n", n, test::race_history(t)));
    const auto until = std::chrono::steady_clock::now() + 60s;
    for (std::size_t side = 0; side < writers.size(); ++side) {
      const auto l = writers[side]->line(until);
      REQUIRE_MESSAGE(l, "writer " << names[side] << " did not answer trial " << t << " (it died or hangs)");
      REQUIRE_MESSAGE(l->starts_with(n + " "), "writer " << names[side] << " answered '" << *l << "' to trial " << t);
      tally.record(t, side, write_outcome::from_line(std::string_view{*l}.substr(n.size() + 1)));
    }
  }
  for (std::size_t t = 0; t < trials; ++t) {
    tally.expect_version(t, test::race_history(t) + 1);
    tally.stored(t, test::stored_writer(*store, aether::actor_id{"race", prefix + std::to_string(t)},
                                        test::race_history(t) + 1, names));
  }
  const auto broken = tally.problems();
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
  CHECK(tally.trials() == trials);
  CHECK_MESSAGE(tally.every_writer_won(), tally.summary()); // the race is real
  MESSAGE(tally.summary());
}

} // namespace

TEST_CASE("two writer processes on one server racing on an R1 stream: one winner, the loser told its version") {
  aether::testing::nats_server server;
  race(server.url(), server.url(), server.url(), 1, "p1-", static_cast<std::size_t>(aether::testing::scaled(200)));
}

TEST_CASE("two writer processes on different servers racing on an R3 stream: one winner, the loser told its version") {
  aether::testing::nats_cluster cluster{3};
  race(cluster.server(0).url(), cluster.server(2).url(), cluster.server(1).url(), 3, "p3-",
       static_cast<std::size_t>(aether::testing::scaled(200)));
}
