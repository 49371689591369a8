#pragma once

#include <aether/runtime/executor.hpp>

#include <deque>
#include <map>
#include <memory>
#include <utility>

namespace aether {

/// A deterministic executor for tests: nothing runs until `run()` is called,
/// tasks run in the order they were posted on the calling thread, and time
/// moves only by `advance()`.
///
/// Thread-safety: none; use from one thread.
class manual_executor final : public executor {
public:
  explicit manual_executor(std::size_t lanes = 1);

  [[nodiscard]] std::size_t lane_count() const noexcept override { return lanes_; }
  void post(std::size_t lane, task fn) override;
  timer_id start_timer(std::size_t lane, duration delay, duration period, task fn) override;
  void cancel_timer(std::size_t lane, timer_id id) override;
  [[nodiscard]] time_point now() const noexcept override { return now_; }

  /// Runs posted tasks (and those they post) until none is left; returns how many ran.
  std::size_t run();
  /// Moves the clock forward by `d`, firing due timers in time order and
  /// running what they post.
  void advance(duration d);
  [[nodiscard]] std::size_t pending_tasks() const noexcept { return tasks_.size(); }
  [[nodiscard]] std::size_t active_timers() const noexcept { return timers_.size(); }

private:
  struct timer {
    time_point due;
    duration period;
    std::shared_ptr<task> fn;
  };

  std::size_t lanes_;
  time_point now_{};
  std::deque<task> tasks_;
  timer_id next_timer_ = 1;
  std::map<timer_id, timer> timers_;
};

} // namespace aether
