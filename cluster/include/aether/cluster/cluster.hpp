#pragma once

#include <aether/cluster/member.hpp>
#include <aether/cluster/shard_map.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aether {

/// The cluster as one node sees it at one moment.
struct cluster_snapshot {
  /// The cluster's name.
  std::string cluster;
  /// This node: its id and current incarnation.
  member_id self;
  /// Every member the control log names, in join order, with its status.
  std::vector<member> members;
  /// The leader of `term`; empty while there is none.
  member_id leader;
  std::uint64_t term = 0;
  /// The newest shard map this node applied (never null; epoch 0 before the first).
  std::shared_ptr<const shard_map> map;
  std::uint32_t shard_count = 0;
  /// The shards this node serves: its shards in `map`, or none while it does
  /// not serve.
  std::vector<std::uint32_t> owned_shards;
  /// Whether this node serves: it has read the control log, is an alive member
  /// and hears its own heartbeat (else it fenced itself).
  bool serving = false;

  [[nodiscard]] std::uint64_t epoch() const noexcept { return map ? map->epoch() : 0; }
  /// The alive members.
  [[nodiscard]] std::vector<member_id> alive_members() const;
};

/// A registration for cluster changes; ends when destroyed.
class cluster_watch {
public:
  cluster_watch() = default;
  explicit cluster_watch(std::function<void()> cancel) : cancel_{std::move(cancel)} {}
  cluster_watch(cluster_watch&& o) noexcept : cancel_{std::move(o.cancel_)} { o.cancel_ = nullptr; }
  cluster_watch& operator=(cluster_watch&& o) noexcept {
    if (this != &o) {
      reset();
      cancel_ = std::move(o.cancel_);
      o.cancel_ = nullptr;
    }
    return *this;
  }
  cluster_watch(const cluster_watch&) = delete;
  cluster_watch& operator=(const cluster_watch&) = delete;
  ~cluster_watch() { reset(); }
  void reset() noexcept {
    if (cancel_) {
      auto c = std::move(cancel_);
      cancel_ = nullptr;
      c();
    }
  }

private:
  std::function<void()> cancel_;
};

/// The cluster membership of a node: what it knows now, and changes as they
/// happen.
///
/// Thread-safety: `snapshot` and `watch` from any thread; watch callbacks run
/// on the node's cluster strand, one at a time, never on a NATS thread.
class cluster {
public:
  virtual ~cluster() = default;
  /// What the node knows now.
  [[nodiscard]] virtual std::shared_ptr<const cluster_snapshot> snapshot() const = 0;
  /// Calls `on_change` after every change (a member joins, leaves or dies, a
  /// term, a map, this node starting or stopping to serve), with the new
  /// snapshot. The watch ends when the returned object is destroyed.
  [[nodiscard]] virtual cluster_watch watch(std::function<void(const cluster_snapshot&)> on_change) = 0;

  /// Blocks until `ready` holds for the node's snapshot, or `timeout` passes;
  /// returns whether it held. `ready` is checked now and after every change.
  /// For threads outside the node (a program's main, a test): never call it
  /// from a watch callback, which runs on the cluster strand it waits for.
  [[nodiscard]] bool wait_until(const std::function<bool(const cluster_snapshot&)>& ready,
                                std::chrono::milliseconds timeout);
};

} // namespace aether
