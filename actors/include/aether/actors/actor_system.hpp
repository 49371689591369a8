#pragma once

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_id.hpp>
#include <aether/actors/message.hpp>
#include <aether/actors/metrics.hpp>
#include <aether/actors/reply.hpp>
#include <aether/actors/supervision.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace aether {

class placement;

namespace detail {
class system_core;
}

/// Settings of an actor system.
struct system_config {
  /// Actors hash to this many shards; each shard has one mailbox.
  std::uint32_t shard_count = 64;
  /// Messages a shard's mailbox holds before sends fail with `mailbox_full`
  /// (exactly, whatever the number of concurrent senders), and messages an
  /// actor's stash holds while it waits or restarts: past that a message,
  /// timer ticks included, is a counted dead letter and an asker gets
  /// `mailbox_full`.
  std::size_t mailbox_capacity = 1u << 16;
  /// Messages a shard handles per turn before it yields its thread.
  std::size_t drain_batch = 64;
  /// An actor idle this long is passivated; zero never passivates.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes{5}};
  /// Called (on a runtime thread) for every dead letter; optional.
  std::function<void(const dead_letter&)> on_dead_letter;
  /// Times every message's handling (two clock reads a message) for the
  /// `aether_message_handling_seconds` histogram; off by default.
  bool measure_handling = false;

  /// `invalid_argument` when a value is out of range.
  [[nodiscard]] expected<void> validate() const;
};

class thread_pool_executor;

/// Makes a fresh instance of an actor type for an id.
using actor_factory = std::function<std::unique_ptr<actor>(const actor_id&)>;

/// Virtual actors on an executor: sharded mailboxes, activation on first
/// message, idle passivation, supervision, tell and ask.
///
/// Thread-safety: `tell`, `ask`, `metrics` and `register_actor` from any
/// thread. The executor must not run the system's tasks after it is
/// destroyed: `close` it and wait, or stop the executor first.
class actor_system {
public:
  actor_system(system_config config, executor& exec);
  ~actor_system();
  actor_system(const actor_system&) = delete;
  actor_system& operator=(const actor_system&) = delete;

  /// Registers actor type `type` made by `factory`. Throws
  /// `bad_expected_access` for an invalid type name.
  void register_actor(std::string_view type, actor_factory factory, actor_options options = {});

  /// Registers `T`, default-constructed.
  template <class T>
  void register_actor(std::string_view type, actor_options options = {}) {
    register_actor(
        type, [](const actor_id&) { return std::make_unique<T>(); }, options);
  }

  /// A fresh instance of `id`'s type made by its registered factory, never
  /// activated nor entered in a directory (for read-only folds of its
  /// history); `unknown_actor_type` when no such type is registered.
  [[nodiscard]] expected<std::unique_ptr<actor>> make_detached(const actor_id& id) const;

  /// Sends `m` to `to` from outside any actor.
  template <class M>
  expected<void> tell(const actor_id& to, M&& m) {
    return tell_message(to, message{std::forward<M>(m)});
  }

  /// Asks `to` from outside any actor; the answer or error arrives by the
  /// returned `pending<R>`.
  template <class R, class M>
  [[nodiscard]] pending<R> ask(const actor_id& to, M&& m, executor::duration timeout) {
    // Callbacks and the timeout run on the lane of the target's shard.
    auto slot = make_intrusive<detail::external_reply_slot<R>>(link(), exec(), lane_of(to));
    ask_message(to, message{std::forward<M>(m)}, timeout, slot);
    return pending<R>{std::move(slot)};
  }

  /// Installs the step that decides which actors run on this node (nullptr:
  /// all of them, the default). Set before the first message; `p` must
  /// outlive the system's use of it (remove it before destroying it).
  void set_placement(placement* p) noexcept;

  /// Delivers a message that arrived from another node to the actor `to`
  /// on this node, whatever the placement says (the caller decided): `from`
  /// is its `ctx.sender()`, `reply` set for an ask. `mailbox_full` or
  /// `invalid_id` when it cannot be queued.
  expected<void> deliver(const actor_id& to, const actor_id& from, message&& m,
                         intrusive_ptr<detail::reply_slot> reply = {});

  /// Counts a message that could not be delivered (and reports it to
  /// `system_config::on_dead_letter`), for a layer that drops one.
  void report_dead_letter(const actor_id& target, std::string_view type, errc reason);

  /// Handles what is queued, then passivates the active actors `moved`
  /// picks (their shard moved to another node); `done` on a runtime thread
  /// once every mailbox did, with how many of them still wait for a write
  /// and stay active (release again later). Later messages for them go to
  /// the placement.
  void release(std::function<bool(const actor_id&)> moved, unique_function<void(std::size_t)> done);

  /// Stops accepting messages from outside; actors may still message each other.
  void stop_accepting() noexcept;
  /// True when every mailbox is empty and no shard is running.
  [[nodiscard]] bool idle() const noexcept;
  /// Handles what is queued, passivates every actor and closes the
  /// mailboxes (later messages become dead letters); then calls `done` on a
  /// runtime thread.
  void close(unique_function<void()> done);
  /// After `close` and once the executor runs nothing more: fails what
  /// still sits in a mailbox, so nobody waits for it forever.
  void discard_queued();

  [[nodiscard]] metrics_snapshot metrics() const noexcept;
  /// What the metrics endpoint shows beside `metrics()`: per actor type,
  /// dead letters by reason, mailbox depth, handling times. Reads counters
  /// only; never waits for a shard.
  [[nodiscard]] system_detail_metrics detail_metrics() const;
  [[nodiscard]] std::uint32_t shard_count() const noexcept;
  [[nodiscard]] executor& exec() const noexcept;
  /// Actors currently active in all shards (relaxed counts: a moment's view).
  [[nodiscard]] std::size_t active_actors() const noexcept;

private:
  expected<void> tell_message(const actor_id& to, message&& m);
  void ask_message(const actor_id& to, message&& m, executor::duration timeout, intrusive_ptr<detail::reply_slot> slot);
  void start_external_timeout(executor::duration timeout, const intrusive_ptr<detail::reply_slot>& slot);
  /// The executor lane of `to`'s shard (shards outnumber lanes when the
  /// executor has fewer lanes than the system has shards).
  [[nodiscard]] std::size_t lane_of(const actor_id& to) const noexcept;
  /// How an external ask's slot reaches this system while it lives.
  [[nodiscard]] intrusive_ptr<detail::core_link> link() const noexcept;

  std::unique_ptr<detail::system_core> core_;
};

/// What a program running an actor system on a pool does last: closes the
/// system (what is queued is handled, every actor passivated), stops and
/// joins the pool, and fails what is left in a mailbox. Not on a pool thread.
void close_and_join(actor_system& system, thread_pool_executor& pool);

} // namespace aether
