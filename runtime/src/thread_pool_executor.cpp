#include <aether/runtime/thread_pool_executor.hpp>

#include <asio/bind_executor.hpp>
#include <asio/defer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <atomic>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace aether {

namespace {
thread_local const void* current_pool = nullptr;
} // namespace

struct thread_pool_executor::impl {
  using strand = asio::strand<asio::io_context::executor_type>;

  struct timer_entry {
    std::unique_ptr<asio::steady_timer> timer;
    duration period;
    std::shared_ptr<task> fn;
  };

  // Touched only on its lane's strand.
  struct lane {
    explicit lane(strand s) : executor{std::move(s)} {}
    strand executor;
    std::unordered_map<timer_id, timer_entry> timers;
  };

  asio::io_context context;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<lane> lanes;
  std::vector<std::thread> threads;
  std::atomic<timer_id> next_timer{1};

  void arm(std::size_t index, timer_id id, asio::steady_timer& t) {
    t.async_wait(asio::bind_executor(lanes[index].executor, [this, index, id](const std::error_code& ec) {
      if (ec) return; // cancelled
      auto& timers = lanes[index].timers;
      auto it = timers.find(id);
      if (it == timers.end()) return;
      auto fn = it->second.fn; // the entry may be erased by fn itself
      if (it->second.period.count() > 0) {
        it->second.timer->expires_at(it->second.timer->expiry() + it->second.period);
        arm(index, id, *it->second.timer);
      } else {
        timers.erase(it);
      }
      (*fn)();
    }));
  }
};

thread_pool_executor::thread_pool_executor(std::size_t threads, std::size_t lanes) : impl_{std::make_unique<impl>()} {
  if (threads == 0) threads = 1;
  if (lanes == 0) lanes = 1;
  impl_->lanes.reserve(lanes);
  for (std::size_t i = 0; i < lanes; ++i) impl_->lanes.emplace_back(asio::make_strand(impl_->context));
  impl_->work.emplace(impl_->context.get_executor());
  impl_->threads.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] {
      current_pool = this;
      impl_->context.run();
      current_pool = nullptr;
    });
  }
}

thread_pool_executor::~thread_pool_executor() {
  stop();
  join();
}

std::size_t thread_pool_executor::lane_count() const noexcept { return impl_->lanes.size(); }
std::size_t thread_pool_executor::thread_count() const noexcept { return impl_->threads.size(); }
bool thread_pool_executor::on_pool_thread() const noexcept { return current_pool == this; }

void thread_pool_executor::post(std::size_t lane, task fn) {
  auto& s = impl_->lanes.at(lane).executor;
  // From a pool thread the task continues the running chain: defer keeps it
  // on this thread's private queue instead of waking a sleeping thread.
  if (on_pool_thread()) {
    asio::defer(s, std::move(fn));
  } else {
    asio::post(s, std::move(fn));
  }
}

executor::timer_id thread_pool_executor::start_timer(std::size_t lane, duration delay, duration period, task fn) {
  auto& l = impl_->lanes.at(lane);
  const auto id = impl_->next_timer.fetch_add(1, std::memory_order_relaxed);
  auto t = std::make_unique<asio::steady_timer>(impl_->context, delay);
  auto& ref = *t;
  l.timers.emplace(id, impl::timer_entry{std::move(t), period, std::make_shared<task>(std::move(fn))});
  impl_->arm(lane, id, ref);
  return id;
}

void thread_pool_executor::cancel_timer(std::size_t lane, timer_id id) {
  auto& timers = impl_->lanes.at(lane).timers;
  auto it = timers.find(id);
  if (it == timers.end()) return;
  it->second.timer->cancel();
  timers.erase(it);
}

asio::io_context& detail::pool_context(thread_pool_executor& pool) noexcept { return pool.impl_->context; }

executor::time_point thread_pool_executor::now() const noexcept { return clock::now(); }

void thread_pool_executor::stop() noexcept {
  impl_->work.reset();
  impl_->context.stop();
}

void thread_pool_executor::join() noexcept {
  for (auto& t : impl_->threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
}

} // namespace aether
