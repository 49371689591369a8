#pragma once

#include <aether/actors/actor_system.hpp>
#include <aether/cluster/cluster_config.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/nats.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace aether {

/// Settings of a node. Every field can come from the environment (see
/// `from_env`); code sets the rest.
struct node_config {
  /// Worker threads (`AETHER_THREADS`); zero means one per core.
  std::size_t threads = 0;
  /// The actor system: local mailboxes (`AETHER_SHARDS`), mailbox capacity
  /// (`AETHER_MAILBOX_CAPACITY`), drain batch (`AETHER_DRAIN_BATCH`), idle
  /// timeout in ms (`AETHER_IDLE_TIMEOUT_MS`).
  system_config system{};
  /// How long shutdown waits for mailboxes to empty (`AETHER_DRAIN_TIMEOUT_MS`).
  std::chrono::milliseconds drain_timeout{5'000};
  /// Whether the node catches SIGINT and SIGTERM (from construction on, so
  /// none is missed before `run()`).
  bool handle_signals = true;
  /// NATS servers (`AETHER_NATS_URL`, comma separated). Empty: the embedded
  /// default, with events and snapshots in memory and a one-node cluster.
  std::string nats_url;
  /// Credentials and TLS for NATS: `AETHER_NATS_CREDS` (a `.creds` file),
  /// `AETHER_NATS_NKEY_SEED` (a file holding a user seed),
  /// `AETHER_NATS_TOKEN`, `AETHER_NATS_USER` and `AETHER_NATS_PASSWORD`,
  /// `AETHER_NATS_TLS_CA`, `AETHER_NATS_TLS_CERT` and `AETHER_NATS_TLS_KEY`.
  nats::security_options nats_security{};
  /// Replicas of event streams, snapshot buckets and the cluster's control
  /// stream (`AETHER_JS_REPLICAS`).
  int replicas = 1;
  /// A snapshot every this many events of an actor (`AETHER_SNAPSHOT_EVERY`; 0: only on passivation).
  std::uint64_t snapshot_every = 100;
  /// The cluster: its name (`AETHER_CLUSTER`), this node's id
  /// (`AETHER_NODE_ID`, default the host name), the cluster's shard count
  /// (`AETHER_CLUSTER_SHARDS`), heartbeat interval (`AETHER_HEARTBEAT_MS`),
  /// failure timeout (`AETHER_FAILURE_TIMEOUT_MS`), self-fence timeout
  /// (`AETHER_SELF_FENCE_MS`, default 4/5 of the failure timeout) and election
  /// step (`AETHER_ELECTION_STEP_MS`). `replicas` is copied from above.
  cluster_config cluster{};
  /// Where the HTTP endpoints listen (`AETHER_HTTP_ADDR`, `host:port`, e.g.
  /// `127.0.0.1:9464`; port 0 takes a free one): `/metrics`, `/livez`,
  /// `/readyz`, `/status`. Empty (the default): no HTTP server.
  /// `AETHER_METRICS_LATENCY=1` sets `system.measure_handling`.
  std::string http_address;

  /// The defaults overridden by the `AETHER_*` variables that are set;
  /// `invalid_argument` naming the variable for a value that is not a number
  /// in range or not a valid name.
  [[nodiscard]] static expected<node_config> from_env();
};

/// The host name as a node id: characters a token cannot hold become `-`;
/// `node` when there is no host name.
[[nodiscard]] std::string default_node_id();

} // namespace aether
