// Many threads against the thread pool executor: what TSan checks.
#include "support/eventually.hpp"
#include "test_actors.hpp"

#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <map>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

struct relay {
  actor_id to;
  int sender;
  int first;
  int count;
};

/// Forwards `count` numbered messages to a recorder, one per turn, so that
/// its sends come from whichever thread runs its shard.
class forwarder : public aether::actor {
public:
  forwarder() {
    on([](const relay& r, aether::context& ctx) {
      for (int i = 0; i < r.count; ++i) (void)ctx.tell(r.to, test::remember{r.sender, r.first + i});
    });
  }
};

struct pooled {
  explicit pooled(aether::system_config cfg = config()) : system{std::move(cfg), pool} {
    system.register_actor<test::counter>("counter");
    system.register_actor<test::recorder>("recorder");
    system.register_actor<forwarder>("forwarder");
  }
  ~pooled() { aether::close_and_join(system, pool); }
  static aether::system_config config() {
    aether::system_config c;
    c.shard_count = 16;
    c.mailbox_capacity = 1u << 20;
    return c;
  }
  aether::thread_pool_executor pool{2, 16};
  aether::actor_system system;
};

} // namespace

TEST_CASE("many threads telling one actor lose nothing") {
  pooled p;
  const actor_id c{"counter", "hot"};
  constexpr int threads = 8;
  constexpr int per_thread = 20'000;
  std::vector<std::thread> senders;
  std::atomic<int> refused{0};
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        while (!p.system.tell(c, test::add{1})) refused.fetch_add(1);
      }
    });
  }
  for (auto& s : senders) s.join();
  // Order holds per sender only: this ask may overtake other threads' tells,
  // so ask until every tell has landed.
  AETHER_EVENTUALLY(*p.system.ask<int>(c, test::get{}, 30s).get() == threads * per_thread, 60s);
}

TEST_CASE("messages from one actor to another keep their order while shards hop threads") {
  pooled p;
  const actor_id rec{"recorder", "r"};
  constexpr int forwarders = 6;
  constexpr int per_forwarder = 2'000;
  for (int f = 0; f < forwarders; ++f) {
    // Many small relays per forwarder: each is a separate turn, possibly on another thread.
    for (int chunk = 0; chunk < 10; ++chunk) {
      REQUIRE(p.system.tell(actor_id{"forwarder", "f" + std::to_string(f)},
                            relay{rec, f, chunk * (per_forwarder / 10), per_forwarder / 10}));
    }
  }
  // Wait until every message arrived.
  std::vector<test::remember> seen;
  AETHER_EVENTUALLY((seen = *p.system.ask<std::vector<test::remember>>(rec, test::history{}, 30s).get()).size() ==
                        forwarders * per_forwarder,
                    60s);
  std::map<int, int> next;
  bool ordered = true;
  for (const auto& r : seen) {
    auto& expected_seq = next[r.sender];
    ordered = ordered && r.seq == expected_seq;
    expected_seq = r.seq + 1;
  }
  CHECK(ordered);
}

TEST_CASE("asks from many threads each get their own answer") {
  pooled p;
  constexpr int threads = 4;
  constexpr int asks = 500;
  std::atomic<int> correct{0};
  std::vector<std::thread> askers;
  for (int t = 0; t < threads; ++t) {
    askers.emplace_back([&, t] {
      const actor_id mine{"counter", "t" + std::to_string(t)};
      for (int i = 1; i <= asks; ++i) {
        (void)p.system.tell(mine, test::add{1});
        auto r = p.system.ask<int>(mine, test::get{}, 30s).get();
        if (r && *r == i) correct.fetch_add(1);
      }
    });
  }
  for (auto& a : askers) a.join();
  CHECK(correct.load() == threads * asks);
}

TEST_CASE("actors activated and passivated concurrently stay consistent") {
  auto cfg = pooled::config();
  cfg.idle_timeout = 5ms;
  pooled p{cfg};
  std::atomic<int> accepted{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < 2'000; ++i)
        if (p.system.tell(actor_id{"counter", "k" + std::to_string((i * 7 + t) % 300)}, test::add{1})) ++accepted;
    });
  }
  for (auto& s : senders) s.join();
  REQUIRE(accepted.load() == 8'000);
  // Every actor may be passivated while messages still wait in a mailbox, so
  // wait for the messages to be handled as well as for the actors to go.
  const auto settled = [&] { return p.system.metrics().messages == 8'000 && p.system.active_actors() == 0; };
  AETHER_EVENTUALLY(settled(), 60s);
  const auto m = p.system.metrics();
  CHECK(m.activations == m.passivations);
  CHECK(m.messages == 8'000);
}
