#pragma once

#include "handoff.hpp"
#include "outbox.hpp"
#include "remote_envelope.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/actors/placement.hpp>
#include <aether/cluster/cluster.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/nats.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace aether {

/// The cluster's placement: an actor is local when this node serves its
/// cluster shard in the newest map it applied; messages for the others go
/// to their owner's inbox subject on NATS, and this node's inbox delivers
/// what others send here to the actors of the shards it serves.
///
/// Shards move by the `handoff`: a node that loses a shard to a live node
/// finishes what is queued for it, passivates its actors and sends the new
/// owner what reached its inbox for the shard meanwhile, then `released`;
/// the new owner holds messages for the shard (bounded)
/// until then, or until the release timeout, and delivers them in order.
/// A node that stops serving (it fenced itself) passivates its actors and
/// answers asks for them with `not_owner`.
///
/// Each sender's order per receiver holds across a move: this node sends
/// the tells for one shard (its own and those it sends on) to one node at a
/// time. Before it sends them elsewhere, or serves the shard itself, while
/// tells it sent to a node that still runs may be on their way, it sends
/// that node a fence (behind those tells) and holds the shard's tells
/// (bounded) until the fence passed: delivered where the tells before it
/// were, or come back to this node as their new owner. Tells it keeps for
/// the shard meanwhile (no owner known, or the shard on its way here) wait
/// behind the fence too. A fence that does not pass within `fence_timeout`
/// is sent again while its node runs (alive, or left and handing its shards
/// over: it is slow, or the fence or its answer was lost); it is given up
/// (logged), and the tells go on, once that node is dead, or after
/// `fence_limit` in all.
///
/// Asks are retried only where they were certainly not delivered: while no
/// live node serves the shard (nothing was sent), and after the receiver
/// answered `not_owner`; every retry uses the newest map, until the ask's
/// deadline. Tells that find no owner, or a shard on its way here, wait in
/// the handoff's buffer (or behind a fence); on overflow the sender gets
/// `unavailable` and a dead letter is counted. A message a mailbox hands
/// back (its shard moved on) travels on as it came from another node.
///
/// Thread-safety: `is_local`, `may_activate` and `forward` from any thread;
/// `apply` on the cluster strand; inbox messages arrive on a nats.c thread;
/// retries, the handoff's deadlines and the sweep run on `lane`.
class shard_router final : public placement, public std::enable_shared_from_this<shard_router> {
public:
  struct options {
    /// How long a new owner waits for the old one to release a shard.
    executor::duration release_timeout = std::chrono::seconds{3};
    /// Messages held for shards on their way here or without an owner, in all.
    std::size_t hold_limit = 100000;
    /// How long tells for a shard wait behind a fence on the node they went
    /// to before (then they go on, in order as far as this node knows).
    executor::duration fence_timeout = std::chrono::seconds{3};
    /// How long they wait behind a fence to a node that still runs.
    executor::duration fence_limit = std::chrono::seconds{30};
  };

  shard_router(actor_system& system, executor& exec, std::size_t lane, std::shared_ptr<nats::connection> conn,
               std::string cluster, std::uint32_t shard_count, options opts);
  ~shard_router() override;

  /// Opens the inbox of incarnation `self` before the node joins with it, so
  /// that nothing sent to it by a map that names it is published to no
  /// subscriber; what arrives before the first `apply` waits for it.
  void listen(const member_id& self);
  /// Takes what the cluster knows now: the owned shards, the map, this
  /// node's incarnation (its inbox).
  void apply(const cluster_snapshot& view);
  /// A graceful stop: every shard served here drains (what is queued is
  /// handled, the actors passivate) and every live member hears `released`;
  /// `done` then, on a runtime thread.
  void leave(unique_function<void()> done);
  /// Stops taking messages from other nodes and retrying.
  void stop();

  [[nodiscard]] bool is_local(const actor_id& target) const noexcept override;
  [[nodiscard]] bool may_activate(const actor_id& target) const noexcept override;
  expected<void> forward(outbound_message&& m) override;
  void attach(mailboxes& m) noexcept override { mailboxes_.store(&m, std::memory_order_release); }

  /// Envelopes that did not decode (counted, logged, dropped).
  [[nodiscard]] std::uint64_t malformed_envelopes() const noexcept { return malformed_.load(); }

  /// What this node does with `shard` now.
  [[nodiscard]] shard_state state(std::uint32_t shard) const noexcept {
    const auto st = state_[shard].load(std::memory_order_relaxed);
    return st == settling_state ? shard_state::serving : static_cast<shard_state>(st);
  }
  /// Messages that could not wait (the handoff buffer was full).
  [[nodiscard]] std::uint64_t overflowed() const noexcept { return overflowed_.load(); }

  /// This node's incarnation, as of the newest snapshot.
  [[nodiscard]] member_id self() const;
  /// Publishes `e` to the inbox of `to`.
  expected<void> send(const member_id& to, const remote_envelope& e);

private:
  struct pending_ask {
    intrusive_ptr<detail::reply_slot> reply;
    actor_id target;
    actor_id sender;
    std::string type;
    std::string payload;
    executor::time_point deadline;
  };

  /// Work found under the lock, done after it.
  struct actions {
    std::vector<std::pair<member_id, remote_envelope>> sends;
    std::vector<std::pair<intrusive_ptr<detail::reply_slot>, error>> failures;
    std::vector<std::uint32_t> drain;
    std::vector<std::uint32_t> drop;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> settle; // (shard, round): a barrier behind what was delivered
  };

  /// A message on the inbox (a nats.c thread): one envelope or a batch,
  /// decoded and handled in order.
  void on_inbox(std::string_view bytes);
  /// Handles envelopes in order, tells and asks under one lock.
  void take(std::vector<remote_envelope>&& envelopes);
  void on_envelope(remote_envelope&& e);
  /// Subscribes to the inbox of `self`. Under the lock.
  void subscribe(const member_id& self);
  void on_message(remote_envelope&& e);
  /// A tell or ask for `e.target`. Under the lock.
  void route_message(remote_envelope&& e, actions& todo);
  void on_answer(remote_envelope&& e);
  /// A node waits for a shard (asks whether it was released) or, with
  /// `hops` set, answers that it still serves or drains it.
  void on_query(remote_envelope&& e);
  /// Sends what is held for `shard` on to `to` (tells) or back to the
  /// asker (asks, `not_owner`). Under the lock.
  void forward_held(std::uint32_t shard, const member_id& to, actions& todo);
  /// Sends ask `correlation` to the shard's owner in the newest map, or
  /// waits for one (on `lane`).
  void route_ask(std::uint64_t correlation);
  void retry_later(std::uint64_t correlation);
  void tick();
  /// A node that stopped, or leaves with no other live member. Under the lock.
  [[nodiscard]] bool no_one_to_send_to() const;
  /// The live owner of `shard` in the newest map (empty when none). Under the lock.
  [[nodiscard]] member_id owner_of(std::uint32_t shard) const;
  /// Carries out a handoff step. Under the lock.
  void take_step(const handoff_step& step, actions& todo);
  /// Delivers `e` to the actor here (once its type is registered). Under the lock.
  void deliver_here(remote_envelope&& e, actions& todo);
  /// Delivers `e` to the actor here now, settling or not. Under the lock.
  void deliver_settled(remote_envelope&& e, actions& todo);
  /// `shard` is served here from now on: what it held (`held`, in order)
  /// goes to the mailboxes first, and until they handled it (a barrier
  /// behind it) the shard's later messages wait here too, so that none
  /// overtakes them by another thread's mailbox queue. Under the lock.
  void settle(std::uint32_t shard, std::deque<remote_envelope>&& held, actions& todo);
  /// The barrier of settling round `round` of `shard` passed.
  void settled(std::uint32_t shard, std::uint64_t round);
  /// Delivers what waits to settle `shard` and asks for a barrier behind it. Under the lock.
  void settle_round(std::uint32_t shard, actions& todo);
  void deliver_now(remote_envelope&& e, actions& todo);
  /// Whether actors of `type` may be delivered to: registered, or the
  /// program had its time to register it. Delivers what waited for
  /// registrations made meanwhile. Under the lock.
  bool registered(std::string_view type, actions& todo);
  /// Keeps `e` for its shard, or fails it. Under the lock.
  void hold(std::uint32_t shard, remote_envelope&& e, actions& todo);
  /// A message that cannot wait: `unavailable` to an asker, a counted dead letter. Under the lock.
  void fail_held(std::uint32_t shard, remote_envelope&& e, actions& todo);
  void run(actions&& todo);

  /// What this node sends for one shard: where its tells went last, and the
  /// fence they wait behind while it moves them elsewhere.
  struct out_lane {
    member_id dest;                      // where tells for the shard went last (empty: none since it served it)
    std::uint64_t fence = 0;             // the fence its tells wait behind (0: none)
    member_id fenced;                    // the node the fence went to
    executor::time_point deadline{};     // when the fence is sent again, or given up
    executor::time_point limit{};        // when it is given up even to a live node
    std::deque<remote_envelope> waiting; // tells behind the fence, in order
    bool settling = false;               // served here, the held messages not handled yet
    std::uint64_t round = 0;             // the settling barrier waited for
    std::deque<remote_envelope> settle;  // what came meanwhile, in order
  };
  /// `state_` of a shard served here while it settles: not local to the
  /// send path (it goes through `forward`), but its actors may activate.
  static constexpr std::uint8_t settling_state = 0x80;
  /// Whether `e` is a fence (a query with a correlation).
  [[nodiscard]] static bool is_fence(const remote_envelope& e) noexcept {
    return e.kind == remote_kind::query && e.correlation != 0;
  }
  /// Whether `m` runs and may still hand on what it was sent. Under the lock.
  [[nodiscard]] bool reachable(const member_id& m) const;
  /// Sends tell or fence `e` for `shard` to `to` (now, under the lock, so
  /// the shard's tells leave in the order routed), or keeps it behind the
  /// shard's fence, fencing the node its tells went to before if that is
  /// not `to`. `unavailable` when it could not wait (the buffer is full;
  /// a dead letter is counted), or the publish's error.
  expected<void> send_on(std::uint32_t shard, const member_id& to, remote_envelope&& e);
  /// Keeps this node's own tell `e` for `shard` here (no node to send it
  /// to, or the shard on its way here): behind the shard's fence while tells
  /// it sent elsewhere may come back (starting one if needed), else in the
  /// held queue (where other nodes' tells wait: the fence orders only this
  /// node's own). `unavailable` when the buffer is full (a dead letter
  /// is counted). Under the lock.
  expected<void> keep(std::uint32_t shard, remote_envelope&& e);
  /// Sends a fence for `shard` to where its tells went last, unless one is
  /// on its way. Under the lock.
  void start_fence(std::uint32_t shard);
  /// Sends shard's fence (again) to the node it waits on. Under the lock.
  void send_fence(std::uint32_t shard);
  /// Whether `shard` must not be served here before a fence passed (tells
  /// sent for it may still be on their way). Under the lock.
  [[nodiscard]] bool needs_fence(std::uint32_t shard) const;
  /// A fence reached the node that serves (or waits for) its shard: what
  /// was sent before it is there. Under the lock.
  void answer_fence(remote_envelope&& e, actions& todo);
  /// Fence `correlation` of `shard` passed (or was given up): what waited
  /// behind it goes on. Under the lock.
  void fence_passed(std::uint32_t shard, std::uint64_t correlation, actions& todo);
  /// Routes a tell or fence this node sends on (a shard not served here). Under the lock.
  void route_on(std::uint32_t shard, remote_envelope&& e, actions& todo);

  struct release_task {
    std::vector<std::uint32_t> shards;
    std::function<bool(const actor_id&)> moved;
    bool notify = false;
    int phase = 0; // 0: finishing and passivating; 1: after the shards stopped being served here
    std::vector<std::pair<member_id, std::uint32_t>> to_notify;
    std::shared_ptr<unique_function<void()>> finish;
  };
  void release_shards(std::vector<std::uint32_t> shards, bool notify, unique_function<void()> done);
  void release_round(const std::shared_ptr<release_task>& task);
  void sync_states();

  actor_system& system_;
  executor& exec_;
  std::size_t lane_;
  std::shared_ptr<nats::connection> conn_;
  std::string cluster_;
  std::uint32_t shard_count_;
  /// What `send` publishes through: tells gathered per node, the rest at once.
  std::shared_ptr<outbox> outbox_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> state_;
  std::atomic<mailboxes*> mailboxes_{nullptr}; // set once the system installs the router
  std::atomic<std::uint64_t> next_correlation_{1};
  std::atomic<std::uint64_t> malformed_{0};
  std::atomic<std::uint64_t> overflowed_{0};

  mutable std::mutex mutex_;
  std::shared_ptr<const cluster_snapshot> view_;
  handoff handoff_;
  std::optional<nats::subscription> inbox_;
  member_id listening_;               // the incarnation `inbox_` is for
  std::deque<remote_envelope> early_; // arrived before the first view
  bool replaying_ = false;            // early_ is being handed on
  std::unordered_map<std::uint64_t, pending_ask> pending_;
  std::size_t hold_limit_;
  executor::duration release_timeout_;
  // Messages for actor types the program had not registered yet, in arrival
  // order; none are held once `registration_until_` passed.
  std::set<std::string, std::less<>> known_types_;
  std::deque<remote_envelope> unregistered_;
  executor::time_point registration_until_;
  bool types_settled_ = false;
  std::vector<out_lane> outs_; // per shard
  std::size_t waiting_ = 0;    // tells behind fences, in all
  executor::duration fence_timeout_;
  executor::duration fence_limit_;
  executor::timer_id sweep_timer_ = 0;
  std::uint64_t ticks_ = 0;
  bool stopped_ = false;
};

} // namespace aether
