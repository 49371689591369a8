#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("tasks on one lane never overlap and keep their order") {
  aether::thread_pool_executor pool{2, 4};
  constexpr int per_lane = 20'000;
  std::vector<std::vector<int>> seen(4);
  std::vector<std::atomic<int>> inside(4);
  std::atomic<int> overlaps{0};
  std::promise<void> done;
  std::atomic<int> remaining{4 * per_lane};
  std::vector<std::thread> posters;
  for (std::size_t lane = 0; lane < 4; ++lane) {
    posters.emplace_back([&, lane] {
      for (int i = 0; i < per_lane; ++i) {
        pool.post(lane, [&, lane, i] {
          if (inside[lane].fetch_add(1) != 0) overlaps.fetch_add(1);
          seen[lane].push_back(i);
          inside[lane].fetch_sub(1);
          if (remaining.fetch_sub(1) == 1) done.set_value();
        });
      }
    });
  }
  for (auto& t : posters) t.join();
  REQUIRE(done.get_future().wait_for(60s) == std::future_status::ready);
  CHECK(overlaps.load() == 0);
  for (const auto& lane : seen) {
    REQUIRE(lane.size() == per_lane);
    bool ordered = true;
    for (int i = 0; i < per_lane; ++i) ordered = ordered && lane[static_cast<std::size_t>(i)] == i;
    CHECK(ordered);
  }
}

TEST_CASE("a periodic timer fires on its lane until cancelled") {
  aether::thread_pool_executor pool{2, 2};
  std::atomic<int> ticks{0};
  std::promise<void> three;
  std::promise<aether::executor::timer_id> id_promise;
  auto id_future = id_promise.get_future().share();
  pool.post(1, [&] {
    id_promise.set_value(pool.start_timer(1, 1ms, 1ms, [&] {
      if (ticks.fetch_add(1) == 2) three.set_value();
    }));
  });
  REQUIRE(three.get_future().wait_for(30s) == std::future_status::ready);
  std::promise<int> after_cancel;
  pool.post(1, [&] {
    pool.cancel_timer(1, id_future.get());
    after_cancel.set_value(ticks.load());
  });
  const int at_cancel = after_cancel.get_future().get();
  // A cancelled timer posts nothing more: a marker posted after a later
  // deadline sees the same count.
  std::promise<int> later;
  pool.post(1, [&] { pool.start_timer(1, 20ms, 0ms, [&] { later.set_value(ticks.load()); }); });
  CHECK(later.get_future().get() == at_cancel);
}

TEST_CASE("posts from a pool thread run on the pool") {
  aether::thread_pool_executor pool{2, 1};
  std::promise<bool> on_pool;
  pool.post(0, [&] { pool.post(0, [&] { on_pool.set_value(pool.on_pool_thread()); }); });
  CHECK(on_pool.get_future().get());
  CHECK_FALSE(pool.on_pool_thread());
}
