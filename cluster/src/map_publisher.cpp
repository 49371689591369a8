#include <aether/cluster/assignment.hpp>
#include <aether/cluster/map_publisher.hpp>

namespace aether {

std::optional<control_write> map_publisher::poll(const cluster_state& state, const member_id& self) {
  if (state.leader() != self || state.shard_count() == 0) return std::nullopt;
  if (pending_epoch_ > state.highest_map_epoch()) return std::nullopt; // ours is on its way
  const auto& current = *state.map();
  auto live = state.alive_members();
  auto owners = assign_shards(current, live, state.shard_count());
  if (current.term() == state.term() && owners == current.owners()) return std::nullopt;
  const auto epoch = state.highest_map_epoch() + 1;
  pending_epoch_ = epoch;
  return control_records::map(shard_map{epoch, state.term(), std::move(owners)});
}

} // namespace aether
