#pragma once

#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/control_records.hpp>
#include <aether/cluster/failure_detector.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace aether {

/// When this member claims the next leader term.
///
/// A term is claimed when the cluster has no leader (none yet, or it left or
/// died) or its leader has been silent for the failure timeout. Candidates are
/// the alive members but that leader; each waits its rank (by a hash of member
/// and term, so ranks differ per term) times `step` before writing
/// `term.{T+1}`, so usually one writes it. The log decides: the first record
/// stored on `term.{T+1}` is the term, and a record never decides more than
/// one term, so there is at most one leader per term and terms only grow.
/// There are no renewal writes: the leader's heartbeat is its lease.
///
/// Thread-safety: none; used on one strand.
class leader_election {
public:
  using time_point = executor::time_point;
  using duration = executor::duration;

  explicit leader_election(duration step) : step_{step} {}

  /// The term record to write now, if any.
  [[nodiscard]] std::optional<control_write> poll(const cluster_state& state, const failure_detector& detector,
                                                  const member_id& self, time_point now);
  /// The write of a claim failed or its outcome is unknown: it may be claimed
  /// again (a stored one makes the retry a harmless conflict).
  void claim_failed() noexcept { claimed_ = 0; }

  /// `self`'s rank among `candidates` for `term`: 0 claims first.
  [[nodiscard]] static std::size_t rank(const member_id& self, std::span<const member_id> candidates,
                                        std::uint64_t term);

private:
  duration step_;
  std::optional<time_point> leaderless_since_;
  std::uint64_t claimed_ = 0;
};

} // namespace aether
