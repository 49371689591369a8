#pragma once

#include <condition_variable>
#include <coroutine>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace aether {

namespace detail {
template <class T>
struct task_state {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<T> value;
  std::exception_ptr failure;
  bool done = false;

  void finish() {
    std::lock_guard lock{mutex};
    done = true;
    cv.notify_all();
  }
};
struct task_void {};
} // namespace detail

/// A coroutine started at once (eager) whose result a thread can wait for:
/// the bridge between `main()` or a test and code that `co_await`s
/// `node::ask`. The coroutine resumes on runtime threads after each
/// `co_await` of an ask.
///
///     aether::task<int> total(aether::node& n) {
///       auto a = co_await n.ask<int>(counter_a, get{}, 1s);
///       co_return a ? *a : -1;
///     }
///     int v = total(node).get();
///
/// Thread-safety: `get` and `ready` from any thread.
template <class T = void>
class task {
  using stored = std::conditional_t<std::is_void_v<T>, detail::task_void, T>;
  using state = detail::task_state<stored>;

  struct promise_base {
    std::shared_ptr<state> st = std::make_shared<state>();
    task get_return_object() { return task{st}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void unhandled_exception() {
      st->failure = std::current_exception();
      st->finish();
    }
  };
  struct value_promise : promise_base {
    template <class U>
    void return_value(U&& v) {
      this->st->value.emplace(std::forward<U>(v));
      this->st->finish();
    }
  };
  struct void_promise : promise_base {
    void return_void() {
      this->st->value.emplace();
      this->st->finish();
    }
  };

public:
  using promise_type = std::conditional_t<std::is_void_v<T>, void_promise, value_promise>;

  /// Blocks until the coroutine finished; rethrows what escaped it.
  T get() {
    std::unique_lock lock{st_->mutex};
    st_->cv.wait(lock, [this] { return st_->done; });
    if (st_->failure) std::rethrow_exception(st_->failure);
    if constexpr (!std::is_void_v<T>) return std::move(*st_->value);
  }
  [[nodiscard]] bool ready() const {
    std::lock_guard lock{st_->mutex};
    return st_->done;
  }

private:
  explicit task(std::shared_ptr<state> s) noexcept : st_{std::move(s)} {}
  std::shared_ptr<state> st_;
};

} // namespace aether
