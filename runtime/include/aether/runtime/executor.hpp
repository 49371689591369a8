#pragma once

#include <aether/runtime/unique_function.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace aether {

/// Where Aether runs work: a fixed set of lanes, each of which runs its tasks
/// one at a time in the order posted (a strand), plus timers on those lanes
/// and a clock.
///
/// `thread_pool_executor` runs the lanes on threads; `manual_executor` runs
/// them when a test says so, on a clock the test moves.
///
/// Thread-safety: `post` and `now` may be called from any thread;
/// `start_timer` and `cancel_timer` only from a task running on that lane.
class executor {
public:
  using clock = std::chrono::steady_clock;
  using duration = clock::duration;
  using time_point = clock::time_point;
  using task = unique_function<void()>;
  using timer_id = std::uint64_t;

  virtual ~executor() = default;

  [[nodiscard]] virtual std::size_t lane_count() const noexcept = 0;
  /// Runs `fn` on `lane`, after the tasks posted to it before.
  virtual void post(std::size_t lane, task fn) = 0;
  /// Runs `fn` on `lane` after `delay`, then every `period` if it is non-zero,
  /// until cancelled. Call on `lane`.
  virtual timer_id start_timer(std::size_t lane, duration delay, duration period, task fn) = 0;
  /// Cancels a timer; a no-op for one that already fired once-only. Call on `lane`.
  virtual void cancel_timer(std::size_t lane, timer_id id) = 0;
  [[nodiscard]] virtual time_point now() const noexcept = 0;
};

} // namespace aether
