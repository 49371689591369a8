#pragma once

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/runtime/expected.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aether {

/// Settings of a node. Every field can come from the environment (see
/// `from_env`); code sets the rest.
struct node_config {
  /// Worker threads (`AETHER_THREADS`); zero means one per core.
  std::size_t threads = 0;
  /// The actor system: shards (`AETHER_SHARDS`), mailbox capacity per shard
  /// (`AETHER_MAILBOX_CAPACITY`), drain batch (`AETHER_DRAIN_BATCH`), idle
  /// timeout in ms (`AETHER_IDLE_TIMEOUT_MS`).
  system_config system{};
  /// How long shutdown waits for mailboxes to empty (`AETHER_DRAIN_TIMEOUT_MS`).
  std::chrono::milliseconds drain_timeout{5'000};
  /// Whether the node catches SIGINT and SIGTERM (from construction on, so
  /// none is missed before `run()`).
  bool handle_signals = true;
  /// NATS servers (`AETHER_NATS_URL`, comma separated). Empty: the embedded
  /// default, with events and snapshots in memory.
  std::string nats_url;
  /// Replicas of event streams and snapshot buckets (`AETHER_JS_REPLICAS`).
  int replicas = 1;
  /// A snapshot every this many events of an actor (`AETHER_SNAPSHOT_EVERY`; 0: only on passivation).
  std::uint64_t snapshot_every = 100;

  /// The defaults overridden by the `AETHER_*` variables that are set;
  /// `invalid_argument` naming the variable for a value that is not a number
  /// in range.
  [[nodiscard]] static expected<node_config> from_env();
};

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
/// Thread-safety: `tell`, `ask`, `stop` and `metrics` from any thread;
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
  /// Registers an event-sourced actor type on the node's stores.
  template <class T>
  void register_event_sourced(std::string_view type, actor_options options = {}) {
    aether::register_event_sourced<T>(system(), type, stores(), options);
  }

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

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
