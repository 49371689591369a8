#pragma once

#include "system_core.hpp"

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

namespace aether::detail {

/// One shard: a mailbox (a lock-free MPMC queue used as MPSC), the directory
/// of its active actors, and the turn that drains them on one lane.
///
/// The atomic `count_` both bounds the mailbox and schedules the turn: the
/// send that moves it from zero posts a drain; a drain subtracts what it
/// handled and posts itself again while anything is left. So a shard is
/// scheduled at most once, with one atomic operation per send. A bounded
/// send takes its slot with a compare-and-swap before it enqueues, so no
/// more than `mailbox_capacity` bounded messages are ever counted, whatever
/// the number of concurrent senders, and none is refused below it.
///
/// FIFO per sender: the queue keeps order per producer. A sender outside the
/// runtime is one thread (an implicit producer); a sending shard may run on
/// any thread, so it enqueues through its own producer token per target.
///
/// Thread-safety: `enqueue` and `idle` from any thread; everything else on
/// the shard's lane.
class shard {
public:
  shard(system_core& core, std::uint32_t index);
  ~shard();
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

  expected<void> enqueue(envelope&& env, bool bounded);
  [[nodiscard]] bool idle() const noexcept { return count_.load(std::memory_order_acquire) == 0; }
  /// Messages counted in the mailbox now.
  [[nodiscard]] std::size_t depth() const noexcept { return count_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t lane() const noexcept { return lane_; }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }

  /// What this shard counts itself: written only on its lane, on a cache
  /// line of its own, so busy shards do not contend on shared counters.
  struct alignas(64) local_counters {
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> activations{0};
    std::atomic<std::uint64_t> passivations{0};
    std::atomic<std::int64_t> active{0};

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); // one writer
    }
  };
  [[nodiscard]] const local_counters& counts() const noexcept { return counts_; }

  /// Starts the passivation sweep. On the lane.
  void start();
  /// Handles what is queued, passivates all actors and refuses later
  /// messages. On the lane.
  void close();
  /// Handles what is queued, then passivates the active actors `moved`
  /// picks (their shard moves to another node); returns how many of them
  /// are still waiting (a write in flight) and stay. On the lane.
  std::size_t release(const std::function<bool(const actor_id&)>& moved);
  /// Fails whatever is still queued. Only once nothing runs the lanes.
  void discard_queued();

  // Used by `context` on the shard's turn.
  [[nodiscard]] system_core& core() noexcept { return core_; }
  [[nodiscard]] executor::time_point now() const noexcept { return now_; }
  void fire_timer(const actor_id& target, std::uint32_t incarnation, executor::timer_id id, bool once, message&& m);

private:
  using directory = std::unordered_map<actor_id, cell>;

  void schedule();
  void drain();
  void handle(envelope& env);
  void deliver(envelope& env);
  /// Keeps a message while its actor waits or restarts; past the mailbox
  /// capacity it is a counted dead letter and an asker gets mailbox_full.
  void stash(cell& c, envelope&& env);
  /// Hands a message for an actor not served here to the placement.
  void reroute(envelope& env);
  void answer(envelope& env);
  expected<cell*> activate(const actor_id& id);
  void invoke(cell& c, envelope& env, bool touch);
  bool run_hook(const actor_id& id, cell& c, bool activate);
  void on_failure(const actor_id& id, cell& c, envelope* env, std::string_view what);
  void restart(const actor_id& id, std::uint32_t incarnation);
  directory::iterator passivate(directory::iterator it, const error& stash_reason);
  void passivate(const actor_id& id, const error& stash_reason);
  void resume(const actor_id& id);
  void finish_turn(const actor_id& id);
  void sweep();
  void enter(const actor_id* self, cell* c, envelope* env) noexcept;
  moodycamel::ProducerToken& producer_for(shard& target);

  system_core& core_;
  std::uint32_t index_;
  std::size_t lane_;
  moodycamel::ConcurrentQueue<envelope> queue_;
  std::atomic<std::size_t> count_{0};
  local_counters counts_;
  // Set when closing starts: later sends fail at once instead of waiting in
  // a mailbox that may never be drained again.
  std::atomic<bool> closing_{false};

  // On the lane only.
  moodycamel::ConsumerToken consumer_;
  directory directory_;
  std::vector<std::unique_ptr<moodycamel::ProducerToken>> producers_;
  context ctx_;
  executor::time_point now_{};
  std::uint32_t next_incarnation_ = 1;
  executor::timer_id sweep_timer_ = 0;
  bool closed_ = false;
};

} // namespace aether::detail
