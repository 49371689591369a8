#pragma once

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/metrics.hpp>
#include <aether/runtime/nats.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aether {

/// Which events a subscription wants, beyond its namespace pattern.
struct event_filter {
  /// Event types to deliver; empty: every type.
  std::vector<std::string> event_types;
  /// The actors whose events to deliver, as `type.key` with NATS token
  /// wildcards: `order.c-1`, `order.*`, `*.c-1`, `order.>`, `>`. Empty: every
  /// actor.
  std::string actor_pattern;
};

/// How a subscription takes its events.
struct subscribe_options {
  /// Events that may wait for the handler. A live subscription drops what
  /// comes beyond (counted, and reported to `on_error`); the server sends a
  /// durable one no more until the handler catches up.
  std::size_t buffer = 4096;
  /// Called on the subscription's strand when events were dropped
  /// (`mailbox_full`, with the count dropped so far as `value()`), when one
  /// could not be read (`malformed_payload`) or a handler threw
  /// (`handler_failed`). Drops are reported once until the subscriber has
  /// caught up (its queue emptied), then once again for the next ones.
  std::function<void(const error&)> on_error;
  /// Nonempty: a durable subscription of this name (letters, digits, `-`,
  /// `_`), on the NATS bus and one exact namespace (no wildcard). It gets every event of
  /// the namespace in stream order, its own node's too, from the first one
  /// stored the first time, then after the last one it acknowledged: an
  /// event is acknowledged once its handler returned. Ending the
  /// subscription waits until the server has recorded the acknowledgements.
  /// One subscriber per name at a time: while one holds it, another gets
  /// `in_use` (after up to 2 s, in case the holder is just ending).
  std::string durable;
};

namespace detail {
struct bus_subscription;
}

/// A subscription; it ends when destroyed. Once `unsubscribe` (or the
/// destructor) returns no handler call starts, though one running on
/// another thread may finish.
///
/// Thread-safety: the counters from any thread; end it from one.
class event_subscription {
public:
  event_subscription() noexcept = default;
  explicit event_subscription(std::shared_ptr<detail::bus_subscription> s) noexcept : state_{std::move(s)} {}
  event_subscription(event_subscription&&) noexcept = default;
  event_subscription& operator=(event_subscription&& o) noexcept;
  ~event_subscription();

  /// Events handed to the handler (one that threw included); an event is
  /// counted before its handler runs.
  [[nodiscard]] std::uint64_t delivered() const noexcept;
  /// Events dropped because the buffer was full.
  [[nodiscard]] std::uint64_t dropped() const noexcept;
  [[nodiscard]] bool active() const noexcept { return state_ != nullptr; }
  void unsubscribe() noexcept;

private:
  std::shared_ptr<detail::bus_subscription> state_;
};

/// Pub/sub of domain events by namespace. Publishers do not know their
/// subscribers; subscribers of one namespace never see another's events.
///
/// Namespaces are hierarchical (`acme`, `acme.billing`), and a namespace
/// pattern follows NATS's subject rules over their tokens: a namespace
/// matches only itself, `*` stands for one token and `>`, last, for one or
/// more: `acme.*` matches `acme.orders` but neither `acme` nor `acme.a.b`,
/// `acme.>` matches `acme.orders` and `acme.a.b` but not `acme`, `*.billing`
/// matches `acme.billing`, and `>` every namespace. A pattern that is empty,
/// has an empty token (`a..b`), a wildcard inside a token (`*x`), `>`
/// before the end (`acme.>.x`) or is longer than a namespace can be is
/// refused with `invalid_argument`.
/// Handlers run on a strand of the bus's executor, one event at a time, in
/// the order the events were published by each publisher (for persisted
/// events: in each actor's version order), never on a nats.c thread.
///
/// Thread-safety: every member from any thread.
class event_bus {
public:
  using handler = unique_function<void(const event&)>;

  virtual ~event_bus() = default;

  /// Delivers `e` to the subscribers of `ns`. The event needs a type and an
  /// actor of namespace `ns`; missing ids and timestamps are filled in.
  /// `invalid_id`, `invalid_argument`, `malformed_payload` (data that is not
  /// JSON) or `payload_too_large` for an event that cannot be published.
  virtual expected<void> publish(std::string_view ns, event e) = 0;

  /// Subscribes `h` to the events of the namespaces `ns_pattern` that pass
  /// `filter`. `invalid_argument` for a bad pattern, filter or option.
  [[nodiscard]] virtual expected<event_subscription> subscribe(std::string_view ns_pattern, event_filter filter,
                                                               handler h, subscribe_options options = {}) = 0;

  /// Subscribes the actor `target`: each event arrives as an `aether::event`
  /// message. An event its full mailbox refuses is dropped like one that
  /// overflows the buffer. `system` must outlive the subscription.
  [[nodiscard]] expected<event_subscription> subscribe(std::string_view ns_pattern, event_filter filter,
                                                       actor_system& system, actor_id target,
                                                       subscribe_options options = {});

  /// Hands the events an event store has just stored to this process's
  /// subscribers (the store carried them to other processes itself). Set as
  /// the store's append watcher.
  virtual void stored(const std::vector<event>& events) = 0;

  /// Ends every subscription (before the executor goes); publishes and
  /// subscribes then fail with `shutting_down`. The destructor closes too.
  virtual void close() = 0;

  /// Writes the bus's samples (a node's /metrics): events its subscriptions
  /// dropped, `aether_bus_dropped_events_total` by namespace and reason, and
  /// each durable subscription's lag, `aether_bus_durable_lag_messages`
  /// (messages of its stream not yet acknowledged, asked of the server).
  /// From any thread; it never runs on a subscription's path.
  virtual void collect(metric_sink& sink) const;
};

/// The bus of one process: the embedded default.
class local_event_bus final : public event_bus {
public:
  /// Handlers run on `ex`, which must outlive the bus's subscriptions.
  explicit local_event_bus(executor& ex);
  ~local_event_bus() override;

  expected<void> publish(std::string_view ns, event e) override;
  [[nodiscard]] expected<event_subscription> subscribe(std::string_view ns_pattern, event_filter filter, handler h,
                                                       subscribe_options options = {}) override;
  using event_bus::subscribe;
  void stored(const std::vector<event>& events) override;
  void close() override;
  void collect(metric_sink& sink) const override;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// Settings of the NATS bus.
struct nats_bus_options {
  /// Replicas of the namespace streams it creates (as the event store's).
  int replicas = 1;
};

/// The bus across nodes. Events published here reach this process's
/// subscribers directly and other processes through NATS, on
/// `aether_bus.pub.{type}.{key}.{version}.{ns}`. Events the JetStream store
/// persists reach other processes by that write itself, with no second
/// publish that could fail on its own: the namespace's stream republishes
/// each write it stored on `aether_bus.stored.{type}.{key}.{version}.{ns}`,
/// so a write the fence refused is never seen. The namespace's tokens come
/// last, so each subscription is one NATS subscription per kind whose filter
/// ends in its namespace pattern (`acme.>` -> `aether_bus.pub.*.*.*.acme.>`). Messages stamped with this bus's
/// `origin()` are not delivered again when they come back from the server.
///
/// A live subscription receives what is published or stored while it exists
/// (at most once); a durable one reads the namespace's stream, which
/// captures both kinds, through a JetStream durable consumer (at least once,
/// and never again once acknowledged). Events published to a namespace that
/// has no stream yet (nothing persisted there, no durable subscriber) are
/// live only.
class nats_event_bus final : public event_bus {
public:
  /// Handlers run on `ex`, which must outlive the bus's subscriptions.
  [[nodiscard]] static expected<std::shared_ptr<nats_event_bus>>
  open(executor& ex, std::shared_ptr<nats::connection> conn, nats_bus_options options = {});
  ~nats_event_bus() override;

  /// Identifies this bus's messages; give it to the event store
  /// (`jetstream_store_options::origin`).
  [[nodiscard]] const std::string& origin() const noexcept;

  expected<void> publish(std::string_view ns, event e) override;
  [[nodiscard]] expected<event_subscription> subscribe(std::string_view ns_pattern, event_filter filter, handler h,
                                                       subscribe_options options = {}) override;
  using event_bus::subscribe;
  void stored(const std::vector<event>& events) override;
  void close() override;
  void collect(metric_sink& sink) const override;

  struct impl;

private:
  explicit nats_event_bus(std::shared_ptr<impl> p) noexcept;
  std::shared_ptr<impl> impl_;
};

} // namespace aether
