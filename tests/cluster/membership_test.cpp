// Membership, failure detection, leader terms and maps: several members in one
// process on a manual clock (see sim.hpp), so every case is deterministic.
#include "sim.hpp"

#include <algorithm>
#include <cstdlib>
#include <random>

using namespace std::chrono_literals;

namespace {

std::vector<std::uint32_t> sorted_counts(const aether::cluster_snapshot& v) {
  std::vector<std::uint32_t> out;
  for (const auto& m : v.alive_members()) out.push_back(v.map->count_of(m));
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

TEST_CASE("the first member creates the cluster, leads term 1 and owns every shard") {
  sim::world w{16};
  auto& a = w.start("a");
  w.until([&] { return a.started; });
  const auto v = a.view();
  CHECK(v->serving);
  CHECK(v->term == 1);
  CHECK(v->leader == v->self);
  CHECK(v->shard_count == 16);
  CHECK(v->owned_shards.size() == 16);
  CHECK(v->epoch() == 1);
}

TEST_CASE("three members agree on members, leader and a 34/33/33 map") {
  sim::world w{100};
  w.start("a");
  w.start("b");
  w.start("c");
  w.until([&] { return w.converged() && w.live().size() == 3 && w.live()[0]->view()->alive_members().size() == 3; });
  const auto v = w.live()[0]->view();
  CHECK(sorted_counts(*v) == std::vector<std::uint32_t>{33, 33, 34});
  std::uint32_t total = 0;
  for (auto* n : w.live()) total += static_cast<std::uint32_t>(n->view()->owned_shards.size());
  CHECK(total == 100);
  w.check_invariants();
}

TEST_CASE("a fourth member takes 25 shards, a member that leaves hands over only its own") {
  sim::world w{100};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  const auto before = w.live()[0]->view()->map;
  auto& d = w.start("d");
  w.until([&] { return d.started && w.converged() && d.view()->alive_members().size() == 4; });
  const auto after = d.view()->map;
  CHECK(sorted_counts(*d.view()) == std::vector<std::uint32_t>{25, 25, 25, 25});
  CHECK(moved_shards(*before, *after) == 25);

  // b leaves gracefully: only its shards move.
  auto& b = *w.live()[1];
  const auto b_id = b.view()->self;
  bool stopped = false;
  b.m->stop([&] { stopped = true; });
  w.until([&] { return stopped; });
  w.crash(b); // gone for good
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  const auto last = w.live()[0]->view()->map;
  CHECK(moved_shards(*after, *last) == after->count_of(b_id));
  CHECK(sorted_counts(*w.live()[0]->view()) == std::vector<std::uint32_t>{33, 33, 34});
  w.check_invariants();
}

TEST_CASE("a dead leader is replaced within 2 x heartbeat + failure timeout, by a higher term") {
  sim::world w{64};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  const auto lv = w.live();
  auto* leader = *std::find_if(lv.begin(), lv.end(), [](sim::node* n) { return n->view()->leader == n->view()->self; });
  const auto old_term = leader->view()->term;
  const auto old_leader = leader->view()->self;
  w.crash(*leader);
  const auto took = w.until([&] {
    for (auto* n : w.live()) {
      const auto v = n->view();
      if (v->leader.empty() || v->leader == old_leader || v->term <= old_term) return false;
    }
    return true;
  });
  const auto cfg = w.config("x");
  CHECK(took <= 2 * cfg.heartbeat_interval + cfg.failure_timeout);
  // Then the old leader is declared dead and its shards move to the two left.
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 2; });
  CHECK(sorted_counts(*w.live()[0]->view()) == std::vector<std::uint32_t>{32, 32});
  CHECK(w.live()[0]->view()->map->term() > old_term);
  w.check_invariants();
}

TEST_CASE("a member that stops heartbeating is declared dead and its shards move") {
  sim::world w{30};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  auto lv = w.live();
  auto* follower =
      *std::find_if(lv.begin(), lv.end(), [](sim::node* n) { return n->view()->leader != n->view()->self; });
  const auto id = follower->view()->self;
  const auto term = follower->view()->term;
  w.crash(*follower);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 2; });
  const auto v = w.live()[0]->view();
  CHECK(v->term == term); // no election for a follower
  CHECK(v->map->count_of(id) == 0);
  const auto& members = v->members;
  CHECK(std::find(members.begin(), members.end(), aether::member{id, aether::member_status::dead}) != members.end());
  w.check_invariants();
}

TEST_CASE("a member cut off fences itself before it is declared dead, then rejoins as a new incarnation") {
  sim::world w{30};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  auto lv = w.live();
  auto* victim = *std::find_if(lv.begin(), lv.end(), [](sim::node* n) { return n->view()->leader != n->view()->self; });
  const auto old_id = victim->view()->self;
  w.heartbeats->silence(victim->id, true);
  // It stops serving on its own before the leader's failure timeout runs out.
  const auto fenced_after = w.until([&] { return !victim->view()->serving; });
  CHECK(fenced_after < w.config("x").failure_timeout);
  for (auto* n : lv) {
    if (n != victim) CHECK(n->view()->alive_members().size() == 3); // not yet declared dead
  }
  w.until([&] {
    const auto v = lv[0] == victim ? lv[1]->view() : lv[0]->view();
    const auto& ms = v->members;
    return std::find(ms.begin(), ms.end(), aether::member{old_id, aether::member_status::dead}) != ms.end();
  });
  w.heartbeats->silence(victim->id, false);
  w.until([&] { return w.converged() && victim->view()->alive_members().size() == 3; });
  const auto v = victim->view();
  CHECK(v->self.node == old_id.node);
  CHECK(v->self.incarnation != old_id.incarnation);
  CHECK(v->serving);
  CHECK(!v->owned_shards.empty());
  w.check_invariants();
}

TEST_CASE("a paused member resumes, learns it was declared dead, and rejoins before serving again") {
  sim::world w{30};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  auto lv = w.live();
  // Pause the leader: the worst case, it believes it leads when it resumes.
  auto* victim = *std::find_if(lv.begin(), lv.end(), [](sim::node* n) { return n->view()->leader == n->view()->self; });
  const auto old_id = victim->view()->self;
  victim->ex->pause();
  w.advance(3s);
  victim->ex->resume();
  w.until([&] { return w.converged() && victim->view()->alive_members().size() == 3; });
  const auto v = victim->view();
  CHECK(v->self.incarnation != old_id.incarnation);
  CHECK(v->leader != old_id);
  w.check_invariants();
}

TEST_CASE("a restarted node is a new incarnation and the old one is dead at once") {
  sim::world w{30};
  for (auto id : {"a", "b"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 2; });
  auto& b = *w.live()[1];
  const auto old_id = b.view()->self;
  w.crash(b);
  auto& b2 = w.start(b.id); // no failure timeout passes
  w.until([&] { return b2.started; }, 500ms);
  const auto v = w.live()[0]->view();
  CHECK(v->alive_members().size() == 2);
  CHECK(*v->members.begin() != aether::member{old_id, aether::member_status::alive});
  w.until([&] { return w.converged(); });
  w.check_invariants();
}

TEST_CASE("a node with another shard count refuses to start, naming both numbers") {
  sim::world w{30};
  w.start("a");
  w.until([&] { return w.live().size() == 1; });
  auto& b = w.start("b", 64);
  w.until([&] { return b.start_failed; });
  CHECK(b.start_error.find("30") != std::string::npos);
  CHECK(b.start_error.find("64") != std::string::npos);
  CHECK(w.live()[0]->view()->alive_members().size() == 1);
}

TEST_CASE("without the control log no term or map changes, afterwards the cluster converges") {
  sim::world w{30};
  for (auto id : {"a", "b", "c"}) w.start(id);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 3; });
  const auto epoch = w.live()[0]->view()->epoch();
  w.log->set_available(false);
  auto lv = w.live();
  auto* leader = *std::find_if(lv.begin(), lv.end(), [](sim::node* n) { return n->view()->leader == n->view()->self; });
  w.crash(*leader);
  w.advance(3s);
  for (auto* n : w.live()) CHECK(n->view()->epoch() == epoch);
  w.log->set_available(true);
  w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 2; });
  w.check_invariants();
}

TEST_CASE("random pauses, crashes and restarts: one leader per term, epochs only grow, one map per epoch") {
  // AETHER_CLUSTER_SOAK=1: 200 seeds instead of 5.
  const unsigned seeds = std::getenv("AETHER_CLUSTER_SOAK") != nullptr ? 200 : 5;
  for (unsigned seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng{seed};
    sim::world w{50};
    for (auto id : {"a", "b", "c", "d"}) w.start(id);
    w.until([&] { return w.converged() && w.live()[0]->view()->alive_members().size() == 4; });
    for (int round = 0; round < 12; ++round) {
      auto lv = w.live();
      auto* n = lv[rng() % lv.size()];
      switch (rng() % 3) {
      case 0: // pause for a while, maybe past the failure timeout
        n->ex->pause();
        w.advance(std::chrono::milliseconds{200 + rng() % 2000});
        n->ex->resume();
        break;
      case 1: // kill -9 and restart under the same id
        w.crash(*n);
        w.advance(std::chrono::milliseconds{rng() % 1500});
        w.start(n->id);
        break;
      default: // cut off for a while
        w.heartbeats->silence(n->id, true);
        w.advance(std::chrono::milliseconds{300 + rng() % 1500});
        w.heartbeats->silence(n->id, false);
        break;
      }
      w.advance(std::chrono::milliseconds{rng() % 500});
    }
    w.until([&] { return w.converged(); }, 20s);
    w.check_invariants();
  }
}
