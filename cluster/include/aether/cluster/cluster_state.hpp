#pragma once

#include <aether/cluster/control_log.hpp>
#include <aether/cluster/member.hpp>
#include <aether/cluster/shard_map.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace aether {

/// What applying one control record changed.
struct state_change {
  enum class kind {
    none,     ///< ignored: a duplicate, stale or malformed record (see `detail`)
    config,   ///< the cluster's shard count was set
    joined,   ///< `member` joined (and `replaced`, if any, is dead)
    left,     ///< `member` left
    died,     ///< `member` was declared dead
    new_term, ///< a term began; `member` leads it (empty: its candidate is not alive)
    new_map,  ///< a new shard map applies
  } what = kind::none;
  member_id member;
  member_id replaced;
  std::string detail;
};

/// The cluster as its control log says, record by record: members, the
/// current term and leader, the shard map. Every node applies the same log in
/// the same order to its own `cluster_state`, so all agree; it holds no clock
/// and does no I/O.
///
/// The rules that make the log safe to apply as it is:
/// - the first `config` sets the shard count; later ones are ignored;
/// - a join of a member already known is ignored; a join makes any other
///   alive incarnation of the same node id dead (the newer one wins);
/// - a death counts only if written by the current term (a stale leader's is
///   ignored); a leave always counts; either clears the leader if it is him;
/// - a term counts only if higher than the current one; its candidate leads
///   it if alive;
/// - a map counts only if its epoch is higher than the applied one, it
///   carries the current term, and it has the cluster's shard count.
///
/// Thread-safety: none; a node applies records on one strand.
class cluster_state {
public:
  cluster_state();

  state_change apply(const control_record& r);

  /// The cluster's shard count; 0 before its `config` record.
  [[nodiscard]] std::uint32_t shard_count() const noexcept { return shard_count_; }
  /// Every member ever seen, in join order, with its status.
  [[nodiscard]] const std::vector<member>& members() const noexcept { return members_; }
  [[nodiscard]] std::vector<member_id> alive_members() const;
  [[nodiscard]] std::optional<member_status> status_of(const member_id& m) const;
  [[nodiscard]] bool alive(const member_id& m) const;
  [[nodiscard]] std::uint64_t term() const noexcept { return term_; }
  /// The leader of the current term; empty when there is none.
  [[nodiscard]] const member_id& leader() const noexcept { return leader_; }
  [[nodiscard]] const std::shared_ptr<const shard_map>& map() const noexcept { return map_; }
  /// The highest map epoch any record used (applied or not): the next map is one higher.
  [[nodiscard]] std::uint64_t highest_map_epoch() const noexcept { return highest_map_epoch_; }
  /// The sequence of the last record applied.
  [[nodiscard]] std::uint64_t last_sequence() const noexcept { return last_sequence_; }

private:
  member* find(const member_id& m);
  void mark(member& m, member_status s);

  std::uint32_t shard_count_ = 0;
  std::vector<member> members_;
  std::uint64_t term_ = 0;
  member_id leader_;
  std::shared_ptr<const shard_map> map_;
  std::uint64_t highest_map_epoch_ = 0;
  std::uint64_t last_sequence_ = 0;
};

} // namespace aether
