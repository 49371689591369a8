#include "support/pending_ask.hpp"
#include "test_actors.hpp"

#include <aether/runtime/thread_pool_executor.hpp>

#include <atomic>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

aether::actor_options policy(aether::supervision s) {
  aether::actor_options o;
  o.on_failure = s;
  o.restart.max_restarts = 2;
  o.restart.window = 10s;
  o.restart.min_backoff = 100ms;
  o.restart.max_backoff = 1s;
  return o;
}

struct fixture : test::manual_fixture {
  explicit fixture(aether::supervision s) {
    system.register_actor(
        "counter",
        [this](const actor_id&) {
          ++instances;
          return std::make_unique<test::counter>();
        },
        policy(s));
  }
  int instances = 0;
  const actor_id c{"counter", "c"};
};

} // namespace

TEST_CASE("resume keeps the instance and its state") {
  fixture f{aether::supervision::resume};
  REQUIRE(f.system.tell(f.c, test::add{5}));
  auto failed = f.ask<int>(f.c, test::boom{"bad input"});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code() == aether::errc::handler_failed);
  CHECK(failed.error().detail().find("bad input") != std::string::npos);
  CHECK(*f.ask<int>(f.c, test::get{}) == 5);
  CHECK(f.instances == 1);
  CHECK(f.system.metrics().handler_failures == 1);
}

TEST_CASE("restart replaces the instance after a backoff, and messages that waited arrive in order") {
  fixture f{aether::supervision::restart};
  REQUIRE(f.system.tell(f.c, test::add{5}));
  REQUIRE(f.system.tell(f.c, test::boom{"x"}));
  REQUIRE(f.system.tell(f.c, test::add{1}));
  REQUIRE(f.system.tell(f.c, test::add{2}));
  test::answer<int> got{f.system.ask<int>(f.c, test::get{}, 10s)};
  f.exec.run();
  CHECK_FALSE(got.ready()); // waiting for the restart
  CHECK(f.instances == 1);
  f.exec.advance(100ms);
  REQUIRE(got.ready());
  CHECK(*got.value() == 3); // fresh state, then add 1, add 2
  CHECK(f.instances == 2);
  CHECK(f.system.metrics().restarts == 1);
}

TEST_CASE("the restart backoff doubles with each failure in the window") {
  fixture f{aether::supervision::restart};
  REQUIRE(f.system.tell(f.c, test::boom{"1"}));
  f.exec.run();
  f.exec.advance(100ms);
  CHECK(f.instances == 2);
  REQUIRE(f.system.tell(f.c, test::boom{"2"}));
  f.exec.run();
  f.exec.advance(199ms);
  CHECK(f.instances == 2);
  f.exec.advance(1ms);
  CHECK(f.instances == 3);
}

TEST_CASE("the backoff stops doubling at max_backoff") {
  fixture f{aether::supervision::restart};
  // max_restarts 2 in policy(); five restarts here, within the window.
  f.system.register_actor(
      "capped",
      [&f](const actor_id&) {
        ++f.instances;
        return std::make_unique<test::counter>();
      },
      [] {
        auto o = policy(aether::supervision::restart);
        o.restart.max_restarts = 10;
        o.restart.max_backoff = 300ms;
        return o;
      }());
  const actor_id c{"capped", "c"};
  REQUIRE(f.system.tell(c, test::add{1}));
  f.exec.run();
  const int before = f.instances;
  // Backoffs 100, 200, then 300 (not 400), 300 (not 800).
  for (const auto backoff : {100ms, 200ms, 300ms, 300ms}) {
    CAPTURE(backoff.count());
    const int n = f.instances;
    REQUIRE(f.system.tell(c, test::boom{"again"}));
    f.exec.run();
    f.exec.advance(backoff - 1ms);
    CHECK(f.instances == n);
    f.exec.advance(1ms);
    CHECK(f.instances == n + 1);
  }
  CHECK(f.instances == before + 4);
}

TEST_CASE("failures older than the window no longer count toward stopping") {
  fixture f{aether::supervision::restart}; // at most 2 restarts within 10 s
  for (int i = 0; i < 2; ++i) {
    REQUIRE(f.system.tell(f.c, test::boom{"early"}));
    f.exec.run();
    f.exec.advance(1s);
  }
  f.exec.advance(10s); // both failures leave the window
  REQUIRE(f.system.tell(f.c, test::boom{"late"}));
  f.exec.run();
  f.exec.advance(1s);
  CHECK(f.system.active_actors() == 1); // restarted, not stopped
  CHECK(f.system.metrics().restarts == 3);
  CHECK(*f.ask<int>(f.c, test::get{}) == 0);
}

TEST_CASE("too many failures in the window stop the actor and fail what waited") {
  fixture f{aether::supervision::restart};
  for (int i = 0; i < 3; ++i) {
    REQUIRE(f.system.tell(f.c, test::boom{"again"}));
    f.exec.run();
    f.exec.advance(1s);
  }
  // The third failure within 10 s exceeds max_restarts = 2: stopped.
  CHECK(f.system.active_actors() == 0);
  CHECK(f.system.metrics().restarts == 2);
  CHECK(f.system.metrics().handler_failures == 3);
  // A virtual actor is never gone for good: the next message activates it.
  CHECK(*f.ask<int>(f.c, test::get{}) == 0);
}

TEST_CASE("asks waiting for a restart that ends in stop fail with handler_failed") {
  fixture f{aether::supervision::restart};
  REQUIRE(f.system.tell(f.c, test::boom{"1"}));
  f.exec.run(); // restarting: what follows waits in order
  REQUIRE(f.system.tell(f.c, test::boom{"2"}));
  REQUIRE(f.system.tell(f.c, test::boom{"3"}));
  test::answer<int> got{f.system.ask<int>(f.c, test::get{}, 10s)};
  f.exec.run();
  f.exec.advance(100ms); // second instance fails on "2"
  CHECK_FALSE(got.ready());
  f.exec.advance(200ms); // third instance fails on "3": stopped
  REQUIRE(got.ready());
  REQUIRE_FALSE(got.value());
  CHECK(got.value().error().code() == aether::errc::handler_failed);
  CHECK(f.instances == 3);
}

TEST_CASE("stop drops the instance and the next message activates a fresh one") {
  fixture f{aether::supervision::stop};
  REQUIRE(f.system.tell(f.c, test::add{5}));
  REQUIRE(f.system.tell(f.c, test::boom{"x"}));
  f.exec.run();
  CHECK(f.system.active_actors() == 0);
  CHECK(*f.ask<int>(f.c, test::get{}) == 0);
  CHECK(f.instances == 2);
}

TEST_CASE("a factory that throws fails the message, not the runtime") {
  test::manual_fixture f;
  f.system.register_actor(
      "broken", [](const actor_id&) -> std::unique_ptr<aether::actor> { throw std::runtime_error{"no database"}; });
  auto r = f.ask<int>(actor_id{"broken", "b"}, test::get{});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::handler_failed);
  CHECK(r.error().detail().find("no database") != std::string::npos);
}

// On real threads and timers.
TEST_CASE("on the thread pool, a restart after a real backoff hands over what waited, in order") {
  aether::thread_pool_executor pool{2, 4};
  auto cfg = test::manual_fixture::small_config();
  aether::actor_system system{cfg, pool};
  std::atomic<int> instances{0};
  auto o = policy(aether::supervision::restart);
  o.restart.min_backoff = 20ms;
  system.register_actor(
      "counter",
      [&](const actor_id&) {
        instances.fetch_add(1);
        return std::make_unique<test::counter>();
      },
      o);
  const actor_id c{"counter", "c"};
  REQUIRE(system.tell(c, test::add{5}));
  test::answer<int> failed{system.ask<int>(c, test::boom{"x"}, 30s)};
  REQUIRE(system.tell(c, test::add{1}));
  REQUIRE(system.tell(c, test::add{2}));
  test::answer<int> total{system.ask<int>(c, test::get{}, 30s)};
  CHECK(failed.wait(60s).error().code() == aether::errc::handler_failed);
  CHECK(*total.wait(60s) == 3); // fresh state, then add 1, add 2
  CHECK(instances.load() == 2);
  CHECK(system.metrics().restarts == 1);
  aether::close_and_join(system, pool);
}
