#include <aether/cluster/assignment.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

using aether::assign_shards;
using aether::member_id;
using aether::shard_map;

namespace {

std::vector<member_id> members(int n, int first = 0) {
  std::vector<member_id> out;
  for (int i = first; i < first + n; ++i) out.push_back(member_id{"node-" + std::to_string(i), 1000u + i});
  return out;
}

std::map<member_id, std::uint32_t> counts(const std::vector<member_id>& owners) {
  std::map<member_id, std::uint32_t> out;
  for (const auto& o : owners) ++out[o];
  return out;
}

/// Every shard owned by a live member, each member floor or ceil of the average.
void check_exact(const std::vector<member_id>& owners, const std::vector<member_id>& live) {
  const auto c = counts(owners);
  const auto s = owners.size();
  for (const auto& o : owners) REQUIRE(std::find(live.begin(), live.end(), o) != live.end());
  for (const auto& m : live) {
    const auto n = c.contains(m) ? c.at(m) : 0u;
    CHECK(n >= s / live.size());
    CHECK(n <= (s + live.size() - 1) / live.size());
  }
}

} // namespace

TEST_CASE("100 shards on 3 members are 34/33/33") {
  const auto live = members(3);
  const auto owners = assign_shards(shard_map{}, live, 100);
  check_exact(owners, live);
  std::vector<std::uint32_t> sizes;
  for (const auto& [m, n] : counts(owners)) sizes.push_back(n);
  std::sort(sizes.begin(), sizes.end());
  CHECK(sizes == std::vector<std::uint32_t>{33, 33, 34});
}

TEST_CASE("a fourth member takes exactly 25 shards and nothing else moves") {
  auto live = members(3);
  const shard_map before{1, 1, assign_shards(shard_map{}, live, 100)};
  live.push_back(member_id{"node-3", 77});
  const shard_map after{2, 1, assign_shards(before, live, 100)};
  check_exact(after.owners(), live);
  CHECK(after.count_of(live[3]) == 25);
  CHECK(moved_shards(before, after) == 25);
  for (std::uint32_t s = 0; s < 100; ++s) {
    if (after.owner(s) != before.owner(s)) CHECK(after.owner(s) == live[3]); // only to the newcomer
  }
}

TEST_CASE("removing a member moves only its shards") {
  auto live = members(3);
  const shard_map before{1, 1, assign_shards(shard_map{}, live, 100)};
  const auto gone = live[1];
  live.erase(live.begin() + 1);
  const shard_map after{2, 1, assign_shards(before, live, 100)};
  check_exact(after.owners(), live);
  CHECK(moved_shards(before, after) == before.count_of(gone));
  for (std::uint32_t s = 0; s < 100; ++s) {
    if (before.owner(s) != gone) CHECK(after.owner(s) == before.owner(s));
  }
}

TEST_CASE("the assignment does not depend on the order of the members") {
  auto live = members(5);
  const shard_map base{1, 1, assign_shards(shard_map{}, members(3), 64)};
  const auto a = assign_shards(base, live, 64);
  std::reverse(live.begin(), live.end());
  CHECK(assign_shards(base, live, 64) == a);
}

TEST_CASE("a stable membership keeps the map as it is") {
  const auto live = members(4);
  const shard_map m{1, 1, assign_shards(shard_map{}, live, 257)};
  CHECK(assign_shards(m, live, 257) == m.owners());
}

TEST_CASE("no live member: no shard has an owner, another shard count starts afresh") {
  const auto none = assign_shards(shard_map{}, {}, 8);
  CHECK(none.size() == 8);
  for (const auto& o : none) CHECK(o.empty());
  const auto live = members(2);
  const shard_map m{1, 1, assign_shards(shard_map{}, live, 8)};
  const auto other = assign_shards(m, live, 10);
  CHECK(other.size() == 10);
  check_exact(other, live);
}

TEST_CASE("random joins and leaves: every map exact, every change minimal") {
  std::mt19937 rng{12345};
  for (const std::uint32_t shards : {64u, 100u, 1000u}) {
    std::vector<member_id> live = members(1);
    shard_map current{1, 1, assign_shards(shard_map{}, live, shards)};
    int next = 1;
    for (int step = 0; step < 200; ++step) {
      const bool add = live.size() < 2 || (live.size() < 32 && rng() % 2 == 0);
      std::uint32_t optimal = 0;
      if (add) {
        live.push_back(member_id{"node-" + std::to_string(next), static_cast<std::uint64_t>(rng())});
        ++next;
        // The newcomer's target is all that must move.
        optimal = shards / static_cast<std::uint32_t>(live.size());
      } else {
        const auto i = rng() % live.size();
        optimal = current.count_of(live[i]);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      }
      shard_map after{current.epoch() + 1, 1, assign_shards(current, live, shards)};
      check_exact(after.owners(), live);
      const auto moved = moved_shards(current, after);
      // Adding: the newcomer gets floor or ceil; moving floor is optimal, ceil is one more at most.
      CHECK(moved <= optimal + (add ? 1u : 0u));
      current = std::move(after);
    }
  }
}
