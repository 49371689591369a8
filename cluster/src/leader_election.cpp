#include <aether/cluster/leader_election.hpp>

#include <algorithm>
#include <vector>

namespace aether {

std::size_t leader_election::rank(const member_id& self, std::span<const member_id> candidates, std::uint64_t term) {
  const auto mine = mix64(member_rank_hash(self), term);
  std::size_t above = 0;
  for (const auto& c : candidates) {
    if (c == self) continue;
    const auto theirs = mix64(member_rank_hash(c), term);
    if (theirs > mine || (theirs == mine && c < self)) ++above;
  }
  return above;
}

std::optional<control_write> leader_election::poll(const cluster_state& state, const failure_detector& detector,
                                                   const member_id& self, time_point now) {
  if (!state.alive(self) || state.shard_count() == 0) return std::nullopt;
  const auto& leader = state.leader();
  const bool leaderless = leader.empty() || (leader != self && detector.suspected(leader, now));
  if (!leaderless) {
    leaderless_since_.reset();
    return std::nullopt;
  }
  if (claimed_ > state.term()) return std::nullopt; // our claim is on its way through the log
  if (!leaderless_since_) leaderless_since_ = now;
  auto candidates = state.alive_members();
  std::erase(candidates, leader);
  const auto next = state.term() + 1;
  const auto wait = step_ * static_cast<int>(rank(self, candidates, next));
  if (now - *leaderless_since_ < wait) return std::nullopt;
  claimed_ = next;
  return control_records::term(next, self);
}

} // namespace aether
