// The shard handoff's state machine on one node, step by step on a manual
// clock: planned moves wait for the old owner's release (or its deadline),
// dead owners' shards are served at once, a fenced node drops what it served.
#include "handoff.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

using namespace std::chrono_literals;
using aether::cluster_snapshot;
using aether::handoff;
using aether::handoff_step;
using aether::member;
using aether::member_id;
using aether::member_status;
using aether::remote_envelope;
using aether::shard_map;
using aether::shard_state;

namespace {

const member_id a{"a", 1};
const member_id b{"b", 2};
const member_id c{"c", 3};

/// The view of `self` with map `owners` of `epoch` and these members.
cluster_snapshot view(const member_id& self, std::uint64_t epoch, std::vector<member_id> owners,
                      std::vector<member> members, bool serving = true) {
  cluster_snapshot v;
  v.cluster = "h";
  v.self = self;
  v.members = std::move(members);
  v.map = std::make_shared<const shard_map>(epoch, 1, owners);
  v.shard_count = static_cast<std::uint32_t>(owners.size());
  v.serving = serving;
  if (serving) v.owned_shards = v.map->shards_of(self);
  return v;
}

std::vector<member> alive(std::initializer_list<member_id> ids) {
  std::vector<member> out;
  for (const auto& id : ids) out.push_back(member{id, member_status::alive});
  return out;
}

remote_envelope tell(int seq) {
  remote_envelope e;
  e.target = aether::actor_id{"account", "k"};
  e.type = "wire.note";
  e.payload = "{\"seq\":" + std::to_string(seq) + "}";
  return e;
}

using time_point = aether::executor::time_point;
const time_point t0{};

/// Applies a node's first map and lets its deadline pass: it serves its shards.
void first(handoff& h, const cluster_snapshot& v) {
  h.apply(v, t0);
  h.expire(t0 + 1h);
}

} // namespace

TEST_CASE("a node's first map waits for any release while others live, alone it serves at once") {
  handoff alone{1, 3s, 100};
  CHECK(alone.apply(view(a, 1, {a}, alive({a})), t0).serve == std::vector<std::uint32_t>{0});

  handoff h{2, 3s, 100};
  auto step = h.apply(view(b, 1, {a, b}, alive({a, b})), t0);
  CHECK(step.serve.empty());
  CHECK(h.state(0) == shard_state::remote);
  CHECK(h.state(1) == shard_state::incoming);
  CHECK(h.released(1, c, 1).serve == std::vector<std::uint32_t>{1});
  CHECK(h.state(1) == shard_state::serving);
}

TEST_CASE("a shard won from a live node waits for its release, held messages keep their order") {
  handoff h{2, 3s, 100};
  first(h, view(b, 1, {a, b}, alive({a, b})));
  CHECK(h.state(1) == shard_state::serving);
  handoff_step step;

  // Map 2 moves shard 0 from a (alive) to b: incoming, messages wait.
  step = h.apply(view(b, 2, {b, b}, alive({a, b})), t0 + 10ms);
  CHECK(step.serve.empty());
  CHECK(h.state(0) == shard_state::incoming);
  CHECK(h.releaser(0) == a);
  for (int i = 1; i <= 3; ++i) REQUIRE(h.hold(0, tell(i)));
  CHECK(h.held() == 3);

  // A release from someone else changes nothing; a's serves it.
  CHECK(h.released(0, c, 2).serve.empty());
  CHECK(h.state(0) == shard_state::incoming);
  step = h.released(0, a, 2);
  CHECK(step.serve == std::vector<std::uint32_t>{0});
  CHECK(h.state(0) == shard_state::serving);
  auto held = h.take_held(0);
  REQUIRE(held.size() == 3);
  CHECK(held[0].payload == "{\"seq\":1}");
  CHECK(held[2].payload == "{\"seq\":3}");
  CHECK(h.held() == 0);
}

TEST_CASE("an old owner that does not release in time is overtaken at the deadline") {
  handoff h{1, 3s, 100};
  h.apply(view(b, 1, {a}, alive({a, b})), t0);
  h.apply(view(b, 2, {b}, alive({a, b})), t0);
  CHECK(h.state(0) == shard_state::incoming);
  CHECK(h.expire(t0 + 2999ms).serve.empty());
  CHECK(h.expire(t0 + 3s).serve == std::vector<std::uint32_t>{0});
  CHECK(h.state(0) == shard_state::serving);
}

TEST_CASE("a shard of a dead node is served at once, one whose old owner dies while it waits too") {
  handoff h{2, 3s, 100};
  h.apply(view(b, 1, {a, a}, alive({a, b})), t0);
  // a was declared dead: map 2 gives b both shards, no wait.
  auto dead = std::vector<member>{{a, member_status::dead}, {b, member_status::alive}};
  auto step = h.apply(view(b, 2, {b, b}, dead), t0);
  CHECK(step.serve == std::vector<std::uint32_t>{0, 1});

  handoff g{1, 3s, 100};
  g.apply(view(b, 1, {a}, alive({a, b})), t0);
  g.apply(view(b, 2, {b}, alive({a, b})), t0);
  CHECK(g.state(0) == shard_state::incoming);
  CHECK(g.apply(view(b, 2, {b}, dead), t0).serve == std::vector<std::uint32_t>{0});
}

TEST_CASE("the old owner drains a shard lost to a live node, then names the node to release it to") {
  handoff h{2, 3s, 100};
  first(h, view(a, 1, {a, a}, alive({a, b})));
  auto step = h.apply(view(a, 2, {a, b}, alive({a, b})), t0);
  CHECK(step.drain == std::vector<std::uint32_t>{1});
  CHECK(h.state(1) == shard_state::draining);
  auto to = h.drained(1);
  REQUIRE(to.has_value());
  CHECK(*to == b);
  CHECK(h.state(1) == shard_state::remote);
  CHECK_FALSE(h.drained(1).has_value()); // once
}

TEST_CASE("a fenced node drops every shard at once, with no release") {
  handoff h{2, 3s, 100};
  first(h, view(a, 1, {a, a}, alive({a, b})));
  auto step = h.apply(view(a, 1, {a, a}, alive({a, b}), false), t0);
  CHECK(step.drop == std::vector<std::uint32_t>{0, 1});
  CHECK(step.drain.empty());
  CHECK(h.state(0) == shard_state::remote);
  CHECK(h.state(1) == shard_state::remote);
}

TEST_CASE("a release that comes before the map is remembered, a leaving node drains everything") {
  handoff h{1, 3s, 100};
  h.apply(view(b, 1, {a}, alive({a, b})), t0);
  CHECK(h.released(0, a, 2).serve.empty());
  CHECK(h.apply(view(b, 2, {b}, alive({a, b})), t0).serve == std::vector<std::uint32_t>{0});

  handoff l{3, 3s, 100};
  first(l, view(a, 1, {a, b, a}, alive({a, b})));
  auto step = l.leave();
  CHECK(step.drain == std::vector<std::uint32_t>{0, 2});
  CHECK_FALSE(l.drained(0).has_value()); // the release goes to every member
  // The node that wins a shard from one that left waits for its release.
  handoff w{1, 3s, 100};
  w.apply(view(b, 1, {a}, alive({a, b})), t0);
  auto left = std::vector<member>{{a, member_status::left}, {b, member_status::alive}};
  CHECK(w.apply(view(b, 2, {b}, left), t0).serve.empty());
  CHECK(w.state(0) == shard_state::incoming);
}

TEST_CASE("the buffer is bounded, a shard lost before it was served hands its messages on") {
  handoff h{1, 3s, 2};
  h.apply(view(b, 1, {a}, alive({a, b, c})), t0);
  h.apply(view(b, 2, {b}, alive({a, b, c})), t0);
  CHECK(h.hold(0, tell(1)));
  CHECK(h.hold(0, tell(2)));
  CHECK_FALSE(h.hold(0, tell(3)));
  auto step = h.apply(view(b, 3, {c}, alive({a, b, c})), t0);
  CHECK(step.rehome == std::vector<std::uint32_t>{0});
  CHECK(h.state(0) == shard_state::remote);
  CHECK(h.take_held(0).size() == 2);
}

TEST_CASE("a node that released a shard says so again to the node it released it to, and to no other") {
  handoff h{1, 3s, 100};
  first(h, view(a, 1, {a}, alive({a, b, c})));
  h.apply(view(a, 2, {b}, alive({a, b, c})), t0);
  CHECK_FALSE(h.released_to(0, b)); // still draining
  REQUIRE(h.drained(0) == b);
  CHECK(h.released_to(0, b));
  CHECK_FALSE(h.released_to(0, c));
  // Served here again: no longer released.
  h.apply(view(a, 3, {a}, alive({a, b, c})), t0);
  CHECK_FALSE(h.released_to(0, b));
}

TEST_CASE("an old owner that answers 'wait' is never overtaken, one that stops answering is, at the next deadline") {
  handoff h{1, 3s, 100};
  h.apply(view(b, 1, {a}, alive({a, b})), t0);
  auto step = h.apply(view(b, 2, {b}, alive({a, b})), t0);
  REQUIRE(step.query.size() == 1);
  CHECK(step.query[0].second == a);
  // a still drains (a slow write): it answers the query with "wait".
  h.waiting(0, c); // not the node waited for: no effect
  h.waiting(0, a);
  step = h.expire(t0 + 3s);
  CHECK(step.serve.empty());
  REQUIRE(step.query.size() == 1); // asked again
  CHECK(step.query[0].second == a);
  CHECK(h.state(0) == shard_state::incoming);
  h.waiting(0, a);
  CHECK(h.expire(t0 + 5s).serve.empty());
  CHECK(h.expire(t0 + 6s).serve.empty());
  CHECK(h.state(0) == shard_state::incoming);
  // Its release serves the shard.
  CHECK(h.released(0, a, 2).serve == std::vector<std::uint32_t>{0});

  // An old owner that answered once, then went silent: overtaken one deadline later.
  handoff g{1, 3s, 100};
  g.apply(view(b, 1, {a}, alive({a, b})), t0);
  g.apply(view(b, 2, {b}, alive({a, b})), t0);
  g.waiting(0, a);
  CHECK(g.expire(t0 + 3s).serve.empty());
  CHECK(g.expire(t0 + 6s).serve == std::vector<std::uint32_t>{0});

  // A node's first map: any member that still has the shard makes it wait.
  handoff f{1, 3s, 100};
  f.apply(view(b, 1, {b}, alive({a, b, c})), t0);
  CHECK(f.state(0) == shard_state::incoming);
  f.waiting(0, c);
  CHECK(f.expire(t0 + 3s).serve.empty());
  CHECK(f.expire(t0 + 6s).serve == std::vector<std::uint32_t>{0});
}

TEST_CASE("a shard released early by a node that left is still asked for, the leaving node learns its new owner") {
  // The new owner: a's release came before the map, but a left, so b asks
  // it again (a may hold messages for the shard) before it serves.
  handoff h{1, 3s, 100};
  h.apply(view(b, 1, {a}, alive({a, b})), t0);
  CHECK(h.released(0, a, 1).serve.empty());
  auto left = std::vector<member>{{a, member_status::left}, {b, member_status::alive}};
  auto step = h.apply(view(b, 2, {b}, left), t0);
  CHECK(step.serve.empty());
  REQUIRE(step.query.size() == 1);
  CHECK(step.query[0].second == a);
  CHECK(h.state(0) == shard_state::incoming);
  CHECK(h.released(0, a, 1).serve == std::vector<std::uint32_t>{0});

  // The leaving node: it releases to everyone and learns the new owner from its query.
  handoff l{2, 3s, 100};
  first(l, view(a, 1, {a, a}, alive({a, b, c})));
  l.leave();
  CHECK(l.forward_to(0).empty()); // still draining
  l.learned_owner(0, c);
  CHECK_FALSE(l.drained(0).has_value());
  CHECK_FALSE(l.drained(1).has_value());
  CHECK(l.released_to(0, c));
  CHECK(l.forward_to(0) == c);
  CHECK(l.forward_to(1).empty()); // nobody asked yet
  l.learned_owner(1, b);
  CHECK(l.forward_to(1) == b);

  // A node that moved a shard by its own map sends on to that map's owner.
  handoff m{1, 3s, 100};
  first(m, view(a, 1, {a}, alive({a, b})));
  m.apply(view(a, 2, {b}, alive({a, b})), t0);
  CHECK(m.forward_to(0).empty());
  REQUIRE(m.drained(0) == b);
  CHECK(m.forward_to(0) == b);
  // Won back: nothing is sent on.
  m.apply(view(a, 3, {a}, alive({a, b})), t0);
  CHECK(m.forward_to(0).empty());
}

TEST_CASE("a shard held back for a fence is served only once released and unfenced, in either order") {
  handoff h{2, 3s, 100};
  first(h, view(b, 1, {a, b}, alive({a, b})));
  handoff_step step;

  // Released first, then unfenced.
  step = h.apply(view(b, 2, {b, b}, alive({a, b})), t0 + 10ms);
  CHECK(h.state(0) == shard_state::incoming);
  h.hold_back(0);
  CHECK(h.held_back(0));
  REQUIRE(h.hold(0, tell(1)));
  CHECK(h.released(0, a, 2).serve.empty());
  CHECK(h.state(0) == shard_state::incoming);
  // The release deadline does not serve it either: the fence decides now.
  CHECK(h.expire(t0 + 1h).serve.empty());
  CHECK(h.state(0) == shard_state::incoming);
  step = h.unfence(0);
  CHECK(step.serve == std::vector<std::uint32_t>{0});
  CHECK(h.state(0) == shard_state::serving);
  CHECK(h.take_held(0).size() == 1);
  CHECK(h.unfence(0).empty());

  // Unfenced first, then released.
  step = h.apply(view(b, 3, {a, a}, alive({a, b})), t0 + 2h);
  CHECK(h.state(0) == shard_state::draining);
  CHECK(h.state(1) == shard_state::draining);
  (void)h.drained(0);
  (void)h.drained(1);
  step = h.apply(view(b, 4, {a, b}, alive({a, b})), t0 + 3h);
  CHECK(h.state(1) == shard_state::incoming);
  h.hold_back(1);
  CHECK(h.unfence(1).serve.empty());
  CHECK(h.state(1) == shard_state::incoming);
  CHECK(h.released(1, a, 4).serve == std::vector<std::uint32_t>{1});
  CHECK(h.state(1) == shard_state::serving);
}

TEST_CASE("a shard served at once goes back to waiting when held back, one lost meanwhile forgets the fence") {
  handoff h{1, 3s, 100};
  // Alone: served at once.
  CHECK(h.apply(view(b, 1, {b}, alive({b})), t0).serve == std::vector<std::uint32_t>{0});
  h.hold_back(0);
  CHECK(h.state(0) == shard_state::incoming);
  CHECK(h.unfence(0).serve == std::vector<std::uint32_t>{0});
  CHECK(h.state(0) == shard_state::serving);

  // Held back again, then lost to a before the fence passed.
  h.hold_back(0);
  REQUIRE(h.hold(0, tell(1)));
  auto step = h.apply(view(b, 2, {a}, alive({a, b})), t0 + 1s);
  CHECK(h.state(0) == shard_state::remote);
  CHECK(step.rehome == std::vector<std::uint32_t>{0});
  CHECK_FALSE(h.held_back(0));
  CHECK(h.unfence(0).empty());
  CHECK(h.state(0) == shard_state::remote);
}

TEST_CASE("a node learns where a shard goes from a question, except while the shard is on its way to it") {
  handoff h{1, 3s, 100};
  // b's first map: it waits for shard 0, and a (whose first map asks
  // everyone) asks b for it meanwhile: a is not where it goes.
  h.apply(view(b, 1, {b}, alive({a, b})), t0);
  REQUIRE(h.state(0) == shard_state::incoming);
  h.learned_owner(0, a);
  REQUIRE(h.released(0, a, 1).serve == std::vector<std::uint32_t>{0});
  // b leaves: it knows the new owner only once that owner asks (here
  // before b starts to drain, as the map without b comes first).
  CHECK(h.leave().drain == std::vector<std::uint32_t>{0});
  CHECK(!h.drained(0));
  CHECK(h.forward_to(0).empty());

  handoff g{1, 3s, 100};
  first(g, view(b, 1, {b}, alive({b})));
  REQUIRE(g.state(0) == shard_state::serving);
  g.learned_owner(0, c);
  CHECK(g.leave().drain == std::vector<std::uint32_t>{0});
  CHECK(!g.drained(0));
  CHECK(g.forward_to(0) == c);
}
