// One conformance suite, run against the memory store and the JetStream store.
#include "store_fixtures.hpp"

#include <atomic>
#include <thread>

using aether::actor_id;
using aether::errc;
using test::make_event;

TEST_CASE_TEMPLATE("appends get consecutive versions and read back in order", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "a1"};
  CHECK(*s.events->latest_version_wait(a) == 0);
  auto first = s.events->append_wait(a, 0, {make_event("opened", R"({"owner":"ada"})")});
  REQUIRE_MESSAGE(first, (first ? "" : first.error().to_string()));
  CHECK(first->first_version == 1);
  CHECK(first->last_version == 1);
  auto batch = s.events->append_wait(a, 1, {make_event("deposited", R"({"cents":5})"), make_event("deposited", "7")});
  REQUIRE(batch);
  CHECK(batch->first_version == 2);
  CHECK(batch->last_version == 3);
  CHECK(*s.events->latest_version_wait(a) == 3);

  auto all = s.events->read_wait(a);
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].type == "opened");
  CHECK((*all)[0].data == R"({"owner":"ada"})");
  CHECK((*all)[2].data == "7");
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK((*all)[i].version == i + 1);
    CHECK((*all)[i].actor == a);
    CHECK_FALSE((*all)[i].id.empty());
    CHECK((*all)[i].timestamp_ns > 0);
  }
  auto tail = s.events->read_wait(a, 3);
  REQUIRE(tail);
  REQUIRE(tail->size() == 1);
  CHECK(tail->front().version == 3);
  CHECK(s.events->read_wait(a, 4)->empty());
}

TEST_CASE_TEMPLATE("an append after a stale version is a conflict that reports the current version", S,
                   test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "a2"};
  REQUIRE(s.events->append_wait(a, 0, {make_event("opened")}));
  REQUIRE(s.events->append_wait(a, 1, {make_event("deposited")}));
  auto stale = s.events->append_wait(a, 1, {make_event("deposited"), make_event("deposited")});
  REQUIRE_FALSE(stale);
  CHECK(stale.error().code() == errc::version_conflict);
  CHECK(stale.error().value() == 2);
  // All or nothing: the batch left no trace, and the loser can retry after 2.
  CHECK(*s.events->latest_version_wait(a) == 2);
  auto retry = s.events->append_wait(a, 2, {make_event("deposited")});
  REQUIRE(retry);
  CHECK(retry->first_version == 3);
}

TEST_CASE_TEMPLATE("an append after a version inside an earlier write is refused with the current version", S,
                   test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "inside"};
  REQUIRE(s.events->append_wait(a, 0, {make_event("opened"), make_event("deposited")}));
  for (auto& store : {s.events, s.other()}) {
    auto inside = store->append_wait(a, 1, {make_event("deposited", R"({"stray":true})")});
    REQUIRE_FALSE(inside);
    CHECK(inside.error().code() == errc::version_conflict);
    CHECK(inside.error().value() == 2);
  }
  CHECK(*s.events->latest_version_wait(a) == 2);
  auto all = s.events->read_wait(a);
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[1].type == "deposited");
  CHECK((*all)[1].data == "{}");
  CHECK(s.events->append_wait(a, 2, {make_event("closed")})->first_version == 3);
}

TEST_CASE_TEMPLATE("an append past the current version is refused: no gap is ever stored", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "gap"};
  REQUIRE(s.events->append_wait(a, 0, {make_event("opened")}));
  for (auto& store : {s.events, s.other()}) {
    for (const std::uint64_t ahead : {2, 5}) {
      auto gap = store->append_wait(a, ahead, {make_event("deposited")});
      REQUIRE_FALSE(gap);
      CHECK(gap.error().code() == errc::version_conflict);
      CHECK(gap.error().value() == 1);
    }
  }
  // The latest version agrees with the read, and appends go on after it.
  CHECK(*s.events->latest_version_wait(a) == 1);
  CHECK(s.events->read_wait(a)->size() == 1);
  auto next = s.events->append_wait(a, 1, {make_event("deposited")});
  REQUIRE(next);
  CHECK(next->first_version == 2);
  // An actor with no events refuses any version but 0.
  const actor_id fresh{"account", "fresh"};
  auto early = s.events->append_wait(fresh, 3, {make_event("opened")});
  REQUIRE_FALSE(early);
  CHECK(early.error().code() == errc::version_conflict);
  CHECK(early.error().value() == 0);
  CHECK(*s.events->latest_version_wait(fresh) == 0);
  CHECK(s.events->read_wait(fresh)->empty());
}

TEST_CASE_TEMPLATE("two writers that each know a different version: only appends after the current one store", S,
                   test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  auto left = s.events;
  auto right = s.other();
  const actor_id a{"account", "two"};
  REQUIRE(left->append_wait(a, 0, {make_event("opened"), make_event("deposited")}));
  // Right has seen nothing: after 0 and after 1 are behind, after 3 ahead.
  for (const std::uint64_t wrong : {0, 1, 3}) {
    auto r = right->append_wait(a, wrong, {make_event("deposited")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::version_conflict);
    CHECK(r.error().value() == 2);
  }
  auto by_right = right->append_wait(a, 2, {make_event("deposited"), make_event("deposited")});
  REQUIRE(by_right);
  CHECK(by_right->last_version == 4);
  // Left last saw version 2, now behind: refused with the current version.
  auto stale = left->append_wait(a, 2, {make_event("deposited")});
  REQUIRE_FALSE(stale);
  CHECK(stale.error().code() == errc::version_conflict);
  CHECK(stale.error().value() == 4);
  auto inside = left->append_wait(a, 3, {make_event("deposited")});
  REQUIRE_FALSE(inside);
  CHECK(inside.error().value() == 4);
  REQUIRE(left->append_wait(a, 4, {make_event("closed")}));
  for (auto& store : {left, right}) {
    CHECK(*store->latest_version_wait(a) == 5);
    auto all = store->read_wait(a);
    REQUIRE(all);
    REQUIRE(all->size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK((*all)[i].version == i + 1);
    CHECK(all->back().type == "closed");
  }
}

TEST_CASE_TEMPLATE("of writers racing for one version exactly one wins", S, test::memory_stores, test::jetstream_stores,
                   test::jetstream_per_actor_stores) {
  S s;
  for (int trial = 0; trial < 20; ++trial) {
    const actor_id a{"race", "r" + std::to_string(trial)};
    std::atomic<int> wins{0};
    std::atomic<int> conflicts{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&] {
        auto r = s.events->append_wait(a, 0, {make_event("claimed")});
        if (r) {
          wins.fetch_add(1);
        } else if (r.error().code() == errc::version_conflict) {
          conflicts.fetch_add(1);
        }
      });
    }
    for (auto& t : writers) t.join();
    CHECK(wins.load() == 1);
    CHECK(conflicts.load() == 3);
    CHECK(s.events->read_wait(a)->size() == 1);
  }
}

TEST_CASE_TEMPLATE("namespaces see nothing of each other", S, test::memory_stores, test::jetstream_stores,
                   test::jetstream_per_actor_stores) {
  S s;
  const actor_id in_a{"account", "same", "tenant-a"};
  const actor_id in_b{"account", "same", "tenant-b"};
  REQUIRE(s.events->append_wait(in_a, 0, {make_event("opened"), make_event("deposited")}));
  CHECK(s.events->read_wait(in_b)->empty());
  CHECK(*s.events->latest_version_wait(in_b) == 0);
  // An actor without events in a namespace that has some reads empty too.
  const actor_id nobody{"account", "nobody", "tenant-a"};
  CHECK(s.events->read_wait(nobody)->empty());
  CHECK(*s.events->latest_version_wait(nobody) == 0);
  // B starts its own history at version 1.
  auto b = s.events->append_wait(in_b, 0, {make_event("opened")});
  REQUIRE(b);
  CHECK(b->first_version == 1);
  CHECK(s.events->read_wait(in_a)->size() == 2);
  REQUIRE(s.snapshots->save_wait(in_a, aether::snapshot{2, 0, 1, R"({"cents":5})"}));
  CHECK_FALSE(s.snapshots->load_wait(in_b)->has_value());
  CHECK(s.snapshots->load_wait(in_a)->value().state == R"({"cents":5})");
}

TEST_CASE_TEMPLATE("bad appends get typed errors and write nothing", S, test::memory_stores, test::jetstream_stores,
                   test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "bad"};
  CHECK(s.events->append_wait(a, 0, {}).error().code() == errc::invalid_argument);
  CHECK(s.events->append_wait(a, 0, {make_event("")}).error().code() == errc::invalid_argument);
  auto not_json = s.events->append_wait(a, 0, {make_event("opened"), make_event("deposited", "{cents:")});
  REQUIRE_FALSE(not_json);
  CHECK(not_json.error().code() == errc::malformed_payload);
  CHECK(s.events->append_wait(actor_id{}, 0, {make_event("x")}).error().code() == errc::invalid_id);
  CHECK(*s.events->latest_version_wait(a) == 0);
  CHECK(s.events->read_wait(a)->empty());
}

TEST_CASE_TEMPLATE("the latest snapshot wins and an older one never replaces it", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  S s;
  const actor_id a{"account", "snap:1@x"}; // key bytes a bucket key cannot hold
  CHECK_FALSE(s.snapshots->load_wait(a)->has_value());
  REQUIRE(s.snapshots->save_wait(a, aether::snapshot{5, 9, 1, R"({"v":5})"}));
  REQUIRE(s.snapshots->save_wait(a, aether::snapshot{3, 4, 1, R"({"v":3})"}));
  auto latest = s.snapshots->load_wait(a);
  REQUIRE(latest);
  REQUIRE(latest->has_value());
  CHECK((*latest)->version == 5);
  CHECK((*latest)->sequence == 9);
  CHECK((*latest)->state == R"({"v":5})");
}
