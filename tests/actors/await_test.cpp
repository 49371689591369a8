#include "support/eventually.hpp"
#include "support/pending_ask.hpp"
#include "test_actors.hpp"

#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

struct begin_work {
  bool exclusive;
};

/// Starts outside work and records, in order, what it handles meanwhile.
class worker : public aether::actor {
public:
  explicit worker(std::optional<aether::completion<int>>& slot) : slot_{slot} {
    on([this](const begin_work& b, aether::context& ctx) {
      auto [done, handle] = ctx.await_completion<int>(1s, b.exclusive);
      slot_.emplace(done);
      handle.then([this](const int& v) { log_.push_back(v); },
                  [this](const aether::error& e) { log_.push_back(-static_cast<int>(e.code())); });
    });
    on([this](const test::add& a) { log_.push_back(a.amount); });
    on([this](const test::history&) { return log_; });
  }

private:
  std::optional<aether::completion<int>>& slot_;
  std::vector<int> log_;
};

struct fixture : test::manual_fixture {
  fixture() {
    system.register_actor("worker", [this](const actor_id&) { return std::make_unique<worker>(slot); });
  }
  std::vector<int> log() {
    auto r = ask<std::vector<int>>(w, test::history{});
    REQUIRE(r);
    return *r;
  }
  std::optional<aether::completion<int>> slot;
  const actor_id w{"worker", "w"};
};

} // namespace

TEST_CASE("during an exclusive wait later messages wait, in order, until the completion has run") {
  fixture f;
  REQUIRE(f.system.tell(f.w, begin_work{true}));
  REQUIRE(f.system.tell(f.w, test::add{1}));
  REQUIRE(f.system.tell(f.w, test::add{2}));
  f.exec.run();
  REQUIRE(f.slot);
  CHECK(f.slot->complete(100));
  CHECK_FALSE(f.slot->complete(200)); // once only
  f.exec.run();
  CHECK(f.log() == std::vector<int>{100, 1, 2});
}

TEST_CASE("a plain wait lets other messages through meanwhile") {
  fixture f;
  REQUIRE(f.system.tell(f.w, begin_work{false}));
  REQUIRE(f.system.tell(f.w, test::add{1}));
  f.exec.run();
  REQUIRE(f.slot);
  f.slot->complete(100);
  f.exec.run();
  CHECK(f.log() == std::vector<int>{1, 100});
}

TEST_CASE("a wait that is not completed in time gets timeout, and the actor goes on") {
  fixture f;
  REQUIRE(f.system.tell(f.w, begin_work{true}));
  REQUIRE(f.system.tell(f.w, test::add{1}));
  f.exec.run();
  f.exec.advance(1s);
  CHECK_FALSE(f.slot->complete(100)); // too late
  CHECK(f.log() == std::vector<int>{-static_cast<int>(aether::errc::timeout), 1});
}

TEST_CASE("a completion from another thread runs on the actor's turn") {
  fixture f;
  REQUIRE(f.system.tell(f.w, begin_work{true}));
  f.exec.run();
  std::thread t{[&] { f.slot->fail(aether::error{aether::errc::unavailable}); }};
  t.join();
  f.exec.run();
  CHECK(f.log() == std::vector<int>{-static_cast<int>(aether::errc::unavailable)});
}

TEST_CASE("messages stashed behind a wait fail with the stop reason") {
  // The wait fails, and its callback stops the actor with a reason.
  test::manual_fixture f;
  f.system.register_actor("stopper", [](const actor_id&) {
    struct stopper : aether::actor {
      stopper() {
        on([](const begin_work&, aether::context& ctx) {
          auto [done, handle] = ctx.await_completion<int>(1s, true);
          handle.then([](const int&) {},
                      [](const aether::error& e, aether::context& c) {
                        c.stop(aether::error{e.code(), "replay"});
                      });
          done.fail(aether::error{aether::errc::replay_failed, "bad event"});
        });
        on([](const test::get&) { return 1; });
      }
    };
    return std::make_unique<stopper>();
  });
  const actor_id s{"stopper", "s"};
  REQUIRE(f.system.tell(s, begin_work{true}));
  test::answer<int> behind{f.system.ask<int>(s, test::get{}, 5s)};
  f.exec.run();
  REQUIRE(behind.ready());
  REQUIRE_FALSE(behind.value());
  CHECK(behind.value().error().code() == aether::errc::replay_failed);
  CHECK(behind.value().error().detail() == "replay");
}

TEST_CASE("a completion or promise answered after its system is gone touches nothing and frees its callbacks") {
  // Outside work (a store's acknowledgement) may outlive the node that
  // started it: answering then must neither reach the destroyed system and
  // executor nor keep what the callbacks hold.
  std::optional<aether::completion<int>> late;
  std::optional<aether::response_promise> promise;
  auto held = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  std::atomic<bool> taken{false}; // set after both are stored, so reading them is ordered after
  std::optional<aether::pending<int>> started;
  {
    aether::thread_pool_executor pool{2, 4};
    aether::actor_system system{aether::system_config{}, pool};
    system.register_actor("starter", [&](const actor_id&) {
      struct starter : aether::actor {
        starter(std::optional<aether::completion<int>>& l, std::optional<aether::response_promise>& p,
                const std::shared_ptr<int>& h, std::atomic<bool>& r, std::atomic<bool>& t) {
          on([&l, &p, h, &r, &t](const begin_work&, aether::context& ctx) {
            auto [done, handle] = ctx.await_completion<int>(60s, true);
            handle.then([h, &r](const int&) { r = true; }, [h, &r](const aether::error&) { r = true; });
            p.emplace(ctx.promise());
            l.emplace(done);
            t = true;
          });
        }
      };
      return std::make_unique<starter>(late, promise, held, ran, taken);
    });
    started.emplace(system.ask<int>(actor_id{"starter", "s"}, begin_work{true}, 60s));
    AETHER_EVENTUALLY(taken.load(), 10s);
    aether::close_and_join(system, pool);
  }
  REQUIRE(promise);
  late->complete(7);
  promise->deliver(8);
  CHECK_FALSE(ran.load());
  late.reset();
  CHECK(held.use_count() == 1);
  // The outside asker still gets what was delivered.
  const auto answer = started->get();
  REQUIRE(answer);
  CHECK(*answer == 8);
}
