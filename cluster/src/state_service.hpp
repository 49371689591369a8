#pragma once

#include <aether/runtime/expected.hpp>
#include <aether/runtime/nats.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace aether {

class actor_system;

/// Answers state queries on NATS for the event-sourced actor types a node
/// registered: one subscription per type on `aether_ctl.state.{type}` in
/// the queue group `aether_ctl_state`; each request is folded read-only
/// (`fold_state`) and answered on its reply subject (docs/WIRE_FORMAT.md).
///
/// Thread-safety: `serve` and `stop` from any thread; requests are handled
/// on nats.c threads and answered from store threads.
class state_service {
public:
  state_service(std::shared_ptr<nats::connection> conn, actor_system& system, std::string node_name);
  ~state_service();
  state_service(const state_service&) = delete;
  state_service& operator=(const state_service&) = delete;

  /// Answers queries for `type` from now on (once per type).
  expected<void> serve(std::string_view type);
  /// Unsubscribes and waits until no handler uses the actor system; folds
  /// in flight still answer. Idempotent.
  void stop();

  struct shared;

private:
  std::shared_ptr<shared> shared_;
  std::mutex mutex_;
  std::map<std::string, nats::subscription, std::less<>> subscriptions_;
};

} // namespace aether
