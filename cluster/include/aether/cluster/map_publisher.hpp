#pragma once

#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/control_records.hpp>

#include <cstdint>
#include <optional>

namespace aether {

/// The leader's side of the shard map: when the applied map differs from
/// `assign_shards(applied map, alive members)`, or was issued by an earlier
/// term, the leader writes `map.{E+1}` (E: the highest epoch any record used)
/// carrying its term. One write at a time; the log tells the outcome. A stale
/// leader's write either conflicts (the epoch is taken) or is stored and
/// ignored by every node (its term is not the current one), and then burns
/// its epoch, which is why the next one is above every epoch used.
///
/// Thread-safety: none; used on one strand.
class map_publisher {
public:
  /// The map record to write now, if any (only when `self` leads).
  [[nodiscard]] std::optional<control_write> poll(const cluster_state& state, const member_id& self);
  /// The write failed or its outcome is unknown: poll may write again.
  void write_failed() noexcept { pending_epoch_ = 0; }

private:
  std::uint64_t pending_epoch_ = 0;
};

} // namespace aether
