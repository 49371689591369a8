#pragma once

#include <aether/cluster/heartbeat.hpp>

#include <memory>
#include <string>

namespace aether {

/// Heartbeats in memory, delivered synchronously to every subscriber.
/// `silence(node, true)` drops every heartbeat a node publishes (nobody hears
/// it, itself included), as a node cut off from NATS would be.
///
/// Thread-safety: every member from any thread.
class memory_heartbeat_transport final : public heartbeat_transport {
public:
  memory_heartbeat_transport();
  ~memory_heartbeat_transport() override;

  expected<void> publish(const heartbeat& hb) override;
  [[nodiscard]] expected<std::unique_ptr<heartbeat_subscription>>
  subscribe(std::function<void(const heartbeat&)> handler) override;

  void silence(const std::string& node, bool silent);

  struct shared;

private:
  std::shared_ptr<shared> shared_;
};

} // namespace aether
