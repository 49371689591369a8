#pragma once

#include <aether/actors/actor_system.hpp>
#include <aether/cluster/cluster.hpp>
#include <aether/cluster/node_config.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/state_fold.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/metrics.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aether {

/// Thrown by the node's constructor when it cannot start (e.g. no NATS
/// server answers); `err()` says why.
class startup_error : public std::runtime_error {
public:
  explicit startup_error(error e) : std::runtime_error{e.to_string()}, error_{std::move(e)} {}
  [[nodiscard]] const error& err() const noexcept { return error_; }

private:
  error error_;
};

/// An Aether node: the composition root a program starts in `main()`.
///
///     aether::node node{aether::node_config::from_env().value()};
///     node.register_actor<counter>("counter");
///     node.tell(aether::actor_id{"counter", "c1"}, add{5});
///     return node.run(); // until SIGINT or SIGTERM
///
/// Starting joins the cluster (see `cluster()`); stopping leaves it first,
/// then drains the actors, closes the stores and the bus and joins the
/// threads: its services stop in the reverse of the order they started.
///
/// Thread-safety: `tell`, `ask`, `stop`, `metrics` and `cluster` from any thread;
/// register actor types before sending to them.
class node {
public:
  /// Starts the node; throws `startup_error` when it cannot connect.
  explicit node(node_config config = {});
  /// Shuts down gracefully if still running.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  template <class T>
  void register_actor(std::string_view type, actor_options options = {}) {
    system().register_actor<T>(type, options);
  }
  void register_actor(std::string_view type, actor_factory factory, actor_options options = {}) {
    system().register_actor(type, std::move(factory), options);
  }
  /// Registers an event-sourced actor type on the node's stores; on NATS
  /// the node answers state queries for it from then on (`query_state`).
  template <class T>
  void register_event_sourced(std::string_view type, actor_options options = {}) {
    aether::register_event_sourced<T>(system(), type, stores(), options);
    serve_state(type);
  }

  /// The state of event-sourced actor `id` folded to `point` from the
  /// node's stores into a fresh instance of its type (see `fold_state`):
  /// the live actor is not touched, nothing is written. Blocks; never on
  /// a runtime thread.
  [[nodiscard]] expected<state_at> state_of(const actor_id& id, state_point point = state_point::latest()) const;

  /// Sends `m` to the actor `to`; `mailbox_full`, `invalid_id` or
  /// `shutting_down` when it cannot be queued.
  template <class M>
  expected<void> tell(const actor_id& to, M&& m) {
    return system().tell(to, std::forward<M>(m));
  }

  /// Asks the actor `to` for an `R`; see `pending`.
  template <class R, class M>
  [[nodiscard]] pending<R> ask(const actor_id& to, M&& m, executor::duration timeout) {
    return system().template ask<R>(to, std::forward<M>(m), timeout);
  }

  /// Blocks until SIGINT, SIGTERM or `stop()`, then shuts down gracefully:
  /// stops accepting, drains the mailboxes, passivates every actor and joins
  /// the threads. Returns the process exit code (0).
  int run();
  /// Shuts down (idempotent); `run()` then returns. From any thread but a
  /// runtime thread.
  void stop();

  [[nodiscard]] metrics_snapshot metrics() const noexcept { return system().metrics(); }
  [[nodiscard]] actor_system& system() const noexcept;
  /// The event and snapshot stores: in memory, or on JetStream.
  [[nodiscard]] std::shared_ptr<const persistence> stores() const noexcept;
  /// The event bus: the local one, or across nodes on NATS. Events the
  /// node's stores persist reach it too.
  [[nodiscard]] event_bus& bus() const noexcept;
  /// True when the node runs on NATS rather than the embedded default.
  [[nodiscard]] bool on_nats() const noexcept;
  [[nodiscard]] const node_config& config() const noexcept;
  /// The cluster as this node sees it: members, leader and term, the shard
  /// map and the shards this node owns; and a way to watch it change. Without
  /// a NATS URL a one-node cluster that owns every shard.
  [[nodiscard]] aether::cluster& cluster() const noexcept;
  /// The node's metrics, as `/metrics` shows them; a program may add its own
  /// collectors.
  [[nodiscard]] metrics_registry& metric_registry() const noexcept;
  /// The port of the HTTP endpoints (`node_config::http_address`); 0 when off.
  [[nodiscard]] std::uint16_t http_port() const noexcept;

private:
  /// Subscribes the node's state service to queries for `type` (on NATS).
  void serve_state(std::string_view type);

  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
