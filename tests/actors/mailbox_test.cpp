#include "support/error_collector.hpp"
#include "support/eventually.hpp"
#include "support/pending_ask.hpp"
#include "support/scale.hpp"
#include "test_actors.hpp"

#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <future>
#include <memory>
#include <thread>

using namespace std::chrono_literals;
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
  test::answer<int> got{std::move(refused)};
  f.exec.run();
  REQUIRE(got.ready());
  CHECK(got.value().error().code() == aether::errc::mailbox_full);
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

// With real threads: the bound is exact under concurrent senders, and an
// actor's stash is bounded too.
namespace {

struct hold {};
struct begin_wait {
  bool ticking;
};
struct tick {};
struct ticks {};

/// Blocks its shard's thread in `hold` until the test opens the gate, so
/// that what senders manage to put into the mailbox stays there.
class gatekeeper : public aether::actor {
public:
  // `gate` is replaced by the test between rounds, while nothing is held.
  gatekeeper(const std::shared_future<void>& gate, std::atomic<int>& holding) {
    on([&gate, &holding](const hold&) {
      holding.fetch_add(1);
      gate.wait();
    });
    on([this](const test::add& a) { total_ += a.amount; });
    on([this](const test::get&) { return total_; });
  }

private:
  int total_ = 0;
};

/// Waits exclusively for outside work (so messages go to its stash), counts
/// what it handles; with `ticking`, a timer ticks all along.
class waiter : public aether::actor {
public:
  struct wait_slot {
    std::optional<aether::completion<int>> completion;
    std::atomic<bool> waiting{false}; // set once `completion` is there
  };

  explicit waiter(std::shared_ptr<wait_slot> slot) {
    on([this, slot](const begin_wait& b, aether::context& ctx) {
      if (b.ticking) ctx.schedule_periodic(1ms, tick{});
      auto [done, handle] = ctx.await_completion<int>(60s, true);
      slot->completion = done;
      slot->waiting.store(true, std::memory_order_release);
      handle.then([](const int&) {}, [](const aether::error&) {});
    });
    on([this](const test::add& a) { total_ += a.amount; });
    on([this](const test::get&) { return total_; });
    on([this](const tick&) { ++ticks_; });
    on([this](const ticks&) { return ticks_; });
  }

private:
  int total_ = 0;
  int ticks_ = 0;
};

struct pool_system {
  explicit pool_system(aether::system_config cfg) : system{std::move(cfg), pool} {}
  ~pool_system() { aether::close_and_join(system, pool); }
  aether::thread_pool_executor pool{2, 4};
  aether::actor_system system;
};

} // namespace

TEST_CASE("concurrent senders on real threads never fit more than the capacity into a mailbox") {
  constexpr std::size_t capacity = 100;
  constexpr int senders = 8;
  constexpr int tries = 60; // per sender and round: far more than fits
  auto cfg = test::manual_fixture::small_config();
  cfg.shard_count = 1;
  cfg.mailbox_capacity = capacity;
  const int rounds = aether::testing::scaled(20);
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    // A fresh system per round: the message held is the only one counted
    // (a turn's messages count until the turn ends).
    pool_system p{cfg};
    std::promise<void> open;
    std::shared_future<void> gate = open.get_future().share();
    std::atomic<int> holding{0};
    p.system.register_actor("gate", [&](const actor_id&) { return std::make_unique<gatekeeper>(gate, holding); });
    const actor_id g{"gate", "g"};
    REQUIRE(p.system.tell(g, hold{}));
    AETHER_EVENTUALLY(holding.load() == 1, 30s); // the shard's thread is in the handler
    // The message in hand still counts until its turn ends: capacity - 1 fit.
    std::atomic<int> accepted{0};
    std::atomic<int> refused{0};
    std::barrier start{senders};
    std::vector<std::thread> threads;
    for (int s = 0; s < senders; ++s) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < tries; ++i) {
          auto r = p.system.tell(g, test::add{1});
          if (r) {
            accepted.fetch_add(1);
          } else if (r.error().code() == aether::errc::mailbox_full) {
            refused.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(accepted.load() == static_cast<int>(capacity) - 1);
    CHECK(accepted.load() + refused.load() == senders * tries);
    CHECK(p.system.metrics().mailbox_full == static_cast<std::uint64_t>(refused.load()));
    auto full = p.system.ask<int>(g, test::get{}, 30s).get();
    REQUIRE_FALSE(full);
    CHECK(full.error().code() == aether::errc::mailbox_full);
    open.set_value();
    // Everything accepted is handled, nothing more (asked until the mailbox
    // has room for the ask again).
    aether::expected<int> total = aether::error{aether::errc::mailbox_full};
    AETHER_EVENTUALLY((total = p.system.ask<int>(g, test::get{}, 30s).get()) ||
                          total.error().code() != aether::errc::mailbox_full,
                      30s);
    REQUIRE(total);
    CHECK(*total == accepted.load());
  }
}

TEST_CASE("an actor's stash is bounded: what overflows it is a counted dead letter, and an asker gets mailbox_full") {
  constexpr int capacity = 10;
  auto cfg = test::manual_fixture::small_config();
  cfg.shard_count = 2;
  cfg.mailbox_capacity = capacity;
  test::error_collector dead; // every dead letter, its message type as the detail
  cfg.on_dead_letter = [record = dead.callback()](const aether::dead_letter& d) {
    record(aether::error{d.reason, std::string{d.message_type}});
  };
  pool_system p{cfg};
  auto slot = std::make_shared<waiter::wait_slot>();
  p.system.register_actor("waiter", [slot](const actor_id&) { return std::make_unique<waiter>(slot); });
  auto dead_of = [&](std::string_view type) {
    std::size_t n = 0;
    for (const auto& e : dead.errors())
      n += e.code() == aether::errc::mailbox_full && e.detail().find(type) != std::string::npos;
    return n;
  };

  SUBCASE("messages sent while it waits") {
    const actor_id w{"waiter", "w"};
    REQUIRE(p.system.tell(w, begin_wait{false}));
    AETHER_EVENTUALLY(slot->waiting.load(std::memory_order_acquire) && p.system.metrics().messages == 1, 30s);
    // From one sender, in order: these fill the stash (the mailbox drains
    // into it), the next tell and the ask find it full.
    // Each tell is let into the stash before the next, so the mailbox
    // (of the same capacity) never fills first.
    for (int i = 0; i < capacity + 1; ++i) {
      const auto handled = p.system.metrics().messages;
      REQUIRE(p.system.tell(w, test::add{1}));
      AETHER_EVENTUALLY(p.system.metrics().messages == handled + 1, 30s);
    }
    test::answer<int> refused{p.system.ask<int>(w, test::get{}, 30s)};
    auto r = refused.wait(60s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == aether::errc::mailbox_full);
    AETHER_EVENTUALLY(dead.size() == 2, 30s); // the tell and the ask, both counted
    CHECK(dead_of("add") == 1);
    CHECK(dead_of("get") == 1);
    CHECK(p.system.metrics().dead_letters == 2);
    // The wait ends: the stashed messages are handled, and nothing more.
    CHECK(slot->completion->complete(1));
    test::answer<int> total{p.system.ask<int>(w, test::get{}, 30s)};
    auto t = total.wait(60s);
    REQUIRE(t);
    CHECK(*t == capacity);
  }

  SUBCASE("timer ticks while it waits") {
    const actor_id w{"waiter", "ticking"};
    REQUIRE(p.system.tell(w, begin_wait{true}));
    AETHER_EVENTUALLY(slot->waiting.load(std::memory_order_acquire), 30s);
    // Ticks every millisecond: once `capacity` wait, the rest are dead letters.
    AETHER_EVENTUALLY(dead_of("tick") >= 5, 30s);
    CHECK(slot->completion->complete(1));
    // The stashed ticks are handled once the wait ends; later ones run at once.
    AETHER_EVENTUALLY(*p.system.ask<int>(w, ticks{}, 30s).get() > capacity, 30s);
  }
}
