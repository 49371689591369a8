// CAF 0.17 counterpart of Aether's local benchmarks.
//
// Prints one flat JSON object per line on stdout (diagnostics go to stderr):
//   {"bench":B,"impl":"caf","metric":M,"value":V,"unit":U,<params>}
//
// Usage: caf_local_bench [--only ping_pong|contention|activate|skynet]
//                        [--scale F]

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
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

unsigned worker_count() {
  return std::max(1u, std::thread::hardware_concurrency());
}

// Configuration shared by all workloads: default scheduler, one worker
// thread per hardware thread.
struct bench_config : actor_system_config {
  bench_config() {
    set("scheduler.max-threads", static_cast<int64_t>(worker_count()));
  }
};

// `params` is the already formatted tail, e.g. ,"pairs":1.
void emit(const char* bench, const char* metric, double value,
          const char* unit, const std::string& params) {
  std::printf(
    "{\"bench\":\"%s\",\"impl\":\"caf\",\"metric\":\"%s\",\"value\":%.6g,"
    "\"unit\":\"%s\"%s}\n",
    bench, metric, value, unit, params.c_str());
  std::fflush(stdout);
}

std::string param(const char* key, int64_t value) {
  return ",\"" + std::string{key} + "\":" + std::to_string(value);
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

// -- ping_pong: message round trip latency and throughput between actor
//    pairs; each pair does `round_trips` exchanges, all pairs concurrently.

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

void run_ping_pong(double scale) {
  const int64_t round_trips = scaled(1e6, scale);
  std::vector<int64_t> pair_counts{1};
  if (worker_count() > 1)
    pair_counts.push_back(worker_count());
  for (int64_t pairs : pair_counts) {
    bench_config cfg;
    actor_system sys{cfg};
    scoped_actor self{sys};
    auto start = bench_clock::now();
    for (int64_t i = 0; i < pairs; ++i)
      sys.spawn(ping_actor, sys.spawn(pong_actor), round_trips, actor{self});
    int64_t done = 0;
    self->receive_for(done, pairs)([](done_atom) {});
    double secs = seconds_since(start);
    auto params = param("pairs", pairs) + param("round_trips", round_trips);
    emit("ping_pong", "msg_per_s", 2.0 * round_trips * pairs / secs, "msg/s",
         params);
    emit("ping_pong", "rtt_ns", secs * 1e9 / round_trips, "ns", params);
  }
}

// -- contention: many plain threads sending into one actor's mailbox; time
//    until the actor has counted every message.

struct count_state {
  int64_t seen = 0;
};

behavior counter_actor(stateful_actor<count_state>* self, int64_t total,
                       actor done_to) {
  return {[=](int) {
    if (++self->state.seen == total) {
      self->send(done_to, done_atom::value);
      self->quit();
    }
  }};
}

void run_contention(double scale) {
  const int64_t per_sender = scaled(5e6, scale);
  for (int64_t senders : {2, 4}) {
    bench_config cfg;
    actor_system sys{cfg};
    scoped_actor self{sys};
    auto counter = sys.spawn(counter_actor, senders * per_sender, actor{self});
    auto start = bench_clock::now();
    std::vector<std::thread> threads;
    for (int64_t i = 0; i < senders; ++i)
      threads.emplace_back([&] {
        for (int64_t j = 0; j < per_sender; ++j)
          anon_send(counter, 1);
      });
    self->receive([](done_atom) {});
    double secs = seconds_since(start);
    for (auto& t : threads)
      t.join();
    emit("contention", "msg_per_s", senders * per_sender / secs, "msg/s",
         param("senders", senders) + param("messages_per_sender", per_sender));
  }
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

void run_activate(double scale) {
  const int64_t n = scaled(1e6, scale);
  bench_config cfg;
  actor_system sys{cfg};
  scoped_actor self{sys};
  // Hand memory freed by earlier workloads back to the OS, so that it is not
  // silently reused and missing from the RSS increase.
  malloc_trim(0);
  const int64_t rss_before = resident_bytes();
  auto start = bench_clock::now();
  auto activator = sys.spawn(activator_actor, n, actor{self});
  self->receive([](done_atom) {});
  double secs = seconds_since(start);
  const int64_t rss_after = resident_bytes();
  self->send_exit(activator, exit_reason::user_shutdown);
  auto params = param("actors", n);
  emit("activate", "seconds", secs, "s", params);
  emit("activate", "bytes_per_actor",
       static_cast<double>(rss_after - rss_before) / n, "B", params);
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

bool run_skynet(double scale) {
  const int depth = std::max(2, static_cast<int>(std::lround(
                                  std::log10(std::max(1.0, 1e6 * scale)))));
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
  emit("skynet", "seconds", secs, "s",
       param("actors", total_actors) + param("branching", 10));
  return true;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--only ping_pong|contention|activate|skynet] "
               "[--scale F]\n",
               argv0);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string only;
  double scale = 1.0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--scale" && i + 1 < argc) {
      char* end = nullptr;
      scale = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(scale > 0))
        return usage(argv[0]);
    } else {
      return usage(argv[0]);
    }
  }
  if (!only.empty() && only != "ping_pong" && only != "contention"
      && only != "activate" && only != "skynet")
    return usage(argv[0]);
  auto selected = [&](const char* name) {
    return only.empty() || only == name;
  };
  if (selected("ping_pong"))
    run_ping_pong(scale);
  if (selected("contention"))
    run_contention(scale);
  if (selected("activate"))
    run_activate(scale);
  if (selected("skynet") && !run_skynet(scale))
    return 1;
  return 0;
}
