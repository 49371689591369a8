// CAF 0.17 counterpart of Aether's local benchmarks (bench/local_bench.cpp
// describes the workloads; the case keys are the same). CAF 0.17.6 is the
// only C++ actor framework Debian packages.
//
// One workload per process. Prints one flat JSON object per line on stdout
// (diagnostics go to stderr):
//   {"bench":B,"case":C,"impl":"caf","metric":M,"value":V,"unit":U,<params>}
//
// Usage: caf_local_bench --only ping_pong|contention|activate|skynet|
//                        counting|thread_ring|fork_join [--threads N]
//                        [--scale F] [--pairs N] [--senders N]
//                        [--mode unbounded|bounded]

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <malloc.h>
#include <unistd.h>

using namespace caf;

using done_atom = atom_constant<atom("done")>;

namespace {

using bench_clock = std::chrono::steady_clock;

double seconds_since(bench_clock::time_point start) {
  return std::chrono::duration<double>(bench_clock::now() - start).count();
}

unsigned threads = std::max(1u, std::thread::hardware_concurrency());

unsigned worker_count() {
  return threads;
}

struct options {
  double scale = 1.0;
  int64_t pairs = 1;
  int64_t senders = 2;
  std::string mode = "bounded";
};

// Configuration shared by all workloads: default scheduler, one worker
// thread per hardware thread.
struct bench_config : actor_system_config {
  bench_config() {
    set("scheduler.max-threads", static_cast<int64_t>(worker_count()));
  }
};

// `params` is the already formatted tail, e.g. ,"pairs":1.
void emit(const char* bench, const std::string& case_key, const char* metric,
          double value, const char* unit, const std::string& params) {
  std::printf("{\"bench\":\"%s\",\"case\":\"%s\",\"impl\":\"caf\","
              "\"metric\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"%s}\n",
              bench, case_key.c_str(), metric, value, unit, params.c_str());
  std::fflush(stdout);
}

std::string param(const char* key, int64_t value) {
  return ",\"" + std::string{key} + "\":" + std::to_string(value);
}

std::string param(const char* key, const std::string& value) {
  return ",\"" + std::string{key} + "\":\"" + value + "\"";
}

std::string threads_param() {
  return param("threads", worker_count());
}

// "name k1=v1 k2=v2": the case key the Aether bench prints for the same work.
std::string case_key(const std::string& name,
                     const std::vector<std::pair<std::string, std::string>>&
                       kv) {
  std::string out = name;
  for (auto& [k, v] : kv)
    out += " " + k + "=" + v;
  return out;
}

std::string str(int64_t v) {
  return std::to_string(v);
}

int64_t scaled(double base, double scale) {
  return std::max<int64_t>(1, std::llround(base * scale));
}

// Resident set size in bytes, from /proc/self/statm.
int64_t resident_bytes() {
  long pages_total = 0;
  long pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2)
      pages_resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(pages_resident) * sysconf(_SC_PAGESIZE);
}

// -- ping_pong: round trips between actor pairs; each pair does
//    `round_trips` exchanges, all pairs concurrently.

behavior pong_actor(event_based_actor*) {
  // Returning the value replies to the sender.
  return {[](int64_t x) { return x; }};
}

// Sends n, n-1, ..., 1 to `pong`; reports to `done_to` after n round trips.
behavior ping_actor(event_based_actor* self, actor pong, int64_t n,
                    actor done_to) {
  self->send(pong, n);
  return {[=](int64_t x) {
    if (x > 1) {
      self->send(pong, x - 1);
      return;
    }
    self->send(done_to, done_atom::value);
    self->send_exit(pong, exit_reason::user_shutdown);
    self->quit();
  }};
}

bool run_ping_pong(const options& o) {
  const int64_t round_trips = scaled(1e6, o.scale);
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  auto start = bench_clock::now();
  for (int64_t i = 0; i < o.pairs; ++i)
    sys.spawn(ping_actor, sys.spawn(pong_actor), round_trips, actor{self});
  int64_t done = 0;
  self->receive_for(done, o.pairs)([](done_atom) {});
  double secs = seconds_since(start);
  auto key = case_key("ping_pong", {{"threads", str(worker_count())},
                                    {"pairs", str(o.pairs)}});
  auto params = threads_param() + param("pairs", o.pairs)
                + param("round_trips", round_trips);
  emit("ping_pong", key, "msg_per_s", 2.0 * round_trips * o.pairs / secs,
       "msg/s", params);
  emit("ping_pong", key, "ns_per_round_trip", secs * 1e9 / round_trips, "ns",
       params);
  return true;
}

// -- contention: plain threads sending into one actor's mailbox; time until
//    the actor has counted every message. CAF's mailbox is unbounded; the
//    bounded mode gives the senders credit like Aether's bounded mailbox
//    (at most `capacity` sent and not yet handled), and they yield while
//    they have none.

constexpr int64_t bounded_capacity = 1 << 16; // Aether's default per shard

struct count_state {
  int64_t seen = 0;
};

behavior counter_actor(stateful_actor<count_state>* self, int64_t total,
                       actor done_to, std::atomic<int64_t>* handled) {
  return {[=](int) {
    if (handled != nullptr)
      handled->fetch_add(1, std::memory_order_release);
    if (++self->state.seen == total) {
      self->send(done_to, done_atom::value);
      self->quit();
    }
  }};
}

bool run_contention(const options& o) {
  const int64_t per_sender = scaled(5e6, o.scale);
  const bool bounded = o.mode == "bounded";
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  std::atomic<int64_t> handled{0};
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> waits{0};
  auto counter = sys.spawn(counter_actor, o.senders * per_sender, actor{self},
                           bounded ? &handled : nullptr);
  const int64_t rss_before = resident_bytes();
  auto start = bench_clock::now();
  std::vector<std::thread> senders;
  for (int64_t i = 0; i < o.senders; ++i)
    senders.emplace_back([&] {
      for (int64_t j = 0; j < per_sender; ++j) {
        if (bounded) {
          // Take a credit: wait while `capacity` are sent and not handled.
          for (;;) {
            auto s = sent.load(std::memory_order_relaxed);
            if (s - handled.load(std::memory_order_acquire) < bounded_capacity
                && sent.compare_exchange_weak(s, s + 1))
              break;
            waits.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
          }
        }
        anon_send(counter, 1);
      }
    });
  self->receive([](done_atom) {});
  double secs = seconds_since(start);
  const int64_t rss_after = resident_bytes();
  for (auto& t : senders)
    t.join();
  auto key = case_key("contention", {{"threads", str(worker_count())},
                                     {"senders", str(o.senders)},
                                     {"mailbox", o.mode}});
  auto params = threads_param() + param("senders", o.senders)
                + param("messages_per_sender", per_sender)
                + param("mailbox", o.mode);
  emit("contention", key, "msg_per_s", o.senders * per_sender / secs, "msg/s",
       params);
  emit("contention", key, "refused_sends", static_cast<double>(waits.load()),
       "count", params);
  emit("contention", key, "rss_growth_mb", (rss_after - rss_before) / 1e6,
       "count", params);
  return true;
}

// -- activate: cost in time and memory of many live, idle actors.

struct idle_state {
  int value = 0;
};

behavior idle_actor(stateful_actor<idle_state>* self) {
  return {[=](int x) {
    self->state.value += x;
    return self->state.value; // acknowledges to the sender
  }};
}

struct activator_state {
  std::vector<actor> actors; // keeps every idle actor alive
  int64_t acked = 0;
};

// Spawns n idle actors from inside the worker pool, sends each one message
// and reports to `done_to` once all have answered; holds the handles until
// it is told to exit. At most `window` actors are in flight at a time: CAF
// 0.17's work stealing walks the victim's whole job queue on every steal, so
// queuing all n start-ups at once turns quadratic.
behavior activator_actor(stateful_actor<activator_state>* self, int64_t n,
                         actor done_to) {
  constexpr int64_t window = 256;
  auto spawn_one = [self] {
    auto a = self->spawn(idle_actor);
    self->send(a, 1);
    self->state.actors.push_back(std::move(a));
  };
  self->state.actors.reserve(n);
  for (int64_t i = 0; i < std::min(n, window); ++i)
    spawn_one();
  return {[=](int) {
    if (static_cast<int64_t>(self->state.actors.size()) < n)
      spawn_one();
    if (++self->state.acked == n)
      self->send(done_to, done_atom::value);
  }};
}

bool run_activate(const options& o) {
  const int64_t n = scaled(1e6, o.scale);
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  malloc_trim(0); // as the Aether side does before measuring
  const int64_t rss_before = resident_bytes();
  auto start = bench_clock::now();
  auto activator = sys.spawn(activator_actor, n, actor{self});
  self->receive([](done_atom) {});
  double secs = seconds_since(start);
  const int64_t rss_after = resident_bytes();
  self->send_exit(activator, exit_reason::user_shutdown);
  auto key = case_key("activate",
                      {{"threads", str(worker_count())}, {"actors", str(n)}});
  auto params = threads_param() + param("actors", n);
  emit("activate", key, "seconds", secs, "s", params);
  emit("activate", key, "bytes_per_actor",
       static_cast<double>(rss_after - rss_before) / n, "B", params);
  return true;
}

// -- skynet: spawn a 10-ary tree of actors; leaves answer their number,
//    inner nodes sum their children's answers and pass the sum up.

struct skynet_state {
  int64_t sum = 0;
  int pending = 10;
};

behavior skynet_actor(stateful_actor<skynet_state>* self, actor parent,
                      int64_t num, int64_t size) {
  if (size == 1) {
    self->send(parent, num);
    return {}; // an empty behavior terminates the actor
  }
  const int64_t child_size = size / 10;
  for (int64_t i = 0; i < 10; ++i)
    self->spawn(skynet_actor, actor_cast<actor>(self), num + i * child_size,
                child_size);
  return {[=](int64_t x) {
    self->state.sum += x;
    if (--self->state.pending == 0) {
      self->send(parent, self->state.sum);
      self->quit();
    }
  }};
}

bool run_skynet(const options& o) {
  const int depth = std::max(2, static_cast<int>(std::lround(std::log10(
                                  std::max(1.0, 1e6 * o.scale)))));
  int64_t leaves = 1;
  int64_t total_actors = 1;
  for (int i = 0; i < depth; ++i) {
    leaves *= 10;
    total_actors += leaves;
  }
  const int64_t expected = leaves * (leaves - 1) / 2;
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  auto start = bench_clock::now();
  sys.spawn(skynet_actor, actor{self}, int64_t{0}, leaves);
  int64_t sum = -1;
  self->receive([&](int64_t x) { sum = x; });
  double secs = seconds_since(start);
  if (sum != expected) {
    std::fprintf(stderr, "skynet: wrong sum %lld, expected %lld\n",
                 static_cast<long long>(sum),
                 static_cast<long long>(expected));
    return false;
  }
  emit("skynet",
       case_key("skynet", {{"threads", str(worker_count())},
                           {"actors", str(total_actors)}}),
       "seconds", secs, "s",
       threads_param() + param("actors", total_actors)
         + param("branching", 10));
  return true;
}

// -- Savina Counting: a producer sends n increments to a counter, then asks
//    for the count.

using increment_atom = atom_constant<atom("inc")>;
using retrieve_atom = atom_constant<atom("get")>;

behavior counting_counter(stateful_actor<count_state>* self) {
  return {[=](increment_atom) { ++self->state.seen; },
          [=](retrieve_atom) { return self->state.seen; }};
}

behavior counting_producer(event_based_actor* self, actor counter, int64_t n,
                           actor done_to) {
  for (int64_t i = 0; i < n; ++i)
    self->send(counter, increment_atom::value);
  self->send(counter, retrieve_atom::value);
  return {[=](int64_t count) {
    self->send(done_to, count);
    self->send_exit(counter, exit_reason::user_shutdown);
    self->quit();
  }};
}

bool run_counting(const options& o) {
  const int64_t n = scaled(1e6, o.scale);
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  auto start = bench_clock::now();
  sys.spawn(counting_producer, sys.spawn(counting_counter), n, actor{self});
  int64_t count = -1;
  self->receive([&](int64_t x) { count = x; });
  double secs = seconds_since(start);
  if (count != n) {
    std::fprintf(stderr, "counting: counted %lld\n",
                 static_cast<long long>(count));
    return false;
  }
  emit("savina_counting",
       case_key("savina_counting",
                {{"threads", str(worker_count())}, {"messages", str(n)}}),
       "seconds", secs, "s", threads_param() + param("messages", n));
  return true;
}

// -- Savina ThreadRing: a token passed `hops` times around a ring.

using next_atom = atom_constant<atom("next")>;

struct ring_state {
  actor next;
};

behavior ring_member(stateful_actor<ring_state>* self, actor done_to) {
  return {[=](next_atom, actor next) { self->state.next = next; },
          [=](int64_t left) {
            if (left <= 0)
              self->send(done_to, done_atom::value);
            else
              self->send(self->state.next, left - 1);
          }};
}

bool run_thread_ring(const options& o) {
  constexpr int64_t size = 100;
  const int64_t hops = scaled(1e6, o.scale);
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  std::vector<actor> ring;
  for (int64_t i = 0; i < size; ++i)
    ring.push_back(sys.spawn(ring_member, actor{self}));
  for (int64_t i = 0; i < size; ++i)
    self->send(ring[i], next_atom::value, ring[(i + 1) % size]);
  auto start = bench_clock::now();
  self->send(ring[0], hops);
  self->receive([](done_atom) {});
  double secs = seconds_since(start);
  for (auto& a : ring)
    self->send_exit(a, exit_reason::user_shutdown);
  emit("savina_thread_ring",
       case_key("savina_thread_ring", {{"threads", str(worker_count())},
                                       {"actors", str(size)},
                                       {"hops", str(hops)}}),
       "seconds", secs, "s",
       threads_param() + param("actors", size) + param("hops", hops));
  return true;
}

// -- Savina Fork-Join throughput: messages to many workers, each doing
//    Savina's small computation per message.

double savina_computation(double theta) {
  const double sint = std::sin(theta);
  return sint * sint;
}

struct fj_state {
  int64_t count = 0;
  double sink = 0;
};

behavior fj_worker(stateful_actor<fj_state>* self, int64_t expected,
                   std::atomic<int64_t>* finished) {
  return {[=](int) {
    self->state.sink += savina_computation(37.2);
    if (++self->state.count == expected) {
      if (self->state.sink < 0)
        std::fprintf(stderr, "%f\n", self->state.sink);
      finished->fetch_add(1, std::memory_order_release);
    }
  }};
}

bool run_fork_join(const options& o) {
  constexpr int64_t workers = 60;
  const int64_t messages = scaled(40'000, o.scale);
  bench_config cfg;
  actor_system sys{cfg};
  std::atomic<int64_t> finished{0};
  std::vector<actor> ids;
  for (int64_t w = 0; w < workers; ++w)
    ids.push_back(sys.spawn(fj_worker, messages, &finished));
  auto start = bench_clock::now();
  for (int64_t m = 0; m < messages; ++m)
    for (auto& a : ids)
      anon_send(a, 1);
  while (finished.load(std::memory_order_acquire) < workers)
    std::this_thread::yield();
  double secs = seconds_since(start);
  for (auto& a : ids)
    anon_send_exit(a, exit_reason::user_shutdown);
  emit("savina_fork_join",
       case_key("savina_fork_join", {{"threads", str(worker_count())},
                                     {"actors", str(workers)},
                                     {"messages", str(messages)}}),
       "seconds", secs, "s",
       threads_param() + param("actors", workers)
         + param("messages_per_actor", messages));
  return true;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --only ping_pong|contention|activate|skynet|"
               "counting|thread_ring|fork_join [--threads N] [--scale F] "
               "[--pairs N] [--senders N] [--mode unbounded|bounded]\n",
               argv0);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string only;
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--only" && has_value) {
      only = argv[++i];
    } else if (arg == "--scale" && has_value) {
      char* end = nullptr;
      o.scale = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(o.scale > 0))
        return usage(argv[0]);
    } else if (arg == "--threads" && has_value) {
      threads = static_cast<unsigned>(std::max(1, std::atoi(argv[++i])));
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
  if (o.mode != "bounded" && o.mode != "unbounded")
    return usage(argv[0]);
  using workload = bool (*)(const options&);
  const std::pair<const char*, workload> workloads[] = {
    {"ping_pong", run_ping_pong},     {"contention", run_contention},
    {"activate", run_activate},       {"skynet", run_skynet},
    {"counting", run_counting},       {"thread_ring", run_thread_ring},
    {"fork_join", run_fork_join},
  };
  for (auto& [name, fn] : workloads)
    if (only == name)
      return fn(o) ? 0 : 1;
  return usage(argv[0]);
}
