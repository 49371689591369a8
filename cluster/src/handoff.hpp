#pragma once

#include "remote_envelope.hpp"

#include <aether/cluster/cluster.hpp>
#include <aether/runtime/executor.hpp>

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace aether {

/// What one node does with one cluster shard.
enum class shard_state : std::uint8_t {
  remote,   ///< another node (or none) owns it: messages go there
  serving,  ///< this node owns it and runs its actors
  draining, ///< lost to a live node: what is queued here is finished, then the actors passivate and the shard is
            ///< released
  incoming, ///< won from a live node that has not released it yet: messages wait here, in order
};

[[nodiscard]] std::string_view to_string(shard_state s) noexcept;

/// What changed for this node with a map or a release.
struct handoff_step {
  /// Now served here: held messages are delivered, in order.
  std::vector<std::uint32_t> serve;
  /// Lost to a live node: finish, passivate, then tell it `released`.
  std::vector<std::uint32_t> drain;
  /// Lost while this node does not serve (fenced) or to no live node:
  /// passivate now, no release.
  std::vector<std::uint32_t> drop;
  /// Not served here, with messages held: they go to the shard's owner.
  std::vector<std::uint32_t> rehome;
  /// Now waiting for a release: ask the old owner (empty: every live member)
  /// whether it released the shard already (its release may have come
  /// before this node listened).
  std::vector<std::pair<std::uint32_t, member_id>> query;

  [[nodiscard]] bool empty() const noexcept {
    return serve.empty() && drain.empty() && drop.empty() && rehome.empty() && query.empty();
  }
};

/// The shard handoff, on one node. A planned move (a node joins or leaves
/// gracefully) goes through two states: the old owner drains (it finishes
/// what is queued for the shard, waits for its actors' writes in flight,
/// passivates them and sends the new owner `released`), while the new owner
/// holds the shard incoming (messages for it wait in a bounded buffer). The
/// new owner serves once released. It asks the old owner (`query`) when it
/// starts waiting and again at every `release_timeout`; an old owner that
/// still serves or drains the shard answers "wait" (`waiting`), and the new
/// owner goes on waiting: two nodes never serve a shard because a drain was
/// slow. Only an old owner that does not answer within `release_timeout`
/// (paused, gone, or the answer lost) is overtaken; the event store's
/// version check keeps its late writes out. A shard whose previous owner is
/// no longer alive is served at once: its actors replay from the store at
/// their next message. A node's first map gives it shards of unknown
/// history: while other members are alive it asks all of them and waits the
/// same way. A node that leaves gracefully drains every shard it serves and
/// sends `released` to every live member; it learns each shard's new owner
/// from that owner's `query` (sent to a node that left, even after an early
/// release, so that what the leaving node holds reaches the new owner before
/// its release does) and sends later messages for the shard on to it.
///
/// Pure and deterministic: the caller passes the time. Thread-safety: none;
/// the router calls it under its lock.
class handoff {
public:
  handoff(std::uint32_t shards, executor::duration release_timeout, std::size_t hold_limit);

  /// Applies a cluster view (maps arrive in epoch order).
  handoff_step apply(const cluster_snapshot& view, executor::time_point now);
  /// The old owner `from` released `shard` (as of map `epoch`).
  handoff_step released(std::uint32_t shard, const member_id& from, std::uint64_t epoch);
  /// The old owner finished draining `shard`: it is no longer served here.
  /// Returns the node to send `released` to (none when the shard came back
  /// meanwhile, or has no other live owner).
  std::optional<member_id> drained(std::uint32_t shard);
  /// This node leaves gracefully: every shard it serves drains (the new
  /// owners are not known yet; the release goes to every live member).
  handoff_step leave();
  [[nodiscard]] bool leaving() const noexcept { return leaving_; }
  /// Whether this node drained `shard` and released it to `to` (or to
  /// everyone, as it left), and has not served it since.
  [[nodiscard]] bool released_to(std::uint32_t shard, const member_id& to) const noexcept {
    const auto& p = shards_[shard];
    return p.state == shard_state::remote && p.released_here && (p.released_to.empty() || p.released_to == to);
  }
  /// Incoming shards whose old owner did not answer within the release
  /// timeout are served; those it answered "wait" for are asked again.
  handoff_step expire(executor::time_point now);
  /// `shard`, now served here or waiting to be, is not served before
  /// `unfence`: tells this node sent elsewhere for it may still be on their
  /// way here. A shard served already goes back to waiting (released); one
  /// waiting keeps waiting for its release, then for `unfence`.
  void hold_back(std::uint32_t shard);
  /// What `hold_back` kept from being served may be served now (if it was
  /// released, or its old owner was overtaken, meanwhile).
  handoff_step unfence(std::uint32_t shard);
  [[nodiscard]] bool held_back(std::uint32_t shard) const noexcept { return shards_[shard].fenced; }
  /// `from` still serves or drains `shard` (it answered a query): an
  /// incoming shard waiting for it waits on past its next deadline.
  void waiting(std::uint32_t shard, const member_id& from);
  /// `to` waits for `shard` as its new owner (it sent a query): where this
  /// node sends messages for the shard once it released it, while its own
  /// map names no other live owner (it left, and hears no newer map). Not
  /// heard while the shard is on its way here: a node's first map asks
  /// every member, the shard's next owner or not.
  void learned_owner(std::uint32_t shard, const member_id& to);
  /// Where messages for a shard released (or draining) here go when the
  /// map names no live owner (empty: unknown yet).
  [[nodiscard]] member_id forward_to(std::uint32_t shard) const {
    const auto& p = shards_[shard];
    const bool handed_over = p.state == shard_state::draining || (p.state == shard_state::remote && p.released_here);
    return handed_over ? p.forward_to : member_id{};
  }

  [[nodiscard]] shard_state state(std::uint32_t shard) const noexcept { return shards_[shard].state; }
  [[nodiscard]] std::uint32_t shard_count() const noexcept { return static_cast<std::uint32_t>(shards_.size()); }
  /// The previous owner an incoming shard waits for.
  [[nodiscard]] const member_id& releaser(std::uint32_t shard) const noexcept { return shards_[shard].releaser; }

  /// Keeps `e` until `shard` can be served or sent on; false when the
  /// buffer is full (the caller answers with a typed error and counts a dead letter).
  bool hold(std::uint32_t shard, remote_envelope&& e);
  /// Whether the buffer has room for one more message.
  [[nodiscard]] bool can_hold() const noexcept { return held_count_ < hold_limit_; }
  /// Takes the messages held for `shard`, oldest first.
  std::deque<remote_envelope> take_held(std::uint32_t shard);
  [[nodiscard]] std::size_t held() const noexcept { return held_count_; }

private:
  struct per_shard {
    shard_state state = shard_state::remote;
    member_id releaser;              // incoming: the old owner
    executor::time_point deadline{}; // incoming: served from then on anyway
    std::deque<remote_envelope> held;
    std::optional<member_id> early_release; // released before this node applied the map that moves it
    bool released_here = false;             // drained here, not served since
    member_id released_to;                  // to whom (empty: everyone)
    member_id forward_to;                   // the new owner, as far as known here
    bool waited = false;                    // incoming: the old owner said "wait" since the last deadline
    bool fenced = false;                    // incoming: not served before `unfence`
    bool ready = false;                     // incoming and fenced: released (or overtaken) already
  };

  /// Serves `shard` now, or once unfenced.
  void serve(std::uint32_t shard, handoff_step& step);

  std::vector<per_shard> shards_;
  executor::duration release_timeout_;
  std::size_t hold_limit_;
  std::size_t held_count_ = 0;
  std::shared_ptr<const cluster_snapshot> view_;
  bool leaving_ = false;
};

} // namespace aether
