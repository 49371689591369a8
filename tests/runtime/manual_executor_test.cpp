#include <aether/runtime/manual_executor.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("a manual executor runs nothing until run() and then in posting order") {
  aether::manual_executor exec{2};
  std::vector<int> order;
  exec.post(1, [&] { order.push_back(1); });
  exec.post(0, [&] {
    order.push_back(2);
    exec.post(0, [&] { order.push_back(4); });
  });
  exec.post(1, [&] { order.push_back(3); });
  CHECK(order.empty());
  CHECK(exec.run() == 4);
  CHECK(order == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("manual timers fire in time order only when the clock is advanced") {
  aether::manual_executor exec;
  std::vector<int> fired;
  const auto start = exec.now();
  exec.start_timer(0, 30ms, 0ms, [&] { fired.push_back(30); });
  exec.start_timer(0, 10ms, 0ms, [&] { fired.push_back(10); });
  const auto periodic = exec.start_timer(0, 20ms, 20ms, [&] { fired.push_back(20); });
  exec.advance(9ms);
  CHECK(fired.empty());
  exec.advance(36ms);
  CHECK(fired == std::vector<int>{10, 20, 30, 20});
  CHECK(exec.now() - start == 45ms);
  exec.cancel_timer(0, periodic);
  exec.advance(100ms);
  CHECK(fired.size() == 4);
  CHECK(exec.active_timers() == 0);
}
