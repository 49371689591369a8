#pragma once

// Errors reported through a callback (`subscribe_options::on_error`, a
// dead-letter hook), kept for the test to look at:
//
//   test::error_collector errors;
//   options.on_error = errors.callback();
//   ...
//   CHECK(errors.count(aether::errc::mailbox_full) == 1);

#include <aether/runtime/error.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace test {

/// Thread-safety: the callback may be called from any thread, also after the
/// collector is gone (it shares its state); the accessors take a lock.
class error_collector {
public:
  /// A callback that records every error it is given.
  [[nodiscard]] std::function<void(const aether::error&)> callback() const {
    return [s = state_](const aether::error& e) {
      std::lock_guard lock{s->mutex};
      s->errors.push_back(e);
    };
  }
  /// Every error so far, in the order they came.
  [[nodiscard]] std::vector<aether::error> errors() const {
    std::lock_guard lock{state_->mutex};
    return state_->errors;
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock{state_->mutex};
    return state_->errors.size();
  }
  /// How many errors had the code `code`.
  [[nodiscard]] std::size_t count(aether::errc code) const {
    std::lock_guard lock{state_->mutex};
    std::size_t n = 0;
    for (const auto& e : state_->errors) n += e.code() == code ? 1 : 0;
    return n;
  }

private:
  struct state {
    std::mutex mutex;
    std::vector<aether::error> errors;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

} // namespace test
