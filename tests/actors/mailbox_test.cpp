#include "test_actors.hpp"

#include <doctest/doctest.h>

using aether::actor_id;

TEST_CASE("a full mailbox fails the send with mailbox_full and loses nothing it accepted") {
  auto cfg = test::manual_fixture::small_config();
  cfg.shard_count = 1;
  cfg.mailbox_capacity = 10;
  test::manual_fixture f{cfg};
  f.system.register_actor<test::counter>("counter");
  const actor_id c{"counter", "c"};
  int accepted = 0;
  for (int i = 0; i < 15; ++i) {
    auto r = f.system.tell(c, test::add{1});
    if (r) {
      ++accepted;
    } else {
      CHECK(r.error().code() == aether::errc::mailbox_full);
    }
  }
  CHECK(accepted == 10);
  CHECK(f.system.metrics().mailbox_full == 5);
  // An ask into a full mailbox gets the error as its answer.
  auto refused = f.system.ask<int>(c, test::get{}, std::chrono::seconds{1});
  std::optional<aether::expected<int>> got;
  refused.then([&](aether::expected<int> r) { got.emplace(std::move(r)); });
  f.exec.run();
  REQUIRE(got);
  CHECK(got->error().code() == aether::errc::mailbox_full);
  // Drained, it takes messages again, and all accepted ones were handled.
  CHECK(*f.ask<int>(c, test::get{}) == 10);
}

TEST_CASE("messages from one sender arrive in the order sent") {
  auto cfg = test::manual_fixture::small_config();
  cfg.drain_batch = 3; // many turns
  test::manual_fixture f{cfg};
  f.system.register_actor<test::recorder>("recorder");
  const actor_id r{"recorder", "r"};
  for (int i = 0; i < 100; ++i) REQUIRE(f.system.tell(r, test::remember{0, i}));
  auto seen = f.ask<std::vector<test::remember>>(r, test::history{});
  REQUIRE(seen);
  REQUIRE(seen->size() == 100);
  for (int i = 0; i < 100; ++i) CHECK((*seen)[static_cast<std::size_t>(i)].seq == i);
}

TEST_CASE("a drain handles a bounded batch and then yields to other shards") {
  auto cfg = test::manual_fixture::small_config();
  cfg.shard_count = 1;
  cfg.drain_batch = 4;
  test::manual_fixture f{cfg};
  f.system.register_actor<test::counter>("counter");
  for (int i = 0; i < 10; ++i) REQUIRE(f.system.tell(actor_id{"counter", "c"}, test::add{1}));
  // 10 messages in batches of 4: three turns.
  CHECK(f.exec.run() == 3);
  CHECK(f.system.metrics().messages == 10);
}

TEST_CASE("invalid configuration is refused") {
  aether::system_config cfg;
  cfg.shard_count = 0;
  CHECK(cfg.validate().error().code() == aether::errc::invalid_argument);
  aether::manual_executor exec;
  CHECK_THROWS_AS(aether::actor_system(cfg, exec), aether::bad_expected_access);
}

TEST_CASE("sending to the null id is invalid_id") {
  test::manual_fixture f;
  CHECK(f.system.tell(actor_id{}, test::add{1}).error().code() == aether::errc::invalid_id);
}
