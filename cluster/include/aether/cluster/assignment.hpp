#pragma once

#include <aether/cluster/member.hpp>
#include <aether/cluster/shard_map.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace aether {

/// The owners of `shard_count` shards over the `live` members, given the
/// previous owners ("sticky exact"): a pure function, so every leader computes
/// the same map from the same inputs.
///
/// - Exact: each live member gets `shard_count / n` shards or one more; the
///   members that get one more are those that already own the most (ties by
///   `member_rank_hash`), which is what keeps the moves minimal.
/// - Minimal: a shard keeps its owner while that owner is live and not over
///   its target. A member over its target gives up the shards it ranks lowest
///   (rendezvous score of shard and member); every shard without a live owner
///   goes to the member under its target that ranks it highest. So adding a
///   member moves only what balance needs (100 shards, 3 -> 4 members: 25) and
///   removing one moves only its shards.
/// - `previous` may have another shard count (the first map): then no owner
///   is kept. With no live member every owner is empty.
///
/// Thread-safety: pure.
[[nodiscard]] std::vector<member_id> assign_shards(const shard_map& previous, std::span<const member_id> live,
                                                   std::uint32_t shard_count);

/// The rendezvous score of `shard` on `m`: higher ranks the shard higher.
[[nodiscard]] std::uint64_t shard_affinity(std::uint32_t shard, const member_id& m) noexcept;

} // namespace aether
