// Aether's local benchmarks: the same workloads as bench/caf/caf_local_bench.cpp,
// on an actor system over the thread pool executor.
//
// Prints one flat JSON object per line on stdout:
//   {"bench":B,"impl":"aether","metric":M,"value":V,"unit":U,<params>}
//
// Usage: aether_local_bench [--only ping_pong|contention|activate|skynet] [--scale F]
#include "bench_report.hpp"

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

using namespace bench;

std::int64_t resident_bytes() {
  long pages_total = 0;
  long pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return static_cast<std::int64_t>(pages_resident) * sysconf(_SC_PAGESIZE);
}

/// A node-like setup: a thread per core, default shards.
struct runtime {
  explicit runtime(aether::system_config cfg = {}) : system{std::move(cfg), pool} {}
  ~runtime() { aether::close_and_join(system, pool); }
  aether::thread_pool_executor pool{worker_count(), aether::system_config{}.shard_count};
  aether::actor_system system;
};

// -- ping_pong: round trips between actor pairs; each pair does
//    `round_trips` exchanges, all pairs at once.

struct ball {
  std::int64_t left;
};
struct serve {
  actor_id peer;
  std::int64_t round_trips;
  std::promise<void>* done;
};

class ping : public aether::actor {
public:
  ping() {
    on([this](const serve& s, aether::context& ctx) {
      done_ = s.done;
      (void)ctx.tell(s.peer, ball{s.round_trips});
    });
    on([this](const ball& b, aether::context& ctx) {
      if (b.left <= 1) {
        done_->set_value();
      } else {
        ctx.reply(ball{b.left - 1});
      }
    });
  }

private:
  std::promise<void>* done_ = nullptr;
};

class pong : public aether::actor {
public:
  pong() {
    on([](const ball& b, aether::context& ctx) { ctx.reply(b); });
  }
};

void run_ping_pong(double scale) {
  const auto round_trips = scaled(1e6, scale);
  std::vector<std::int64_t> pair_counts{1};
  if (worker_count() > 1) pair_counts.push_back(worker_count());
  for (const auto pairs : pair_counts) {
    runtime rt;
    rt.system.register_actor<ping>("ping");
    rt.system.register_actor<pong>("pong");
    std::vector<std::promise<void>> done(static_cast<std::size_t>(pairs));
    const auto start = bench_clock::now();
    for (std::int64_t i = 0; i < pairs; ++i) {
      const auto key = std::to_string(i);
      (void)rt.system.tell(actor_id{"ping", key},
                           serve{actor_id{"pong", key}, round_trips, &done[static_cast<std::size_t>(i)]});
    }
    for (auto& d : done) d.get_future().wait();
    const double secs = seconds_since(start);
    const auto params = param("pairs", pairs) + param("round_trips", round_trips);
    emit("ping_pong", "aether", "msg_per_s", 2.0 * static_cast<double>(round_trips * pairs) / secs, "msg/s", params);
    emit("ping_pong", "aether", "rtt_ns", secs * 1e9 / static_cast<double>(round_trips), "ns", params);
  }
}

// -- contention: plain threads telling one actor as fast as they can.

struct hit {};
struct expect_hits {
  std::int64_t total;
  std::promise<void>* done;
};

class sink : public aether::actor {
public:
  sink() {
    on([this](const expect_hits& e) {
      total_ = e.total;
      done_ = e.done;
    });
    on([this](const hit&) {
      if (++count_ == total_) done_->set_value();
    });
  }

private:
  std::int64_t count_ = 0;
  std::int64_t total_ = -1;
  std::promise<void>* done_ = nullptr;
};

void run_contention(double scale) {
  const auto per_sender = scaled(5e6, scale);
  for (const std::int64_t senders : {2, 4}) {
    runtime rt;
    rt.system.register_actor<sink>("sink");
    const actor_id target{"sink", "s"};
    std::promise<void> done;
    (void)rt.system.ask<int>(target, expect_hits{senders * per_sender, &done}, 10s).get(); // activated, armed
    std::atomic<std::int64_t> refused{0};
    const auto start = bench_clock::now();
    std::vector<std::thread> threads;
    for (std::int64_t t = 0; t < senders; ++t) {
      threads.emplace_back([&] {
        for (std::int64_t j = 0; j < per_sender; ++j) {
          // A full mailbox pushes back: yield and retry.
          while (!rt.system.tell(target, hit{})) {
            refused.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
          }
        }
      });
    }
    done.get_future().wait();
    const double secs = seconds_since(start);
    for (auto& t : threads) t.join();
    emit("contention", "aether", "msg_per_s", static_cast<double>(senders * per_sender) / secs, "msg/s",
         param("senders", senders) + param("messages_per_sender", per_sender));
    std::fprintf(stderr, "contention: %lld sends refused by a full mailbox and retried\n",
                 static_cast<long long>(refused.load()));
  }
}

// -- activate: time and memory of many live, idle virtual actors.

struct touch {
  int amount;
  std::atomic<std::int64_t>* acked;
};

class idle_actor : public aether::actor {
public:
  idle_actor() {
    on([this](const touch& t) {
      value_ += t.amount;
      t.acked->fetch_add(1, std::memory_order_release);
      t.acked->notify_one();
    });
  }

private:
  int value_ = 0;
};

void run_activate(double scale) {
  const auto n = scaled(1e6, scale);
  constexpr std::int64_t wave = 10'000; // bounds what waits in mailboxes at once
  runtime rt;
  rt.system.register_actor<idle_actor>("idle");
  std::atomic<std::int64_t> acked{0};
  std::vector<actor_id> ids;
  ids.reserve(static_cast<std::size_t>(std::min(wave, n)));
  const auto rss_before = resident_bytes();
  const auto start = bench_clock::now();
  for (std::int64_t first = 0; first < n; first += wave) {
    const auto last = std::min(n, first + wave);
    for (auto i = first; i < last; ++i) {
      while (!rt.system.tell(actor_id{"idle", std::to_string(i)}, touch{1, &acked})) std::this_thread::yield();
    }
    for (auto seen = acked.load(std::memory_order_acquire); seen < last; seen = acked.load(std::memory_order_acquire)) {
      acked.wait(seen, std::memory_order_acquire);
    }
  }
  const double secs = seconds_since(start);
  const auto rss_after = resident_bytes();
  const auto params = param("actors", n);
  emit("activate", "aether", "seconds", secs, "s", params);
  emit("activate", "aether", "bytes_per_actor", static_cast<double>(rss_after - rss_before) / static_cast<double>(n),
       "B", params);
  std::fprintf(stderr, "activate: %zu actors active\n", rt.system.active_actors());
}

// -- skynet: a 10-ary tree of actors; leaves answer their number, inner
//    nodes sum their children's answers and pass the sum up, then stop.

struct skynet_req {
  std::int64_t num;
  std::int64_t size;
};

class skynet : public aether::actor {
public:
  skynet() {
    on([this](const skynet_req& r, aether::context& ctx) {
      if (r.size == 1) {
        ctx.reply(r.num);
        ctx.stop();
        return;
      }
      parent_ = ctx.promise();
      const auto child = r.size / 10;
      for (std::int64_t i = 0; i < 10; ++i) {
        const auto num = r.num + i * child;
        (void)ctx.tell(actor_id{"skynet", fmt::format("{}-{}", child, num)}, skynet_req{num, child});
      }
    });
    on([this](const std::int64_t& part, aether::context& ctx) {
      sum_ += part;
      if (--pending_ == 0) {
        parent_.deliver(sum_);
        ctx.stop();
      }
    });
  }

private:
  aether::response_promise parent_;
  std::int64_t sum_ = 0;
  int pending_ = 10;
};

bool run_skynet(double scale) {
  const int depth = std::max(2, static_cast<int>(std::lround(std::log10(std::max(1.0, 1e6 * scale)))));
  std::int64_t leaves = 1;
  std::int64_t total_actors = 1;
  for (int i = 0; i < depth; ++i) {
    leaves *= 10;
    total_actors += leaves;
  }
  const std::int64_t expected = leaves * (leaves - 1) / 2;
  aether::system_config cfg;
  cfg.mailbox_capacity = 1u << 20; // a burst of a million sends
  runtime rt{cfg};
  rt.system.register_actor<skynet>("skynet");
  const auto start = bench_clock::now();
  auto sum =
      rt.system.ask<std::int64_t>(actor_id{"skynet", fmt::format("{}-0", leaves)}, skynet_req{0, leaves}, 600s).get();
  const double secs = seconds_since(start);
  if (!sum || *sum != expected) {
    std::fprintf(stderr, "skynet: wrong result %s, expected %lld\n",
                 sum ? std::to_string(*sum).c_str() : sum.error().to_string().c_str(),
                 static_cast<long long>(expected));
    return false;
  }
  emit("skynet", "aether", "seconds", secs, "s", param("actors", total_actors) + param("branching", 10));
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::string only;
  double scale = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--scale" && i + 1 < argc) {
      scale = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--only ping_pong|contention|activate|skynet] [--scale F]\n", argv[0]);
      return 2;
    }
  }
  if (scale <= 0) {
    std::fprintf(stderr, "--scale must be positive\n");
    return 2;
  }
  auto selected = [&](std::string_view name) { return only.empty() || only == name; };
  if (selected("ping_pong")) run_ping_pong(scale);
  if (selected("contention")) run_contention(scale);
  if (selected("activate")) run_activate(scale);
  if (selected("skynet") && !run_skynet(scale)) return 1;
  return 0;
}
