#pragma once

#include <aether/cluster/cluster.hpp>
#include <aether/cluster/cluster_config.hpp>
#include <aether/cluster/control_log.hpp>
#include <aether/cluster/heartbeat.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace aether {

/// This node's membership in its cluster, run on one lane (strand) of an
/// executor: it follows the control log and applies it to a `cluster_state`,
/// joins, heartbeats, watches the others with a `failure_detector`, fences
/// itself when it stops hearing its own heartbeat, and takes part in
/// `leader_election`; as leader it declares the silent dead and writes maps
/// (`map_publisher`). A node declared dead (it was paused or cut off) stops
/// serving and joins again as a new incarnation.
///
/// Everything runs on the lane, on the executor's clock: on a manual executor
/// several members run in one process, deterministically.
///
/// Thread-safety: `start`, `stop`, `snapshot` and `watch` from any thread;
/// callbacks run on the lane. Call `stop` (and let it finish) before
/// destroying it.
class membership final : public cluster {
public:
  /// Draws incarnations; the default is random.
  using incarnation_source = std::function<std::uint64_t()>;

  membership(executor& ex, std::size_t lane, std::shared_ptr<control_log> log,
             std::shared_ptr<heartbeat_transport> heartbeats, cluster_config config,
             incarnation_source incarnations = {});
  ~membership() override;
  membership(const membership&) = delete;
  membership& operator=(const membership&) = delete;

  /// Reads the control log, creates the cluster if it has none (with this
  /// node's shard count), joins, and calls `done` once this node is an alive
  /// member and a shard map exists. Fails with `invalid_argument` naming both
  /// numbers when the cluster has another shard count, and with `unavailable`
  /// when that does not happen within `join_timeout`.
  void start(unique_function<void(expected<void>)> done);
  /// Announces that this node leaves (waiting up to `leave_timeout` for the
  /// record to be stored), then stops; `done` on the lane.
  void stop(unique_function<void()> done);

  [[nodiscard]] std::shared_ptr<const cluster_snapshot> snapshot() const override;
  [[nodiscard]] cluster_watch watch(std::function<void(const cluster_snapshot&)> on_change) override;

  struct core;

private:
  std::shared_ptr<core> core_;
};

/// A random non-zero incarnation.
[[nodiscard]] std::uint64_t random_incarnation();

} // namespace aether
