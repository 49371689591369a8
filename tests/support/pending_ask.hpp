#pragma once

// Collecting the answer of an ask made from outside the actors, on either
// executor:
//
//   test::answer<int> a{system.ask<int>(id, get{}, 100ms)};
//   exec.run();                        // manual executor: nothing left to run
//   REQUIRE(a.ready()); CHECK(*a.value() == 3);
//
//   test::answer<int> b{node.ask<int>(id, get{}, 2s)};
//   auto r = b.wait(30s);              // real threads: REQUIREs an answer in time

#include <aether/actors/reply.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

namespace test {

/// The answer of one `pending<R>`, kept when it comes (on any thread).
///
/// Thread-safety: the answer may arrive on any thread; the accessors take a lock.
template <class R>
class answer {
public:
  explicit answer(aether::pending<R> p) : state_{std::make_shared<state>()} {
    p.then([s = state_](aether::expected<R> r) {
      {
        std::lock_guard lock{s->mutex};
        s->result.emplace(std::move(r));
      }
      s->arrived.notify_all();
    });
  }

  /// Whether the answer (a value or an error) has come.
  [[nodiscard]] bool ready() const {
    std::lock_guard lock{state_->mutex};
    return state_->result.has_value();
  }

  /// The answer; REQUIREs that it has come.
  [[nodiscard]] aether::expected<R> value() const {
    std::lock_guard lock{state_->mutex};
    REQUIRE_MESSAGE(state_->result.has_value(), "the ask has no answer yet");
    return *state_->result;
  }

  /// Waits for the answer on real threads; REQUIREs that it comes within `timeout`.
  [[nodiscard]] aether::expected<R> wait(std::chrono::milliseconds timeout) const {
    std::unique_lock lock{state_->mutex};
    const bool came = state_->arrived.wait_for(lock, timeout, [&] { return state_->result.has_value(); });
    REQUIRE_MESSAGE(came, "no answer within " << timeout.count() << " ms");
    return *state_->result;
  }

private:
  struct state {
    mutable std::mutex mutex;
    std::condition_variable arrived;
    std::optional<aether::expected<R>> result;
  };
  std::shared_ptr<state> state_;
};

} // namespace test
