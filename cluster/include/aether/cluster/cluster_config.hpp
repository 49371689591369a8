#pragma once

#include <aether/runtime/expected.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace aether {

/// Settings of a node's membership in its cluster.
///
/// With the defaults a leader or member that dies is replaced within
/// `heartbeat_interval + failure_timeout` plus an election step or two and a
/// control-log write: about 1.2 s on loopback.
struct cluster_config {
  /// The cluster's name (`AETHER_CLUSTER`): it names the control stream and
  /// every control subject, so several clusters can share a NATS system.
  std::string name = "aether";
  /// This node's id (`AETHER_NODE_ID`), stable across restarts; empty: the
  /// host name. Two processes of one cluster never share an id (the newer
  /// one replaces the older).
  std::string node_id;
  /// Cluster shards (`AETHER_CLUSTER_SHARDS`): fixed when the cluster is
  /// created; a node configured with another count refuses to start.
  std::uint32_t shards = 256;
  /// How often a member publishes its heartbeat (`AETHER_HEARTBEAT_MS`).
  std::chrono::milliseconds heartbeat_interval{100};
  /// Silence after which the leader declares a member dead, and members
  /// elect a new leader (`AETHER_FAILURE_TIMEOUT_MS`).
  std::chrono::milliseconds failure_timeout{1'000};
  /// Silence of its own heartbeat after which a member stops serving on its
  /// own (`AETHER_SELF_FENCE_MS`); shorter than the failure timeout, so a
  /// member stops before anyone declares it dead.
  std::chrono::milliseconds self_fence_timeout{800};
  /// Candidates wait their rank times this before claiming a term, so that
  /// usually one claims it (`AETHER_ELECTION_STEP_MS`).
  std::chrono::milliseconds election_step{25};
  /// How long a graceful stop waits for its leave record to be stored.
  std::chrono::milliseconds leave_timeout{2'000};
  /// How long joining may take before the node refuses to start.
  std::chrono::milliseconds join_timeout{10'000};
  /// Whether messages go to the node that owns their actor's shard
  /// (`AETHER_ROUTING`, on by default; it applies only on NATS): a node then
  /// activates only actors of the shards it serves. Off, every node runs
  /// the actors it is sent.
  bool route_messages = true;
  /// How long a new owner holds messages for a shard whose old owner has not
  /// released it, before it serves it anyway (`AETHER_RELEASE_TIMEOUT_MS`).
  std::chrono::milliseconds release_timeout{3'000};
  /// Messages a node holds, in all, for shards on their way to it or without
  /// an owner (`AETHER_HOLD_LIMIT`); past it the sender gets `unavailable`.
  std::size_t hold_limit = 100'000;
  /// Replicas of the control stream (follows `AETHER_JS_REPLICAS`).
  int replicas = 1;
  /// Messages the control stream keeps (the oldest go first).
  std::int64_t max_control_messages = 100'000;

  /// `invalid_argument` naming the field for a bad name, id or timing.
  [[nodiscard]] expected<void> validate() const;
};

} // namespace aether
