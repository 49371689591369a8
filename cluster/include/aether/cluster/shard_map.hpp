#pragma once

#include <aether/cluster/member.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace aether {

/// Which member owns each cluster shard, as of one epoch.
///
/// Maps are issued by the leader of `term()`, each with an epoch one higher
/// than any issued before; every node applies them in epoch order. An owner
/// may be empty (no member yet: a cluster without live members).
///
/// Thread-safety: a value type; shared as `std::shared_ptr<const shard_map>`.
class shard_map {
public:
  /// The empty map of epoch 0: no shard has an owner.
  shard_map() = default;
  shard_map(std::uint64_t epoch, std::uint64_t term, std::vector<member_id> owners)
      : epoch_{epoch}, term_{term}, owners_{std::move(owners)} {}

  [[nodiscard]] std::uint64_t epoch() const noexcept { return epoch_; }
  /// The leader term that issued this map (its fencing token).
  [[nodiscard]] std::uint64_t term() const noexcept { return term_; }
  [[nodiscard]] std::uint32_t shard_count() const noexcept { return static_cast<std::uint32_t>(owners_.size()); }
  /// The owner of `shard` (empty when none, or out of range).
  [[nodiscard]] const member_id& owner(std::uint32_t shard) const noexcept;
  [[nodiscard]] const std::vector<member_id>& owners() const noexcept { return owners_; }
  /// The shards `m` owns, ascending.
  [[nodiscard]] std::vector<std::uint32_t> shards_of(const member_id& m) const;
  /// How many shards `m` owns.
  [[nodiscard]] std::uint32_t count_of(const member_id& m) const noexcept;
  /// The members that own at least one shard, in the order of their first shard.
  [[nodiscard]] std::vector<member_id> owning_members() const;

  friend bool operator==(const shard_map&, const shard_map&) = default;

private:
  std::uint64_t epoch_ = 0;
  std::uint64_t term_ = 0;
  std::vector<member_id> owners_;
};

/// Shards whose owner differs between `a` and `b`.
[[nodiscard]] std::uint32_t moved_shards(const shard_map& a, const shard_map& b) noexcept;

} // namespace aether
