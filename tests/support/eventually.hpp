#pragma once

// Waiting on a condition with a deadline that is asserted, for every test.
//
//   AETHER_EVENTUALLY(sub->delivered() == 3, 10s);   // REQUIREs it held in time
//   if (!aether::testing::poll_until([&] { return done(); }, 5s)) { ... }
//
// The pause between attempts is a back-off that keeps the poll from taking a
// core from the threads under test; nothing waits on it for order. Deadlines
// are liveness bounds, generous for sanitizers and a busy machine: never a
// timing assertion.

#include <chrono>
#include <thread>

namespace aether::testing {

/// Polls `condition` until it holds (true) or `timeout` passed (false); the
/// condition is checked once more at the deadline.
template <class Condition>
[[nodiscard]] bool poll_until(Condition&& condition, std::chrono::milliseconds timeout,
                              std::chrono::milliseconds pause = std::chrono::milliseconds{2}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait = std::chrono::microseconds{50};
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return static_cast<bool>(condition());
    std::this_thread::sleep_for(wait);
    wait = std::min<std::chrono::microseconds>(wait * 2, pause);
  }
}

} // namespace aether::testing

/// REQUIREs (doctest) that `condition` holds within `timeout`, naming it and
/// the timeout when it does not.
#define AETHER_EVENTUALLY(condition, timeout)                                                                          \
  REQUIRE_MESSAGE(::aether::testing::poll_until([&] { return static_cast<bool>(condition); }, (timeout)),              \
                  "not true within " << std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()         \
                                     << " ms: " #condition)
