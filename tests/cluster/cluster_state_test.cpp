#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/control_records.hpp>

#include <doctest/doctest.h>

using aether::cluster_state;
using aether::control_record;
using aether::member_id;
using aether::shard_map;
using aether::state_change;
namespace records = aether::control_records;

namespace {

struct log_builder {
  cluster_state state;
  std::uint64_t seq = 0;
  state_change put(const aether::control_write& w) { return state.apply(control_record{++seq, w.subject, w.data}); }
};

const member_id a{"a", 1}, b{"b", 2}, a2{"a", 3};

} // namespace

TEST_CASE("records round-trip through their subjects and bodies") {
  const shard_map m{7, 3, {a, b, member_id{}, a}};
  const auto w = records::map(m);
  CHECK(w.subject == "map.7");
  auto d = records::decode(w.subject, w.data);
  REQUIRE(d);
  CHECK(d->map == m);
  auto j = records::decode(records::join(a).subject, records::join(a).data);
  REQUIRE(j);
  CHECK(j->member == a);
  CHECK(!records::decode("member.a.0000000000000001", R"({"node":"b","incarnation":1})"));
  CHECK(!records::decode("map.1", "not json"));
  CHECK(!records::decode("gossip.1", "{}"));
}

TEST_CASE("the log's rules: terms grow, stale maps and deaths are ignored, a newer incarnation replaces") {
  log_builder l;
  CHECK(l.put(records::config(4)).what == state_change::kind::config);
  CHECK(l.put(records::config(8)).what == state_change::kind::none); // set once
  CHECK(l.state.shard_count() == 4);
  CHECK(l.put(records::join(a)).what == state_change::kind::joined);
  CHECK(l.put(records::join(b)).what == state_change::kind::joined);
  CHECK(l.put(records::join(b)).what == state_change::kind::none);

  CHECK(l.put(records::term(1, a)).what == state_change::kind::new_term);
  CHECK(l.state.leader() == a);
  CHECK(l.put(records::term(1, b)).what == state_change::kind::none); // the first stored wins
  CHECK(l.state.leader() == a);

  CHECK(l.put(records::map(shard_map{1, 1, {a, a, b, b}})).what == state_change::kind::new_map);
  CHECK(l.put(records::map(shard_map{1, 1, {b, b, b, b}})).what == state_change::kind::none); // epoch taken

  CHECK(l.put(records::term(2, b)).what == state_change::kind::new_term);
  // The old leader's map of term 1 is stored but applies nowhere; its epoch is burnt.
  CHECK(l.put(records::map(shard_map{2, 1, {a, a, a, a}})).what == state_change::kind::none);
  CHECK(l.state.highest_map_epoch() == 2);
  CHECK(l.state.map()->epoch() == 1);
  // So is its death record.
  CHECK(l.put(records::death(b, 1)).what == state_change::kind::none);
  CHECK(l.state.alive(b));
  CHECK(l.put(records::map(shard_map{3, 2, {b, b, a, a}})).what == state_change::kind::new_map);
  CHECK(l.put(records::map(shard_map{3, 2, {a, a}})).what == state_change::kind::none);

  // A restart of node a: the old incarnation is dead at once.
  const auto joined = l.put(records::join(a2));
  CHECK(joined.replaced == a);
  CHECK(!l.state.alive(a));
  CHECK(l.state.alive(a2));

  // The leader's death in its own term clears the leader.
  CHECK(l.put(records::death(b, 2)).what == state_change::kind::died);
  CHECK(l.state.leader().empty());
  // A term claimed by a member that is not alive has no leader.
  CHECK(l.put(records::term(3, b)).what == state_change::kind::new_term);
  CHECK(l.state.leader().empty());
}
