// A routing node for the cluster benchmarks (bench/cluster_bench.cpp),
// driven by commands on stdin, one answer line on stdout each. Its settings
// come from AETHER_* (AETHER_ROUTING=1, AETHER_NODE_ID, AETHER_NATS_URL, ...);
// AETHER_EXPECT_NODES says how many nodes its map must hold before it prints
// `serving <node>`.
//
//   keys <node> <count>         -> keys <k>...       account keys whose shard <node> owns
//   ask <key> <count>           -> lat <p50_us> <p99_us>   sequential asks of one actor
//   tell <key> <count>          -> rate <msgs_per_s> <lost>  tells, then asks until all were handled
//                                                          (or none more for 3 s: tells are at most once)
//   probe <key> <timeout_ms>    -> probe_ms <ms>           asks (each with the timeout) until one answers
//   steady_start <keys>         -> started                 one asker, sequential asks (5 s timeout) over <keys> keys
//   steady_stop                 -> steady <asks> <failed> <latency ms,...>
//   persist <keys> <clients> <ms> -> persisted <commands>  persisted commands (event-sourced counters) for <ms>
//   raw_serve                   -> raw_serving             nats.c: answers `bench.raw.<node>` requests with their
//                                                           payload and counts `bench.raw.<node>.tell` messages
//   raw_ask <node> <count>      -> lat <p50_us> <p99_us>   nats.c request-reply to <node>'s raw server
//   raw_tell <node> <count>     -> rate <msgs_per_s> <lost>  nats.c publishes, then requests until all were counted
//   cpu                         -> cpu <us>               CPU time (user and system) this process used so far
//   quit
#include "bench_report.hpp"

#include <aether/aether.hpp>
#include <aether/runtime/command_line.hpp>

#include <nats/nats.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cb {

struct echo {
  static constexpr std::string_view type_name = "cb.echo";
  std::int64_t seq = 0;
};
AETHER_JSON_FIELDS(echo, seq)

struct count_query {
  static constexpr std::string_view type_name = "cb.count_query";
};
AETHER_JSON_FIELDS(count_query)

struct counted {
  static constexpr std::string_view type_name = "cb.counted";
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(counted, n)

/// Answers an echo with it; counts tells of it.
class echo_actor : public aether::actor {
public:
  echo_actor() {
    on([this](const echo& e) {
      ++seen_;
      return e; // an ask's answer; dropped for a tell
    });
    on([this](const count_query&) { return counted{seen_}; });
  }

private:
  std::int64_t seen_ = 0;
};

struct add {
  static constexpr std::string_view type_name = "cb.add";
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(add, n)

struct added {
  static constexpr std::string_view type_name = "cb.added";
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(added, n)

struct counter_state {
  std::int64_t total = 0;
};
AETHER_JSON_FIELDS(counter_state, total)

class counter : public aether::event_sourced_actor<counter_state> {
public:
  counter() {
    apply([](counter_state& s, const added& e) { s.total += e.n; });
    on([this](const add& a, aether::context& ctx) {
      persist_then(
          ctx, [](const counter_state& s) { return counted{s.total}; }, added{a.n});
    });
  }
};

std::pair<double, double> percentiles(std::vector<std::int64_t> ns) {
  const double p50 = bench::percentile_us(ns, 0.50);
  const double p99 = bench::percentile_us(ns, 0.99);
  return {p50, p99};
}

/// The raw nats.c side: a connection of its own, as a plain client would have.
class raw_side {
public:
  /// Requests go out at once (send-asap), publishes batched: each at its best.
  explicit raw_side(const std::string& url) : conn_{connect(url, true)}, bulk_{connect(url, false)} {}
  ~raw_side() {
    if (echo_ != nullptr) natsSubscription_Destroy(echo_);
    if (tells_ != nullptr) natsSubscription_Destroy(tells_);
    natsConnection_Destroy(conn_);
    natsConnection_Destroy(bulk_);
  }
  raw_side(const raw_side&) = delete;
  raw_side& operator=(const raw_side&) = delete;

  void serve(const std::string& node) {
    natsConnection_Subscribe(&echo_, conn_, ("bench.raw." + node).c_str(), on_request, this);
    natsConnection_Subscribe(&tells_, conn_, ("bench.raw." + node + ".tell").c_str(), on_tell, this);
    natsConnection_Flush(conn_);
  }

  std::string ask(const std::string& node, int count) {
    const std::string subject = "bench.raw." + node;
    std::vector<std::int64_t> ns;
    for (int i = 0; i < count; ++i) {
      const auto payload = fmt::format("{{\"seq\":{}}}", i);
      natsMsg* reply = nullptr;
      const auto start = bench::bench_clock::now();
      if (natsConnection_Request(&reply, conn_, subject.c_str(), payload.data(), static_cast<int>(payload.size()),
                                 5000) != NATS_OK) {
        return "error raw request";
      }
      ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(bench::bench_clock::now() - start).count());
      natsMsg_Destroy(reply);
    }
    auto [p50, p99] = percentiles(std::move(ns));
    return fmt::format("lat {} {}", p50, p99);
  }

  std::string tell(const std::string& node, int count) {
    const std::string subject = "bench.raw." + node + ".tell";
    const std::string query = "bench.raw." + node;
    const auto counted_by_server = [&]() -> std::int64_t {
      natsMsg* reply = nullptr;
      if (natsConnection_Request(&reply, conn_, query.c_str(), "count", 5, 5000) != NATS_OK) return -1;
      const auto n = std::strtoll(natsMsg_GetData(reply), nullptr, 10);
      natsMsg_Destroy(reply);
      return n;
    };
    const auto before = counted_by_server();
    if (before < 0) return "error raw count";
    const auto start = bench::bench_clock::now();
    for (int i = 0; i < count; ++i) {
      const auto payload = fmt::format("{{\"seq\":{}}}", i);
      natsConnection_Publish(bulk_, subject.c_str(), payload.data(), static_cast<int>(payload.size()));
    }
    natsConnection_Flush(bulk_);
    // The server's copy to the counter: ask it how many it counted, until all.
    std::int64_t handled = 0;
    auto last_progress = bench::bench_clock::now();
    while (handled < count && bench::bench_clock::now() - last_progress < std::chrono::seconds{3}) {
      const auto n = counted_by_server();
      if (n < 0) return "error raw count";
      if (n - before > handled) {
        handled = n - before;
        last_progress = bench::bench_clock::now();
      }
    }
    const auto seconds = std::chrono::duration<double>(last_progress - start).count();
    return fmt::format("rate {} {}", static_cast<double>(handled) / seconds, count - handled);
  }

private:
  static natsConnection* connect(const std::string& url, bool asap) {
    natsOptions* o = nullptr;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url.c_str());
    natsOptions_SetSendAsap(o, asap);
    natsConnection* c = nullptr;
    const auto s = natsConnection_Connect(&c, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) throw std::runtime_error{"raw connect"};
    return c;
  }

  static void on_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<raw_side*>(closure);
    if (natsMsg_GetDataLength(msg) == 5 && std::string_view{natsMsg_GetData(msg), 5} == "count") {
      const auto n = std::to_string(self->told_.load());
      natsConnection_Publish(nc, natsMsg_GetReply(msg), n.data(), static_cast<int>(n.size()));
    } else {
      natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    }
    natsMsg_Destroy(msg);
  }
  static void on_tell(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    ++static_cast<raw_side*>(closure)->told_;
    natsMsg_Destroy(msg);
  }

  natsConnection* conn_ = nullptr;
  natsConnection* bulk_ = nullptr;
  natsSubscription* echo_ = nullptr;
  natsSubscription* tells_ = nullptr;
  std::atomic<std::int64_t> told_{0};
};

constexpr auto ask_timeout = std::chrono::seconds{5};

aether::actor_id echo_id(const std::string& key) { return aether::actor_id{"echo", key}; }

/// Sequential asks over `keys` accounts until stopped, each with a 5 s timeout.
class steady_asker {
public:
  steady_asker(aether::node& node, int keys) : thread_{[this, &node, keys] { run(node, keys); }} {}
  std::string stop() {
    stop_ = true;
    thread_.join();
    std::string out = fmt::format("steady {} {} ", asks_, failed_);
    for (std::size_t i = 0; i < ms_.size(); ++i) out += fmt::format("{}{:.2f}", i == 0 ? "" : ",", ms_[i]);
    if (ms_.empty()) out += "0";
    return out;
  }

private:
  void run(aether::node& node, int keys) {
    std::mt19937 rng{42};
    while (!stop_) {
      const auto key = fmt::format("s{}", rng() % static_cast<unsigned>(keys));
      const auto start = bench::bench_clock::now();
      auto r = node.ask<echo>(echo_id(key), echo{asks_}, ask_timeout).get();
      ms_.push_back(bench::seconds_since(start) * 1000.0);
      ++asks_;
      if (!r) {
        ++failed_;
        bench::note("steady ask {} failed: {}", key, r.error().to_string());
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::int64_t asks_ = 0;
  std::int64_t failed_ = 0;
  std::vector<double> ms_;
  std::thread thread_;
};

std::string keys_on(aether::node& node, const std::string& owner, int count) {
  const auto view = node.cluster().snapshot();
  std::string out = "keys";
  int found = 0;
  for (int i = 0; i < 100000 && found < count; ++i) {
    const auto key = fmt::format("k{}", i);
    const auto& o = view->map->owner(echo_id(key).shard(view->shard_count));
    if (!o.empty() && o.node == owner) {
      out += " " + key;
      ++found;
    }
  }
  return out;
}

std::string ask_latency(aether::node& node, const std::string& key, int count) {
  // The first ask activates the actor and may wait for the owner to learn the map.
  for (int i = 0; i < 100; ++i) {
    if (node.ask<echo>(echo_id(key), echo{0}, ask_timeout).get()) break;
  }
  std::vector<std::int64_t> ns;
  for (int i = 0; i < count; ++i) {
    const auto start = bench::bench_clock::now();
    auto r = node.ask<echo>(echo_id(key), echo{i}, ask_timeout).get();
    if (!r) return "error " + r.error().to_string();
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(bench::bench_clock::now() - start).count());
  }
  auto [p50, p99] = percentiles(std::move(ns));
  return fmt::format("lat {} {}", p50, p99);
}

/// Tells are at most once: the rate counts those handled, until all were or
/// none more came for 3 s; the answer also says how many were lost.
/// CPU time (user and system) of this process so far, in microseconds.
long long cpu_used_us() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto us = [](const timeval& t) { return static_cast<long long>(t.tv_sec) * 1000000 + t.tv_usec; };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

std::string tell_rate(aether::node& node, const std::string& key, int count) {
  auto before = node.ask<counted>(echo_id(key), count_query{}, ask_timeout).get();
  if (!before) return "error " + before.error().to_string();
  const auto target = echo_id(key); // made once, as the raw side makes its subject once
  const auto start = bench::bench_clock::now();
  for (int i = 0; i < count; ++i) {
    for (;;) {
      auto sent = node.tell(target, echo{i});
      if (sent) break;
      if (sent.error().code() != aether::errc::mailbox_full) return "error " + sent.error().to_string();
      std::this_thread::yield();
    }
  }
  std::int64_t handled = 0;
  auto last_progress = bench::bench_clock::now();
  while (handled < count && bench::bench_clock::now() - last_progress < std::chrono::seconds{3}) {
    auto r = node.ask<counted>(echo_id(key), count_query{}, ask_timeout).get();
    if (!r) return "error " + r.error().to_string();
    if (r->n - before->n > handled) {
      handled = r->n - before->n;
      last_progress = bench::bench_clock::now();
    }
  }
  const auto seconds = std::chrono::duration<double>(last_progress - start).count();
  return fmt::format("rate {} {}", static_cast<double>(handled) / seconds, count - handled);
}

std::string probe(aether::node& node, const std::string& key, int timeout_ms) {
  const auto start = bench::bench_clock::now();
  for (;;) {
    if (node.ask<echo>(echo_id(key), echo{1}, std::chrono::milliseconds{timeout_ms}).get()) break;
    if (bench::seconds_since(start) > 60) return "error no answer in 60 s";
  }
  return fmt::format("probe_ms {}", bench::seconds_since(start) * 1000.0);
}

std::string persist(aether::node& node, int keys, int clients, int ms) {
  std::atomic<std::int64_t> done{0};
  std::atomic<std::int64_t> failed{0};
  const auto until = bench::bench_clock::now() + std::chrono::milliseconds{ms};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng{static_cast<unsigned>(c * 7919 + ::getpid())};
      while (bench::bench_clock::now() < until) {
        const aether::actor_id id{"counter", fmt::format("c{}", rng() % static_cast<unsigned>(keys))};
        if (node.ask<counted>(id, add{1}, ask_timeout).get()) {
          ++done;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return fmt::format("persisted {} {}", done.load(), failed.load());
}

/// Waits until this node serves and its map gives `expect` nodes shards.
void wait_serving(aether::node& node, std::size_t expect) {
  (void)node.cluster().wait_until(
      [expect](const aether::cluster_snapshot& s) { return s.serving && s.map->owning_members().size() == expect; },
      std::chrono::seconds{30});
}

} // namespace cb

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"aether_cluster_bench_node",
           "Usage: aether_cluster_bench_node\n"
           "A routing node for aether_cluster_bench, driven by commands on stdin (keys, ask, tell, probe,\n"
           "steady_start, steady_stop, persist, raw_serve, raw_ask, raw_tell, quit), one answer line on stdout\n"
           "each; settings from AETHER_* and AETHER_EXPECT_NODES.",
           "  0  quit was read (or stdin ended)\n  3  the settings or the node failed (an 'error' line says why)\n"})) {
    return *answered;
  }
  auto cfg = aether::node_config::from_env();
  if (!cfg) {
    std::printf("error %s\n", cfg.error().to_string().c_str());
    return 3;
  }
  cfg->handle_signals = false;
  const char* expect_env = std::getenv("AETHER_EXPECT_NODES");
  const auto expect = static_cast<std::size_t>(std::atoi(expect_env != nullptr ? expect_env : "1"));
  try {
    aether::node node{*cfg};
    node.register_actor<cb::echo_actor>("echo");
    node.register_event_sourced<cb::counter>("counter");
    cb::wait_serving(node, expect);
    const auto self = node.cluster().snapshot()->self.node;
    std::printf("serving %s\n", self.c_str());
    std::fflush(stdout);
    std::unique_ptr<cb::raw_side> raw;
    std::unique_ptr<cb::steady_asker> steady;
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream in{line};
      std::string verb, a, b, c;
      in >> verb >> a >> b >> c;
      std::string out;
      if (verb == "quit") break;
      if (verb == "keys") {
        out = cb::keys_on(node, a, std::stoi(b));
      } else if (verb == "ask") {
        out = cb::ask_latency(node, a, std::stoi(b));
      } else if (verb == "tell") {
        out = cb::tell_rate(node, a, std::stoi(b));
      } else if (verb == "cpu") {
        out = fmt::format("cpu {}", cb::cpu_used_us());
      } else if (verb == "probe") {
        out = cb::probe(node, a, std::stoi(b));
      } else if (verb == "steady_start") {
        steady = std::make_unique<cb::steady_asker>(node, std::stoi(a));
        out = "started";
      } else if (verb == "steady_stop") {
        out = steady ? steady->stop() : "error not started";
        steady.reset();
      } else if (verb == "persist") {
        out = cb::persist(node, std::stoi(a), std::stoi(b), std::stoi(c));
      } else if (verb == "raw_serve" || verb == "raw_ask" || verb == "raw_tell") {
        if (!raw) raw = std::make_unique<cb::raw_side>(cfg->nats_url);
        if (verb == "raw_serve") {
          raw->serve(self);
          out = "raw_serving";
        } else if (verb == "raw_ask") {
          out = raw->ask(a, std::stoi(b));
        } else {
          out = raw->tell(a, std::stoi(b));
        }
      } else {
        out = "error unknown command " + verb;
      }
      std::printf("%s\n", out.c_str());
      std::fflush(stdout);
    }
    if (steady) (void)steady->stop();
    raw.reset();
    node.stop();
    return 0;
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    return 3;
  }
}
