#pragma once

#include <aether/cluster/member.hpp>
#include <aether/runtime/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace aether {

/// A member's heartbeat: who sends it and a sequence number, never a time
/// (no node compares another's clock).
struct heartbeat {
  member_id from;
  std::uint64_t sequence = 0;
  /// The term and map epoch the sender has applied (informative).
  std::uint64_t term = 0;
  std::uint64_t epoch = 0;
};

/// A subscription to heartbeats; ends when destroyed.
class heartbeat_subscription {
public:
  virtual ~heartbeat_subscription() = default;
};

/// Carries heartbeats between the members of a cluster: best effort, not
/// stored, every member hears every member (itself included).
///
/// Thread-safety: every member from any thread; the handler runs on any
/// thread, one heartbeat at a time.
class heartbeat_transport {
public:
  virtual ~heartbeat_transport() = default;
  virtual expected<void> publish(const heartbeat& hb) = 0;
  [[nodiscard]] virtual expected<std::unique_ptr<heartbeat_subscription>>
  subscribe(std::function<void(const heartbeat&)> handler) = 0;
};

} // namespace aether
