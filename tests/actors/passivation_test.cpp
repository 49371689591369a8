#include "test_actors.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

struct tick {};
struct start_ticking {};
struct ticks {};
struct stop_now {};
struct lifecycle_log {
  std::vector<std::string> events;
};

/// Logs its lifecycle into a shared log; ticks on a timer when asked.
class lifecycle : public aether::actor {
public:
  explicit lifecycle(lifecycle_log& log) : log_{log} {
    on([this](const test::add& a) { total_ += a.amount; });
    on([this](const test::get&) { return total_; });
    on([this](const start_ticking&, aether::context& ctx) { ctx.schedule_periodic(10ms, tick{}); });
    on([this](const tick&) { ++ticks_; });
    on([this](const ticks&) { return ticks_; });
    on([](const stop_now&, aether::context& ctx) { ctx.stop(); });
  }
  void on_activate(aether::context& ctx) override {
    log_.events.push_back("activate " + std::string{ctx.self().key()});
  }
  void on_passivate(aether::context& ctx) override {
    log_.events.push_back("passivate " + std::string{ctx.self().key()});
  }

private:
  lifecycle_log& log_;
  int total_ = 0;
  int ticks_ = 0;
};

struct fixture : test::manual_fixture {
  fixture() {
    system.register_actor("life", [this](const actor_id&) { return std::make_unique<lifecycle>(log); });
  }
  lifecycle_log log;
};

} // namespace

TEST_CASE("the first message activates an actor and an idle one is passivated, then reactivated") {
  fixture f; // idle timeout 60 s
  const actor_id a{"life", "a"};
  REQUIRE(f.system.tell(a, test::add{2}));
  f.exec.run();
  CHECK(f.log.events == std::vector<std::string>{"activate a"});
  CHECK(f.system.active_actors() == 1);

  f.exec.advance(59s);
  CHECK(f.system.active_actors() == 1);
  f.exec.advance(20s);
  CHECK(f.log.events == std::vector<std::string>{"activate a", "passivate a"});
  CHECK(f.system.active_actors() == 0);
  CHECK(f.system.metrics().passivations == 1);

  // Transparently back, as a fresh instance (its state was not persisted).
  CHECK(*f.ask<int>(a, test::get{}) == 0);
  CHECK(f.log.events.back() == "activate a");
  CHECK(f.system.metrics().activations == 2);
}

TEST_CASE("messages keep an actor active") {
  fixture f;
  const actor_id a{"life", "a"};
  for (int i = 0; i < 5; ++i) {
    REQUIRE(f.system.tell(a, test::add{1}));
    f.exec.advance(40s);
  }
  CHECK(f.system.metrics().passivations == 0);
  CHECK(*f.ask<int>(a, test::get{}) == 5);
}

TEST_CASE("timers deliver to the actor, do not keep it alive, and die with it") {
  fixture f;
  const actor_id a{"life", "a"};
  REQUIRE(f.system.tell(a, start_ticking{}));
  f.exec.advance(100ms);
  CHECK(*f.ask<int>(a, ticks{}) == 10);
  f.exec.advance(90s);
  CHECK(f.system.active_actors() == 0);
  const auto timers_after = f.exec.active_timers();
  CHECK(*f.ask<int>(a, ticks{}) == 0); // fresh instance, no timer of the old one
  f.exec.advance(100ms);
  CHECK(*f.ask<int>(a, ticks{}) == 0);
  // Past the asks' own deadlines (their timer waits for the earliest even when answered).
  f.exec.advance(5s);
  CHECK(*f.ask<int>(a, ticks{}) == 0);
  f.exec.advance(5s);
  CHECK(f.exec.active_timers() == timers_after); // the old instance's timer is gone, nothing new runs
}

TEST_CASE("stop() passivates the actor after the handler") {
  fixture f;
  const actor_id a{"life", "a"};
  REQUIRE(f.system.tell(a, test::add{1}));
  REQUIRE(f.system.tell(a, stop_now{}));
  f.exec.run();
  CHECK(f.log.events == std::vector<std::string>{"activate a", "passivate a"});
  CHECK(*f.ask<int>(a, test::get{}) == 0);
}

TEST_CASE("a per-type idle timeout overrides the system default") {
  test::manual_fixture f;
  aether::actor_options quick;
  quick.idle_timeout = 100ms;
  f.system.register_actor<test::counter>("quick", quick);
  f.system.register_actor<test::counter>("slow");
  REQUIRE(f.system.tell(actor_id{"quick", "q"}, test::add{1}));
  REQUIRE(f.system.tell(actor_id{"slow", "s"}, test::add{1}));
  f.exec.run();
  f.exec.advance(2s);
  CHECK(f.system.active_actors() == 1);
}

TEST_CASE("close passivates every actor and later messages fail with shutting_down") {
  fixture f;
  for (const char* k : {"a", "b", "c"}) REQUIRE(f.system.tell(actor_id{"life", k}, test::add{1}));
  bool closed = false;
  f.system.close([&] { closed = true; });
  f.exec.run();
  CHECK(closed);
  CHECK(f.system.active_actors() == 0);
  CHECK(std::count_if(f.log.events.begin(), f.log.events.end(),
                      [](const std::string& e) { return e.starts_with("passivate"); }) == 3);
  CHECK(f.system.tell(actor_id{"life", "a"}, test::add{1}).error().code() == aether::errc::shutting_down);
}
