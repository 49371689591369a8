// Aether's local benchmarks: the same workloads as bench/caf/caf_local_bench.cpp
// (and, for ping_pong, skynet and spawn, bench/erlang/local_bench.erl), on an
// actor system over the thread pool executor, plus the floors under them.
//
// One workload per process (bench/run.sh starts a fresh one for every run).
// Prints one flat JSON object per line on stdout:
//   {"bench":B,"case":C,"impl":"aether"|"floor.*","metric":M,"value":V,"unit":U,<params>}
//
// Usage: aether_local_bench --only WORKLOAD [--threads N] [--scale F]
//                           [--pairs N] [--senders N] [--mode unbounded|bounded]
//
// Workloads:
//   ping_pong     `--pairs` pairs each doing 1M round trips.
//   contention    `--senders` plain threads telling one actor 5M messages
//                 each; `--mode unbounded` (a mailbox that never refuses) or
//                 `bounded` (the default 65,536 per shard; a refused send
//                 yields and retries; refusals are a result).
//   activate      1M idle plain actors: time and resident bytes each.
//   activate_es   1M idle event-sourced actors (activated from an empty
//                 store, one apply function, one command handler).
//   skynet        a 10-ary tree of 1,111,111 actors.
//   counting      Savina Counting: one actor sends 1M increments to another,
//                 then asks for the count.
//   thread_ring   Savina ThreadRing: a token passed 1M times around 100 actors.
//   fork_join     Savina Fork-Join throughput: 60 actors, 40,000 messages
//                 each, each message does Savina's small computation.
//   floor_strand  the executor alone: two lanes (Asio strands) bouncing a
//                 counter, a timer armed as in an actor system; the floor of
//                 ping_pong.
//   floor_mpsc    the queue alone: `--senders` threads enqueue into one
//                 moodycamel queue and one thread dequeues; the floor of
//                 contention.
#include "bench_report.hpp"

#include <aether/runtime/command_line.hpp>

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/event_store.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <concurrentqueue/concurrentqueue.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <malloc.h>
#include <unistd.h>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

using namespace bench;

struct options {
  double scale = 1.0;
  std::int64_t pairs = 1;
  std::int64_t senders = 2;
  std::string mode = "bounded";
};

std::int64_t resident_bytes() {
  long pages_total = 0;
  long pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return static_cast<std::int64_t>(pages_resident) * sysconf(_SC_PAGESIZE);
}

std::string threads_param() { return param("threads", worker_count()); }

/// A node-like setup: `worker_count()` threads, default shards.
struct runtime {
  explicit runtime(aether::system_config cfg = {}) : system{std::move(cfg), pool} {}
  ~runtime() { aether::close_and_join(system, pool); }
  aether::thread_pool_executor pool{worker_count(), aether::system_config{}.shard_count};
  aether::actor_system system;
};

/// A system whose mailboxes never refuse: for workloads whose peers'
/// mailboxes are unbounded (CAF, Erlang) and that send in bursts.
aether::system_config unbounded() {
  aether::system_config cfg;
  cfg.mailbox_capacity = std::numeric_limits<std::size_t>::max() / 2;
  return cfg;
}

/// Waits until `count` reaches `target`.
void wait_for(const std::atomic<std::int64_t>& count, std::int64_t target) {
  for (auto seen = count.load(std::memory_order_acquire); seen < target; seen = count.load(std::memory_order_acquire)) {
    count.wait(seen, std::memory_order_acquire);
  }
}

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

std::string ping_pong_case(std::int64_t pairs) {
  return fmt::format("ping_pong threads={} pairs={}", worker_count(), pairs);
}

void emit_round_trips(std::string_view impl, const std::string& key, std::int64_t pairs, std::int64_t round_trips,
                      double secs) {
  const auto params = threads_param() + param("pairs", pairs) + param("round_trips", round_trips);
  emit("ping_pong", key, impl, "msg_per_s", 2.0 * static_cast<double>(round_trips * pairs) / secs, "msg/s", params);
  // Wall time per round trip of one pair (all pairs run at once).
  emit("ping_pong", key, impl, "ns_per_round_trip", secs * 1e9 / static_cast<double>(round_trips), "ns", params);
}

bool run_ping_pong(const options& o) {
  const auto round_trips = scaled(1e6, o.scale);
  runtime rt;
  rt.system.register_actor<ping>("ping");
  rt.system.register_actor<pong>("pong");
  std::vector<std::promise<void>> done(static_cast<std::size_t>(o.pairs));
  const auto start = bench_clock::now();
  for (std::int64_t i = 0; i < o.pairs; ++i) {
    const auto key = std::to_string(i);
    (void)rt.system.tell(actor_id{"ping", key},
                         serve{actor_id{"pong", key}, round_trips, &done[static_cast<std::size_t>(i)]});
  }
  for (auto& d : done) d.get_future().wait();
  emit_round_trips("aether", ping_pong_case(o.pairs), o.pairs, round_trips, seconds_since(start));
  return true;
}

// -- floor_strand: two lanes of the executor bouncing a counter, no actors.

/// A pair of lanes, `first` and `first + 1`, handing a count back and forth.
struct bouncer {
  aether::thread_pool_executor& pool;
  std::size_t first;
  std::int64_t left;
  std::promise<void> done;

  void hit(std::size_t side) {
    if (--left <= 0) {
      done.set_value();
      return;
    }
    const auto other = 1 - side;
    pool.post(first + other, [this, other] { hit(other); });
  }
};

bool run_floor_strand(const options& o) {
  const auto round_trips = scaled(1e6, o.scale);
  aether::thread_pool_executor pool{worker_count(), 2 * static_cast<std::size_t>(o.pairs)};
  // An actor system arms its shards' sweep timers, which puts Asio's reactor
  // to work between handlers; arm one the same way.
  std::promise<aether::executor::timer_id> armed;
  pool.post(0, [&] { armed.set_value(pool.start_timer(0, 1s, 1s, [] {})); });
  const auto timer = armed.get_future().get();
  std::vector<std::unique_ptr<bouncer>> pairs;
  for (std::int64_t p = 0; p < o.pairs; ++p) {
    pairs.push_back(std::make_unique<bouncer>(bouncer{pool, 2 * static_cast<std::size_t>(p), 2 * round_trips, {}}));
  }
  const auto start = bench_clock::now();
  for (std::int64_t p = 0; p < o.pairs; ++p) {
    auto* b = pairs[static_cast<std::size_t>(p)].get();
    pool.post(b->first, [b] { b->hit(0); });
  }
  for (auto& b : pairs) b->done.get_future().wait();
  const double secs = seconds_since(start);
  pool.post(0, [&] { pool.cancel_timer(0, timer); });
  pool.stop();
  pool.join();
  emit_round_trips("floor.strand", ping_pong_case(o.pairs), o.pairs, round_trips, secs);
  return true;
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

std::string contention_case(const options& o) {
  return fmt::format("contention threads={} senders={} mailbox={}", worker_count(), o.senders, o.mode);
}

std::string contention_params(const options& o, std::int64_t per_sender) {
  return threads_param() + param("senders", o.senders) + param("messages_per_sender", per_sender) +
         param("mailbox", o.mode);
}

bool run_contention(const options& o) {
  const auto per_sender = scaled(5e6, o.scale);
  const bool bounded = o.mode == "bounded";
  runtime rt{bounded ? aether::system_config{} : unbounded()};
  rt.system.register_actor<sink>("sink");
  const actor_id target{"sink", "s"};
  std::promise<void> done;
  (void)rt.system.ask<int>(target, expect_hits{o.senders * per_sender, &done}, 10s).get(); // activated, armed
  std::atomic<std::int64_t> refused{0};
  const auto rss_before = resident_bytes();
  const auto start = bench_clock::now();
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < o.senders; ++t) {
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
  const auto params = contention_params(o, per_sender);
  const auto key = contention_case(o);
  emit("contention", key, "aether", "msg_per_s", static_cast<double>(o.senders * per_sender) / secs, "msg/s", params);
  emit("contention", key, "aether", "refused_sends", static_cast<double>(refused.load()), "count", params);
  // Peak resident growth is not observable after the fact; this is what the
  // backlog left resident at the end.
  emit("contention", key, "aether", "rss_growth_mb", static_cast<double>(resident_bytes() - rss_before) / 1e6, "count",
       params);
  return true;
}

bool run_floor_mpsc(const options& o) {
  const auto per_sender = scaled(5e6, o.scale);
  const auto total = o.senders * per_sender;
  moodycamel::ConcurrentQueue<std::int64_t> queue;
  const auto start = bench_clock::now();
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < o.senders; ++t) {
    threads.emplace_back([&] {
      for (std::int64_t j = 0; j < per_sender; ++j) queue.enqueue(j);
    });
  }
  std::int64_t got = 0;
  std::int64_t item = 0;
  moodycamel::ConsumerToken token{queue};
  while (got < total) {
    if (queue.try_dequeue(token, item)) {
      ++got;
    } else {
      std::this_thread::yield();
    }
  }
  const double secs = seconds_since(start);
  for (auto& t : threads) t.join();
  for (const auto* mode : {"unbounded", "bounded"}) {
    auto shown = o;
    shown.mode = mode;
    emit("contention", contention_case(shown), "floor.mpsc", "msg_per_s", static_cast<double>(total) / secs, "msg/s",
         contention_params(shown, per_sender));
  }
  return true;
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

/// Tells `n` new ids of `type` a touch each, in waves; emits the time and
/// the resident bytes per actor.
void activate_many(runtime& rt, std::string_view type, std::string_view bench, std::int64_t n) {
  constexpr std::int64_t wave = 10'000; // bounds what waits in mailboxes at once
  std::atomic<std::int64_t> acked{0};
  malloc_trim(0);
  const auto rss_before = resident_bytes();
  const auto start = bench_clock::now();
  for (std::int64_t first = 0; first < n; first += wave) {
    const auto last = std::min(n, first + wave);
    for (auto i = first; i < last; ++i) {
      while (!rt.system.tell(actor_id{type, std::to_string(i)}, touch{1, &acked})) std::this_thread::yield();
    }
    wait_for(acked, last);
  }
  const double secs = seconds_since(start);
  const auto rss_after = resident_bytes();
  const auto params = threads_param() + param("actors", n);
  const auto key =
      fmt::format("{} threads={} actors={}", bench == "activate_es" ? "activate" : bench, worker_count(), n);
  const auto impl = bench == "activate_es" ? "aether.event_sourced" : "aether";
  emit("activate", key, impl, "seconds", secs, "s", params);
  emit("activate", key, impl, "bytes_per_actor", static_cast<double>(rss_after - rss_before) / static_cast<double>(n),
       "B", params);
  if (rt.system.active_actors() != static_cast<std::size_t>(n)) {
    note("activate: {} actors active, expected {}", rt.system.active_actors(), n);
  }
}

bool run_activate(const options& o) {
  runtime rt;
  rt.system.register_actor<idle_actor>("idle");
  activate_many(rt, "idle", "activate", scaled(1e6, o.scale));
  return true;
}

// -- activate_es: idle event-sourced actors over a store that holds nothing
//    (the store's own memory is not the actor's).

class empty_store final : public aether::event_store {
public:
  void append(const actor_id&, std::uint64_t expected_version, std::vector<aether::event> events,
              append_callback done) override {
    done(aether::append_result{expected_version + events.size(), 0});
  }
  void read(const actor_id&, std::uint64_t, std::uint64_t, read_callback done) override {
    done(std::vector<aether::event>{});
  }
  void latest_version(const actor_id&, version_callback done) override { done(std::uint64_t{0}); }
};

struct touched {
  static constexpr std::string_view type_name = "bench.touched";
  std::int64_t amount = 0;
};
AETHER_JSON_FIELDS(touched, amount)

struct tally {
  std::int64_t total = 0;
};
AETHER_JSON_FIELDS(tally, total)

class idle_es_actor : public aether::event_sourced_actor<tally> {
public:
  idle_es_actor() {
    apply([](tally& s, const touched& e) { s.total += e.amount; });
    on([](const touch& t) {
      t.acked->fetch_add(1, std::memory_order_release);
      t.acked->notify_one();
    });
  }
};

bool run_activate_es(const options& o) {
  runtime rt;
  auto p = std::make_shared<aether::persistence>();
  p->events = std::make_shared<empty_store>();
  aether::register_event_sourced<idle_es_actor>(rt.system, "idle_es", p);
  activate_many(rt, "idle_es", "activate_es", scaled(1e6, o.scale));
  return true;
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

bool run_skynet(const options& o) {
  const int depth = std::max(2, static_cast<int>(std::lround(std::log10(std::max(1.0, 1e6 * o.scale)))));
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
    note("skynet: wrong result {}, expected {}", sum ? std::to_string(*sum) : sum.error().to_string(), expected);
    return false;
  }
  emit("skynet", fmt::format("skynet threads={} actors={}", worker_count(), total_actors), "aether", "seconds", secs,
       "s", threads_param() + param("actors", total_actors) + param("branching", 10));
  return true;
}

// -- Savina Counting: a producer sends n increments to a counter, then asks
//    for the count.

struct increment {};
struct retrieve {};
struct count_to {
  actor_id counter;
  std::int64_t n;
  std::promise<std::int64_t>* done;
};

class counting_counter : public aether::actor {
public:
  counting_counter() {
    on([this](const increment&) { ++count_; });
    on([this](const retrieve&, aether::context& ctx) { ctx.reply(count_); });
  }

private:
  std::int64_t count_ = 0;
};

class counting_producer : public aether::actor {
public:
  counting_producer() {
    on([this](const count_to& c, aether::context& ctx) {
      done_ = c.done;
      for (std::int64_t i = 0; i < c.n; ++i) (void)ctx.tell(c.counter, increment{});
      (void)ctx.tell(c.counter, retrieve{});
    });
    on([this](const std::int64_t& count) { done_->set_value(count); });
  }

private:
  std::promise<std::int64_t>* done_ = nullptr;
};

bool run_counting(const options& o) {
  const auto n = scaled(1e6, o.scale);
  runtime rt{unbounded()};
  rt.system.register_actor<counting_counter>("counter");
  rt.system.register_actor<counting_producer>("producer");
  std::promise<std::int64_t> done;
  const auto start = bench_clock::now();
  (void)rt.system.tell(actor_id{"producer", "p"}, count_to{actor_id{"counter", "c"}, n, &done});
  const auto count = done.get_future().get();
  const double secs = seconds_since(start);
  if (count != n) {
    note("counting: counted {}, expected {}", count, n);
    return false;
  }
  emit("savina_counting", fmt::format("savina_counting threads={} messages={}", worker_count(), n), "aether", "seconds",
       secs, "s", threads_param() + param("messages", n));
  return true;
}

// -- Savina ThreadRing: a token passed `hops` times around a ring of actors.

struct token {
  std::int64_t left;
};
struct ring_setup {
  std::int64_t size;
  std::promise<void>* done;
};

class ring_member : public aether::actor {
public:
  ring_member() {
    on([this](const ring_setup& s, aether::context& ctx) {
      const auto index = std::stoll(std::string{ctx.self().key()});
      next_ = actor_id{"ring", std::to_string((index + 1) % s.size)};
      done_ = s.done;
    });
    on([this](const token& t, aether::context& ctx) {
      if (t.left <= 0) {
        done_->set_value();
      } else {
        (void)ctx.tell(next_, token{t.left - 1});
      }
    });
  }

private:
  actor_id next_;
  std::promise<void>* done_ = nullptr;
};

bool run_thread_ring(const options& o) {
  constexpr std::int64_t size = 100;
  const auto hops = scaled(1e6, o.scale);
  runtime rt;
  rt.system.register_actor<ring_member>("ring");
  std::promise<void> done;
  for (std::int64_t i = 0; i < size; ++i) {
    (void)rt.system.ask<int>(actor_id{"ring", std::to_string(i)}, ring_setup{size, &done}, 10s).get();
  }
  const auto start = bench_clock::now();
  (void)rt.system.tell(actor_id{"ring", "0"}, token{hops});
  done.get_future().wait();
  const double secs = seconds_since(start);
  emit("savina_thread_ring", fmt::format("savina_thread_ring threads={} actors={} hops={}", worker_count(), size, hops),
       "aether", "seconds", secs, "s", threads_param() + param("actors", size) + param("hops", hops));
  return true;
}

// -- Savina Fork-Join throughput: messages to many workers, each doing a
//    small computation per message.

/// Savina's per-message work in Fork-Join (performComputation(37.2)).
double savina_computation(double theta) {
  const double sint = std::sin(theta);
  return sint * sint;
}

struct fj_work {};
struct fj_setup {
  std::int64_t messages;
  std::atomic<std::int64_t>* finished;
};

class fj_worker : public aether::actor {
public:
  fj_worker() {
    on([this](const fj_setup& s) {
      expected_ = s.messages;
      finished_ = s.finished;
    });
    on([this](const fj_work&) {
      sink_ += savina_computation(37.2);
      if (++count_ == expected_) {
        finished_->fetch_add(1, std::memory_order_release);
        finished_->notify_one();
      }
    });
  }
  ~fj_worker() override {
    if (sink_ < 0) std::fprintf(stderr, "%f\n", sink_); // keeps the computation
  }

private:
  std::int64_t expected_ = -1;
  std::int64_t count_ = 0;
  double sink_ = 0;
  std::atomic<std::int64_t>* finished_ = nullptr;
};

bool run_fork_join(const options& o) {
  constexpr std::int64_t workers = 60;
  const auto messages = scaled(40'000, o.scale);
  runtime rt{unbounded()};
  rt.system.register_actor<fj_worker>("fj");
  std::atomic<std::int64_t> finished{0};
  std::vector<actor_id> ids;
  for (std::int64_t w = 0; w < workers; ++w) {
    ids.emplace_back("fj", std::to_string(w));
    (void)rt.system.ask<int>(ids.back(), fj_setup{messages, &finished}, 10s).get();
  }
  const auto start = bench_clock::now();
  for (std::int64_t m = 0; m < messages; ++m) {
    for (const auto& id : ids) (void)rt.system.tell(id, fj_work{});
  }
  wait_for(finished, workers);
  const double secs = seconds_since(start);
  emit("savina_fork_join",
       fmt::format("savina_fork_join threads={} actors={} messages={}", worker_count(), workers, messages), "aether",
       "seconds", secs, "s", threads_param() + param("actors", workers) + param("messages_per_actor", messages));
  return true;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --only ping_pong|contention|activate|activate_es|skynet|counting|thread_ring|fork_join|"
               "floor_strand|floor_mpsc [--threads N] [--scale F] [--pairs N] [--senders N] "
               "[--mode unbounded|bounded]\n",
               argv0);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"aether_local_bench",
           "Usage: aether_local_bench --only ping_pong|contention|activate|activate_es|skynet|counting|\n"
           "                            thread_ring|fork_join|floor_strand|floor_mpsc\n"
           "                          [--scale F] [--threads N] [--pairs N] [--senders N] [--mode bounded|unbounded]\n"
           "One local workload; its results as JSON lines on stdout (bench/run.sh local runs them all).",
           "  0  the workload ran\n  1  the workload failed\n  2  bad arguments\n"})) {
    return *answered;
  }
  std::string only;
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    const bool has_value = i + 1 < argc;
    if (arg == "--only" && has_value) {
      only = argv[++i];
    } else if (arg == "--scale" && has_value) {
      o.scale = std::atof(argv[++i]);
    } else if (arg == "--threads" && has_value) {
      worker_threads() = static_cast<unsigned>(std::max(1, std::atoi(argv[++i])));
    } else if (arg == "--pairs" && has_value) {
      o.pairs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--senders" && has_value) {
      o.senders = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--mode" && has_value) {
      o.mode = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  if (o.scale <= 0 || (o.mode != "bounded" && o.mode != "unbounded")) return usage(argv[0]);
  using workload = bool (*)(const options&);
  const std::pair<std::string_view, workload> workloads[] = {
      {"ping_pong", run_ping_pong},     {"contention", run_contention}, {"activate", run_activate},
      {"activate_es", run_activate_es}, {"skynet", run_skynet},         {"counting", run_counting},
      {"thread_ring", run_thread_ring}, {"fork_join", run_fork_join},   {"floor_strand", run_floor_strand},
      {"floor_mpsc", run_floor_mpsc},
  };
  for (const auto& [name, fn] : workloads) {
    if (name == only) return fn(o) ? 0 : 1;
  }
  return usage(argv[0]);
}
