#pragma once

// Blocking on a callback API: for the stores' `*_wait` forms only.

#include <aether/runtime/expected.hpp>

#include <future>

namespace aether::detail {

/// Calls `start(callback)` and waits for the callback's result.
template <class T, class Start>
expected<T> wait_for(Start start) {
  std::promise<expected<T>> done;
  auto result = done.get_future();
  start([&done](expected<T> r) { done.set_value(std::move(r)); });
  return result.get();
}

} // namespace aether::detail
