#include "support/eventually.hpp"
#include "support/pending_ask.hpp"
#include "test_actors.hpp"

#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

struct query {
  actor_id target;
  int timeout_ms = 1000;
};
struct outcome {
  bool ok;
  int value;
  aether::errc code;
};
struct slow_get {};
struct answer_now {};
struct silent {};
struct sum_of {
  std::vector<actor_id> targets;
};

/// Asks another actor and reports what came back, on its own turn.
class asker : public aether::actor {
public:
  asker() {
    on([this](const query& q, aether::context& ctx) {
      auto promise = std::make_shared<aether::response_promise>(ctx.promise());
      const auto me = ctx.self();
      ctx.ask<int>(q.target, test::get{}, std::chrono::milliseconds{q.timeout_ms})
          .then(
              [this, promise, me](const int& v, aether::context& inner) {
                CHECK(inner.self() == me); // on the asker's turn
                ++answers_;
                promise->deliver(outcome{true, v, {}});
              },
              [this, promise](const aether::error& e) {
                ++answers_;
                promise->deliver(outcome{false, 0, e.code()});
              });
    });
    on([this](const sum_of& s, aether::context& ctx) {
      auto state = std::make_shared<std::pair<int, int>>(0, static_cast<int>(s.targets.size()));
      auto promise = std::make_shared<aether::response_promise>(ctx.promise());
      for (const auto& t : s.targets) {
        ctx.ask<int>(t, test::get{}, 1s)
            .then(
                [state, promise](const int& v) {
                  state->first += v;
                  if (--state->second == 0) promise->deliver(state->first);
                },
                [promise](const aether::error& e) { promise->deliver(e); });
      }
    });
    on([this](const test::history&) { return answers_; });
  }
  int answers_ = 0;
};

/// Answers `get` only when told to, so asks can time out first.
class procrastinator : public aether::actor {
public:
  procrastinator() {
    on([this](const test::get&, aether::context& ctx) { waiting_.push_back(ctx.promise()); });
    on([this](const answer_now&) {
      for (auto& p : waiting_) p.deliver(42);
      waiting_.clear();
    });
    on([](const silent&) {});
  }
  std::vector<aether::response_promise> waiting_;
};

void register_all(aether::actor_system& s) {
  s.register_actor<asker>("asker");
  s.register_actor<test::counter>("counter");
  s.register_actor<procrastinator>("slow");
}

} // namespace

TEST_CASE("an actor asks another and gets the reply on its own turn") {
  test::manual_fixture f;
  register_all(f.system);
  const actor_id c{"counter", "c1"};
  REQUIRE(f.system.tell(c, test::add{5}));
  auto r = f.ask<outcome>(actor_id{"asker", "a"}, query{c});
  REQUIRE(r);
  CHECK(r->ok);
  CHECK(r->value == 5);
}

TEST_CASE("an actor gathers answers from several actors before replying") {
  test::manual_fixture f;
  register_all(f.system);
  std::vector<actor_id> targets;
  for (int i = 0; i < 10; ++i) {
    targets.emplace_back("counter", "c" + std::to_string(i));
    REQUIRE(f.system.tell(targets.back(), test::add{i}));
  }
  f.exec.run(); // no order between different senders: let the adds land first
  CHECK(*f.ask<int>(actor_id{"asker", "a"}, sum_of{targets}) == 45);
}

TEST_CASE("an ask times out, and the reply that comes later is dropped and counted") {
  test::manual_fixture f;
  register_all(f.system);
  const actor_id slow{"slow", "s"};
  test::answer<outcome> got{f.system.ask<outcome>(actor_id{"asker", "a"}, query{slow, 100}, 10s)};
  f.exec.run();
  CHECK_FALSE(got.ready());
  f.exec.advance(99ms);
  CHECK_FALSE(got.ready());
  f.exec.advance(1ms);
  REQUIRE(got.ready());
  REQUIRE(got.value());
  CHECK_FALSE(got.value()->ok);
  CHECK(got.value()->code == aether::errc::timeout);
  CHECK(f.system.metrics().ask_timeouts == 1);

  REQUIRE(f.system.tell(slow, answer_now{}));
  f.exec.run();
  CHECK(f.system.metrics().late_replies == 1);
  CHECK(*f.ask<int>(actor_id{"asker", "a"}, test::history{}) == 1); // the callback ran once
}

TEST_CASE("an external ask times out with errc::timeout") {
  test::manual_fixture f;
  register_all(f.system);
  auto r = f.ask<int>(actor_id{"slow", "s"}, test::get{}, 50ms);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::timeout);
}

TEST_CASE("an ask the handler does not answer fails with no_reply at once") {
  test::manual_fixture f;
  register_all(f.system);
  test::answer<int> got{f.system.ask<int>(actor_id{"slow", "s"}, silent{}, 10s)};
  f.exec.run();
  REQUIRE(got.ready());
  CHECK(got.value().error().code() == aether::errc::no_reply);
}

TEST_CASE("ask errors reach the asking actor as continuations") {
  test::manual_fixture f;
  register_all(f.system);
  SUBCASE("unknown actor type") {
    auto r = f.ask<outcome>(actor_id{"asker", "a"}, query{actor_id{"nobody", "x"}});
    REQUIRE(r);
    CHECK(r->code == aether::errc::unknown_actor_type);
  }
  SUBCASE("handler failed") {
    // An asker whose target throws on `get`.
    f.system.register_actor("thrower", [](const actor_id&) {
      struct thrower : aether::actor {
        thrower() {
          on([](const test::get&) -> int { throw std::runtime_error{"no"}; });
        }
      };
      return std::make_unique<thrower>();
    });
    auto r = f.ask<outcome>(actor_id{"asker", "a"}, query{actor_id{"thrower", "x"}});
    REQUIRE(r);
    CHECK(r->code == aether::errc::handler_failed);
  }
}

TEST_CASE("the future, callback and blocking forms of an external ask") {
  test::manual_fixture f;
  register_all(f.system);
  const actor_id c{"counter", "c"};
  REQUIRE(f.system.tell(c, test::add{3}));
  auto fut = f.system.ask<int>(c, test::get{}, 1s).to_future();
  f.exec.run();
  REQUIRE(fut.wait_for(0s) == std::future_status::ready);
  CHECK(*fut.get() == 3);
}

// On real threads and timers.
TEST_CASE("on the thread pool, asks time out on real timers, from outside and from an actor, and late replies are "
          "dropped") {
  aether::thread_pool_executor pool{2, 4};
  aether::actor_system system{test::manual_fixture::small_config(), pool};
  register_all(system);
  const actor_id slow{"slow", "s"};
  // From outside: the answer is the timeout.
  test::answer<int> outside{system.ask<int>(slow, test::get{}, 50ms)};
  auto r = outside.wait(60s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::timeout);
  // From an actor: the asker's error callback runs on its turn with the timeout.
  test::answer<outcome> inside{system.ask<outcome>(actor_id{"asker", "a"}, query{slow, 50}, 30s)};
  auto o = inside.wait(60s);
  REQUIRE(o);
  CHECK_FALSE(o->ok);
  CHECK(o->code == aether::errc::timeout);
  CHECK(system.metrics().ask_timeouts == 2);
  // The replies that come now find nobody waiting: counted, never delivered.
  REQUIRE(system.tell(slow, answer_now{}));
  AETHER_EVENTUALLY(system.metrics().late_replies == 2, 30s);
  CHECK(*system.ask<int>(actor_id{"asker", "a"}, test::history{}, 30s).get() == 1); // its callback ran once
  aether::close_and_join(system, pool);
}

TEST_CASE("an external ask is answered when the executor has fewer lanes than the system has shards") {
  aether::thread_pool_executor pool{2, 4};
  aether::actor_system system{aether::system_config{}, pool}; // 64 shards on 4 lanes
  system.register_actor<test::counter>("counter");
  // Actors on many shards: most shard indexes are beyond the lanes.
  for (int i = 0; i < 32; ++i) {
    const actor_id c{"counter", "c" + std::to_string(i)};
    test::answer<int> got{system.ask<int>(c, test::get{}, 30s)};
    auto r = got.wait(60s);
    REQUIRE_MESSAGE(r, c.to_string() << ": " << (r ? "" : r.error().to_string()));
    CHECK(*r == 0);
  }
  aether::close_and_join(system, pool);
}

TEST_CASE("external asks time out each at its own deadline, a shorter one after a longer one too") {
  test::manual_fixture f;
  register_all(f.system);
  const auto shard_timers = f.exec.active_timers();
  const actor_id slow{"slow", "s"};
  test::answer<int> late{f.system.ask<int>(slow, test::get{}, 10s)};
  test::answer<int> soon{f.system.ask<int>(slow, test::get{}, 1s)};
  test::answer<int> middle{f.system.ask<int>(slow, test::get{}, 4s)};
  f.exec.run();
  f.exec.advance(999ms);
  CHECK_FALSE(soon.ready());
  f.exec.advance(1ms);
  REQUIRE(soon.ready());
  CHECK(soon.value().error().code() == aether::errc::timeout);
  CHECK_FALSE(middle.ready());
  CHECK_FALSE(late.ready());
  f.exec.advance(3s);
  REQUIRE(middle.ready());
  CHECK(middle.value().error().code() == aether::errc::timeout);
  CHECK_FALSE(late.ready());
  f.exec.advance(6s);
  REQUIRE(late.ready());
  CHECK(late.value().error().code() == aether::errc::timeout);
  CHECK(f.system.metrics().ask_timeouts == 3);
  // Nothing is left waiting: no timer of the asks stays behind.
  CHECK(f.exec.active_timers() == shard_timers);
}

TEST_CASE("an answered external ask never times out, and its deadline goes with the answer") {
  test::manual_fixture f;
  register_all(f.system);
  const auto shard_timers = f.exec.active_timers();
  const actor_id slow{"slow", "s"};
  int calls = 0;
  std::optional<aether::expected<int>> got;
  f.system.ask<int>(slow, test::get{}, 1s).then([&](aether::expected<int> r) {
    ++calls;
    got.emplace(std::move(r));
  });
  test::answer<int> unanswered{f.system.ask<int>(slow, silent{}, 2s)}; // no_reply at once
  test::answer<int> timed_out{f.system.ask<int>(actor_id{"slow", "t"}, test::get{}, 3s)};
  f.exec.run();
  REQUIRE(f.system.tell(slow, answer_now{}));
  f.exec.run();
  REQUIRE(got.has_value());
  CHECK(**got == 42);
  REQUIRE(unanswered.ready());
  CHECK(unanswered.value().error().code() == aether::errc::no_reply);
  f.exec.advance(5s);
  CHECK(calls == 1); // the deadline passed: no second answer
  CHECK(**got == 42);
  REQUIRE(timed_out.ready());
  CHECK(timed_out.value().error().code() == aether::errc::timeout);
  CHECK(f.system.metrics().ask_timeouts == 1); // only the one nobody answered
  CHECK(f.exec.active_timers() == shard_timers);
  // The one that timed out is answered later: dropped.
  REQUIRE(f.system.tell(actor_id{"slow", "t"}, answer_now{}));
  f.exec.run();
  CHECK(timed_out.value().error().code() == aether::errc::timeout);
}

TEST_CASE("on the thread pool, external asks racing their deadlines from several threads are each answered once") {
  aether::thread_pool_executor pool{2, 4};
  aether::actor_system system{test::manual_fixture::small_config(), pool};
  register_all(system);
  constexpr int threads = 4;
  constexpr int per_thread = 300;
  std::atomic<int> ok{0};
  std::atomic<int> timeouts{0};
  std::atomic<int> other{0};
  std::atomic<int> off_pool{0};
  std::atomic<int> calls{0};
  std::vector<std::thread> askers;
  for (int t = 0; t < threads; ++t) {
    askers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const actor_id target{"slow", "r" + std::to_string((t * per_thread + i) % 8)};
        // Deadlines of 0 to 2 ms, in no order, against answers that come about as late.
        const auto timeout = std::chrono::microseconds{(i * 7919 + t * 131) % 2000};
        system.ask<int>(target, test::get{}, timeout).then([&](aether::expected<int> r) {
          if (!pool.on_pool_thread()) off_pool.fetch_add(1);
          if (r) {
            ok.fetch_add(1);
          } else if (r.error().code() == aether::errc::timeout) {
            timeouts.fetch_add(1);
          } else {
            other.fetch_add(1);
          }
          calls.fetch_add(1);
        });
        if (i % 3 == 0) (void)system.tell(target, answer_now{});
      }
    });
  }
  for (auto& a : askers) a.join();
  // Whatever is still waiting is answered now or times out within 2 ms.
  for (int k = 0; k < 8; ++k) REQUIRE(system.tell(actor_id{"slow", "r" + std::to_string(k)}, answer_now{}));
  AETHER_EVENTUALLY(calls.load() == threads * per_thread, 30s);
  CHECK(other.load() == 0);
  CHECK(off_pool.load() == 0);
  CHECK(ok.load() + timeouts.load() == threads * per_thread);
  CHECK(system.metrics().ask_timeouts == static_cast<std::uint64_t>(timeouts.load()));
  MESSAGE("answered " << ok.load() << ", timed out " << timeouts.load());
  std::this_thread::sleep_for(20ms); // a late timer finds every ask answered
  CHECK(calls.load() == threads * per_thread);
  aether::close_and_join(system, pool);
}
