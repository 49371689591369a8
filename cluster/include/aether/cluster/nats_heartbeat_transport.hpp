#pragma once

#include <aether/cluster/heartbeat.hpp>
#include <aether/runtime/nats.hpp>

#include <memory>
#include <string>

namespace aether {

/// Heartbeats as plain NATS publishes on
/// `aether_cluster.{cluster}.hb.{node}.{incarnation}` (not stored), carrying
/// a sequence number, the term and the epoch, never a time.
///
/// Thread-safety: every member from any thread; handlers run on a nats.c thread.
class nats_heartbeat_transport final : public heartbeat_transport {
public:
  nats_heartbeat_transport(std::shared_ptr<nats::connection> conn, std::string cluster);

  expected<void> publish(const heartbeat& hb) override;
  [[nodiscard]] expected<std::unique_ptr<heartbeat_subscription>>
  subscribe(std::function<void(const heartbeat&)> handler) override;

private:
  std::shared_ptr<nats::connection> conn_;
  std::string cluster_;
};

} // namespace aether
