#include <aether/aether.hpp>

#include "support/env_var.hpp"
#include "test_actors.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::testing::env_var;

namespace {

aether::node_config small() {
  aether::node_config c;
  c.threads = 2;
  c.system.shard_count = 8;
  c.handle_signals = false;
  return c;
}

aether::task<int> sum_two(aether::node& n, actor_id a, actor_id b) {
  auto x = co_await n.ask<int>(a, test::get{}, 5s);
  auto y = co_await n.ask<int>(b, test::get{}, 5s);
  co_return (x ? *x : -1000) + (y ? *y : -1000);
}

aether::task<aether::errc> ask_nobody(aether::node& n) {
  auto r = co_await n.ask<int>(actor_id{"nobody", "x"}, test::get{}, 5s);
  co_return r ? aether::errc{} : r.error().code();
}

} // namespace

TEST_CASE("node_config reads the AETHER_ variables and rejects bad values") {
  {
    env_var t{"AETHER_THREADS", "3"};
    env_var s{"AETHER_SHARDS", "32"};
    env_var m{"AETHER_MAILBOX_CAPACITY", "1000"};
    env_var i{"AETHER_IDLE_TIMEOUT_MS", "2500"};
    auto c = aether::node_config::from_env();
    REQUIRE(c);
    CHECK(c->threads == 3);
    CHECK(c->system.shard_count == 32);
    CHECK(c->system.mailbox_capacity == 1000);
    CHECK(c->system.idle_timeout == 2500ms);
  }
  for (const char* bad : {"", "-1", "12x", "0"}) {
    env_var s{"AETHER_SHARDS", bad};
    auto c = aether::node_config::from_env();
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == aether::errc::invalid_argument);
    CHECK(c.error().detail().find("AETHER_SHARDS") != std::string::npos);
  }
}

TEST_CASE("node_config reads the cluster's variables and rejects bad names and timings") {
  {
    env_var n{"AETHER_CLUSTER", "shop"};
    env_var id{"AETHER_NODE_ID", "n-1"};
    env_var s{"AETHER_CLUSTER_SHARDS", "100"};
    env_var h{"AETHER_HEARTBEAT_MS", "50"};
    env_var f{"AETHER_FAILURE_TIMEOUT_MS", "500"};
    auto c = aether::node_config::from_env();
    REQUIRE(c);
    CHECK(c->cluster.name == "shop");
    CHECK(c->cluster.node_id == "n-1");
    CHECK(c->cluster.shards == 100);
    CHECK(c->cluster.heartbeat_interval == 50ms);
    CHECK(c->cluster.failure_timeout == 500ms);
    CHECK(c->cluster.self_fence_timeout == 400ms); // follows the failure timeout
  }
  for (auto [name, value] : {std::pair{"AETHER_NODE_ID", "a.b"}, std::pair{"AETHER_NODE_ID", "$x"},
                             std::pair{"AETHER_CLUSTER", "a b"}, std::pair{"AETHER_CLUSTER_SHARDS", "0"}}) {
    env_var v{name, value};
    auto c = aether::node_config::from_env();
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == aether::errc::invalid_argument);
    CHECK(c.error().detail().find(name) != std::string::npos);
  }
  {
    // The self-fence must come before the failure timeout.
    env_var f{"AETHER_FAILURE_TIMEOUT_MS", "500"};
    env_var x{"AETHER_SELF_FENCE_MS", "600"};
    auto c = aether::node_config::from_env();
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == aether::errc::invalid_argument);
  }
  CHECK(!aether::default_node_id().empty());
  CHECK(aether::actor_id::validate_part(aether::default_node_id(), "node id"));
}

TEST_CASE("without NATS a node is a one-node cluster that owns every shard") {
  auto cfg = small();
  cfg.cluster.shards = 32;
  aether::node node{cfg};
  const auto v = node.cluster().snapshot();
  CHECK(v->serving);
  CHECK(v->leader == v->self);
  CHECK(v->self.node == aether::default_node_id());
  CHECK(v->term == 1);
  CHECK(v->epoch() == 1);
  CHECK(v->owned_shards.size() == 32);
  REQUIRE(v->members.size() == 1);
  CHECK(v->members[0].status == aether::member_status::alive);
  int changes = 0;
  auto w = node.cluster().watch([&changes](const aether::cluster_snapshot&) { ++changes; });
  node.stop();
  CHECK(!node.cluster().snapshot()->serving); // it left
  CHECK(changes > 0);
}

TEST_CASE("cluster::wait_until returns once its condition holds, and false when it never does") {
  auto cfg = small();
  cfg.cluster.shards = 16;
  aether::node node{cfg};
  const auto owns_all = [](const aether::cluster_snapshot& s) {
    return s.serving && s.map->owning_members() == std::vector<aether::member_id>{s.self} &&
           s.owned_shards.size() == 16;
  };
  CHECK(node.cluster().wait_until(owns_all, std::chrono::seconds{10}));
  const auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(node.cluster().wait_until([](const aether::cluster_snapshot& s) { return s.term > 1000; },
                                        std::chrono::milliseconds{50}));
  CHECK(std::chrono::steady_clock::now() - before >= std::chrono::milliseconds{50});
  // A change wakes the waiter: the node leaving ends its serving.
  std::thread stopper{[&node] {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    node.stop();
  }};
  CHECK(node.cluster().wait_until([](const aether::cluster_snapshot& s) { return !s.serving; },
                                  std::chrono::seconds{10}));
  stopper.join();
}

TEST_CASE("a node answers tells and asks from outside: blocking, future, callback and coroutine") {
  aether::node node{small()};
  node.register_actor<test::counter>("counter");
  const actor_id a{"counter", "a"};
  const actor_id b{"counter", "b"};
  REQUIRE(node.tell(a, test::add{2}));
  REQUIRE(node.tell(b, test::add{3}));

  CHECK(*node.ask<int>(a, test::get{}, 5s).get() == 2);

  auto fut = node.ask<int>(b, test::get{}, 5s).to_future();
  CHECK(*fut.get() == 3);

  std::promise<int> via_callback;
  node.ask<int>(a, test::get{}, 5s).then([&](aether::expected<int> r) { via_callback.set_value(r ? *r : -1); });
  CHECK(via_callback.get_future().get() == 2);

  CHECK(sum_two(node, a, b).get() == 5);
  CHECK(ask_nobody(node).get() == aether::errc::unknown_actor_type);
}

TEST_CASE("stop drains queued messages, passivates every actor and refuses new ones") {
  std::atomic<int> passivated{0};
  struct tracked : test::counter {
    explicit tracked(std::atomic<int>& n) : n_{n} {}
    void on_passivate(aether::context&) override { n_.fetch_add(1); }
    std::atomic<int>& n_;
  };
  aether::node node{small()};
  node.register_actor("tracked", [&](const actor_id&) { return std::make_unique<tracked>(passivated); });
  for (int i = 0; i < 50; ++i) REQUIRE(node.tell(actor_id{"tracked", std::to_string(i)}, test::add{1}));
  node.stop();
  CHECK(node.metrics().messages == 50);
  CHECK(passivated.load() == 50);
  CHECK(node.tell(actor_id{"tracked", "0"}, test::add{1}).error().code() == aether::errc::shutting_down);
  auto late = node.ask<int>(actor_id{"tracked", "0"}, test::get{}, 1s).get();
  CHECK(late.error().code() == aether::errc::shutting_down);
  node.stop();            // idempotent
  CHECK(node.run() == 0); // returns at once once stopped
}

TEST_CASE("run() returns 0 after SIGTERM, with every actor passivated") {
  int ready[2];
  int report[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(report) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto cfg = small();
    cfg.handle_signals = true;
    int code = 1;
    {
      aether::node node{cfg};
      node.register_actor<test::counter>("counter");
      for (int i = 0; i < 20; ++i) (void)node.tell(actor_id{"counter", std::to_string(i)}, test::add{1});
      (void)node.ask<int>(actor_id{"counter", "0"}, test::get{}, 5s).get();
      (void)!::write(ready[1], "r", 1);
      code = node.run();
      const auto passivations = node.metrics().passivations;
      (void)!::write(report[1], &passivations, sizeof passivations);
    }
    ::_exit(code);
  }
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  REQUIRE(::kill(child, SIGTERM) == 0);
  std::uint64_t passivations = 0;
  REQUIRE(::read(report[0], &passivations, sizeof passivations) == sizeof passivations);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(passivations == 20);
}
