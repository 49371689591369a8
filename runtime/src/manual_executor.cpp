#include <aether/runtime/manual_executor.hpp>

#include <stdexcept>

namespace aether {

manual_executor::manual_executor(std::size_t lanes) : lanes_{lanes == 0 ? 1 : lanes} {}

void manual_executor::post(std::size_t lane, task fn) {
  if (lane >= lanes_) throw std::out_of_range{"manual_executor: lane out of range"};
  tasks_.push_back(std::move(fn));
}

executor::timer_id manual_executor::start_timer(std::size_t, duration delay, duration period, task fn) {
  const auto id = next_timer_++;
  timers_.emplace(id, timer{now_ + delay, period, std::make_shared<task>(std::move(fn))});
  return id;
}

void manual_executor::cancel_timer(std::size_t, timer_id id) { timers_.erase(id); }

std::size_t manual_executor::run() {
  std::size_t ran = 0;
  while (!tasks_.empty()) {
    auto fn = std::move(tasks_.front());
    tasks_.pop_front();
    fn();
    ++ran;
  }
  return ran;
}

void manual_executor::advance(duration d) {
  const auto target = now_ + d;
  run();
  for (;;) {
    // The earliest due timer; ties fire in the order they were started.
    auto next = timers_.end();
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->second.due <= target && (next == timers_.end() || it->second.due < next->second.due)) next = it;
    }
    if (next == timers_.end()) break;
    now_ = next->second.due;
    auto fn = next->second.fn;
    if (next->second.period.count() > 0) {
      next->second.due += next->second.period;
    } else {
      timers_.erase(next);
    }
    (*fn)();
    run();
  }
  now_ = target;
}

} // namespace aether
