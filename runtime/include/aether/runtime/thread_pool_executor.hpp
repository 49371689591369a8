#pragma once

#include <aether/runtime/executor.hpp>

#include <memory>

namespace asio {
class io_context;
} // namespace asio

namespace aether {

class thread_pool_executor;
namespace detail {
/// The pool's `asio::io_context`, for the runtime's own I/O (the HTTP server).
asio::io_context& pool_context(thread_pool_executor& pool) noexcept;
} // namespace detail

/// The production executor: one `asio::io_context` run by `threads` threads,
/// with one strand per lane. Posts made from a task already running on the
/// pool are deferred onto the running thread (no wake-up of another thread),
/// which keeps message chains on one core until the other core is idle.
///
/// Thread-safety: as `executor`; `stop` and `join` from any thread but the
/// pool's own.
class thread_pool_executor final : public executor {
public:
  /// Starts `threads` threads (at least one) serving `lanes` lanes (at least one).
  thread_pool_executor(std::size_t threads, std::size_t lanes);
  ~thread_pool_executor() override;
  thread_pool_executor(const thread_pool_executor&) = delete;
  thread_pool_executor& operator=(const thread_pool_executor&) = delete;

  [[nodiscard]] std::size_t lane_count() const noexcept override;
  void post(std::size_t lane, task fn) override;
  timer_id start_timer(std::size_t lane, duration delay, duration period, task fn) override;
  void cancel_timer(std::size_t lane, timer_id id) override;
  [[nodiscard]] time_point now() const noexcept override;

  [[nodiscard]] std::size_t thread_count() const noexcept;
  /// True on one of this pool's threads.
  [[nodiscard]] bool on_pool_thread() const noexcept;
  /// Stops running tasks; pending ones are destroyed at `join`.
  void stop() noexcept;
  /// Waits for the threads to finish (after `stop`).
  void join() noexcept;

private:
  friend asio::io_context& detail::pool_context(thread_pool_executor& pool) noexcept;
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
