#pragma once

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/actors/placement.hpp>
#include <aether/runtime/metrics.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace aether::detail {

class shard;

enum class envelope_kind : std::uint8_t {
  deliver, ///< a message for `target`; `reply` is set for an ask
  answer,  ///< the answer to an ask `target` made; `reply` is its slot
  barrier, ///< no message: `reply` is completed when the mailbox reaches it
};

/// A message in a mailbox, with where it goes and where its answer goes.
struct envelope {
  actor_id target;
  actor_id sender;
  intrusive_ptr<reply_slot> reply;
  message payload;
  envelope_kind kind = envelope_kind::deliver;
};

/// One shard's counts of one actor type; one writer (the shard's lane).
struct alignas(64) type_shard_counts {
  std::atomic<std::int64_t> active{0};
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> passivations{0};
  void activated() noexcept {
    active.store(active.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    activations.store(activations.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void passivated() noexcept {
    active.store(active.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    passivations.store(passivations.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

struct type_entry {
  std::string name;
  actor_factory factory;
  actor_options options;
  executor::duration idle_timeout; // resolved against the system default
  // Metrics of the type: per shard, each cell written only on its shard's lane; rare ones shared.
  std::unique_ptr<type_shard_counts[]> counts;
  mutable std::atomic<std::uint64_t> handler_failures{0};
  mutable std::atomic<std::uint64_t> restarts{0};
};

/// What only actors that used timers, failed or are restarting need.
struct cell_extras {
  std::vector<executor::timer_id> timers;
  std::deque<envelope> stash;                 // messages waiting for a restart or an exclusive wait
  std::vector<executor::time_point> failures; // inside the restart window (few: a vector allocates nothing until used)
  executor::timer_id restart_timer = 0;
};

/// An active actor in its shard's directory.
struct cell {
  std::unique_ptr<actor> instance;
  const type_entry* type = nullptr;
  executor::time_point last_active{};
  std::uint32_t incarnation = 0; // changes with every new instance
  std::uint32_t pending_asks = 0;
  std::uint16_t suspended = 0; // exclusive waits pending: messages are stashed
  bool restarting = false;
  std::unique_ptr<cell_extras> extras;

  cell_extras& ext() {
    if (!extras) extras = std::make_unique<cell_extras>();
    return *extras;
  }
};

/// Rare events, counted for the whole system (busy ones are per shard).
struct counters {
  std::atomic<std::uint64_t> handler_failures{0};
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> dead_letters{0};
  std::atomic<std::uint64_t> late_replies{0};
  std::atomic<std::uint64_t> mailbox_full{0};
  std::atomic<std::uint64_t> ask_timeouts{0};
  std::array<std::atomic<std::uint64_t>, 32> dead_letters_by_reason{}; // by errc

  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

/// The timeouts of asks made from outside any actor: one executor timer, on
/// lane 0, for the earliest deadline, instead of one timer per ask armed and
/// cancelled on the target's lane (two hops to a pool thread per ask). An
/// ask is entered and taken off under a lock from whichever thread asks or
/// answers; a lane hop is needed only when a deadline comes before the one
/// the timer is set for (the first ask, or a shorter timeout). A timer that
/// fires for asks answered meanwhile finds nothing due and is set again for
/// the earliest left.
///
/// Thread-safety: `add` and `remove` from any thread; `rearm` and `fire` on
/// lane 0 only.
class ask_deadlines {
public:
  /// Enters `slot` to time out at `due`; true when the timer must be set
  /// again (post `rearm` to lane 0).
  [[nodiscard]] bool add(const intrusive_ptr<reply_slot>& slot, executor::time_point due);
  /// Takes `slot` off, if it is there.
  void remove(reply_slot& slot) noexcept;
  /// Sets the timer for the earliest deadline.
  void rearm(system_core& core);
  /// Times out every ask due by now, then sets the timer again.
  void fire(system_core& core);
  /// Asks waiting for their deadline (for tests and metrics).
  [[nodiscard]] std::size_t size() const;

  static constexpr std::size_t lane = 0;

private:
  using key = std::pair<executor::time_point, std::uint64_t>;
  mutable std::mutex mutex_;
  std::map<key, intrusive_ptr<reply_slot>> entries_;
  std::uint64_t next_seq_ = 0;
  // The deadline the timer is set for, or a rearm posted will set it for:
  // every entry is due then or later (under the lock).
  executor::time_point scheduled_ = executor::time_point::max();
  // On lane 0 only.
  executor::timer_id timer_ = 0;
  executor::time_point armed_ = executor::time_point::max();
};

/// The system behind a link for the length of one call; false once closed.
class entered_core {
public:
  explicit entered_core(core_link& link) noexcept : link_{link}, core_{link.enter()} {}
  entered_core(const entered_core&) = delete;
  entered_core& operator=(const entered_core&) = delete;
  ~entered_core() {
    if (core_ != nullptr) link_.leave();
  }
  explicit operator bool() const noexcept { return core_ != nullptr; }
  system_core* operator->() const noexcept { return core_; }
  system_core& operator*() const noexcept { return *core_; }

private:
  core_link& link_;
  system_core* core_;
};

class system_core;

/// The mailboxes as a placement sees them (kept out of `system_core`, whose
/// layout the hot path reads, so that it needs no virtual table).
class system_mailboxes final : public mailboxes {
public:
  explicit system_mailboxes(system_core& core) noexcept : core_{core} {}
  void barrier(unique_function<void()> done) override;

private:
  system_core& core_;
};

/// The state an actor system shares with its shards, contexts and slots.
class system_core {
public:
  system_core(system_config cfg, executor& ex);
  ~system_core();
  /// See `mailboxes::barrier`.
  void barrier(unique_function<void()> done);

  /// Routes `env` to its target's shard. `bounded` sends respect the mailbox
  /// capacity; answers and other runtime traffic do not.
  /// A message for an actor the placement puts elsewhere goes to it;
  /// `timeout` is an ask's.
  expected<void> send(envelope&& env, bool bounded, executor::duration timeout = {}) {
    if (auto* p = placement_.load(std::memory_order_acquire); p != nullptr) [[unlikely]] {
      if (env.kind == envelope_kind::deliver && !env.target.empty() && !p->is_local(env.target)) {
        return forward(*p, std::move(env), timeout);
      }
    }
    return send_local(std::move(env), bounded);
  }
  /// Routes `env` to its target's local shard, whatever the placement says.
  expected<void> send_local(envelope&& env, bool bounded);
  /// Fails `env`: its asker gets `e`, a tell becomes a dead letter.
  void fail(envelope& env, const error& e);
  void dead_letter(const actor_id& target, std::string_view type, errc reason);
  /// Releases the callbacks of an answer that cannot be delivered.
  static void drop_answer(envelope& env) noexcept;
  static expected<void> forward(placement& p, envelope&& env, executor::duration timeout);
  [[nodiscard]] const type_entry* find_type(std::string_view name) const;
  [[nodiscard]] std::size_t lane_of(const actor_id& id) const noexcept;

  system_config config;
  executor& exec;
  // What slots and promises reach the core through; closed by the destructor.
  intrusive_ptr<core_link> link{make_intrusive<core_link>(*this)};
  counters stats;
  ask_deadlines deadlines;
  // Handling time per shard, when `config.measure_handling` asks for it.
  std::unique_ptr<latency_histogram[]> handling;
  std::atomic<bool> accepting{true};
  std::vector<std::unique_ptr<shard>> shards;
  std::atomic<placement*> placement_{nullptr};

  mutable std::shared_mutex types_mutex;
  std::unordered_map<std::string, std::unique_ptr<type_entry>> types;
  system_mailboxes mailboxes{*this};
};

} // namespace aether::detail
