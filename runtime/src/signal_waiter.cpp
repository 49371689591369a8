#include <aether/runtime/log.hpp>
#include <aether/runtime/signal_waiter.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <atomic>
#include <csignal>
#include <optional>

namespace aether {

struct signal_waiter::impl {
  asio::io_context context;
  std::optional<asio::signal_set> signals;
  std::atomic<int> caught{0};
};

signal_waiter::signal_waiter(bool catch_signals) : impl_{std::make_unique<impl>()} {
  if (!catch_signals) return;
  impl_->signals.emplace(impl_->context, SIGINT, SIGTERM);
  impl_->signals->async_wait([p = impl_.get()](const std::error_code& ec, int signal) {
    if (ec) return;
    log(log_level::info, "signal {}: shutting down", signal);
    p->caught = signal;
    p->context.stop();
  });
}

signal_waiter::~signal_waiter() {
  if (impl_->signals) {
    std::error_code ignored;
    impl_->signals->cancel(ignored);
  }
}

int signal_waiter::wait() {
  auto guard = asio::make_work_guard(impl_->context);
  impl_->context.run();
  return impl_->caught.load();
}

void signal_waiter::notify() noexcept { impl_->context.stop(); }

} // namespace aether
