// Aether's event-bus benchmarks: the local bus beside a post to an idle
// thread pool (its floor), and the NATS bus between two nodes beside raw
// nats.c pub/sub of messages of the same size between the same two
// connections.
//
// One workload and one side per process (bench/run.sh runs each side in a
// fresh process, in turns, several times). Prints one flat JSON object per
// line on stdout:
//   {"bench":B,"case":C,"impl":I,"metric":M,"value":V,"unit":U,<params>}
//
// Usage: aether_bus_bench --only local|floor_post [--scale F]
//        aether_bus_bench --only cross_node --url nats://127.0.0.1:PORT
//                         --impl aether|nats.c --send-asap 0|1 [--scale F]
//
// local:       a local bus on a thread pool, one subscriber, events of
//              128-byte data published from a thread outside the pool.
//              burst: 1,000,000 events with at most as many not yet handled
//              as the subscription buffers (so none is dropped), until the
//              handler got the last. latency: 10,000 events one at a time,
//              the next published once the handler got the previous one.
// floor_post:  the same two patterns as plain posts from the outside thread
//              to a lane of an idle pool of the same size: what waking the
//              pool costs without the bus.
// cross_node:  two nodes in this process, each with its own thread pool,
//              connection and NATS bus, on one nats-server: node A
//              publishes, node B subscribes. latency: 5,000 events one at a
//              time; burst: 100,000 events with at most 1,024 in flight.
//              The raw side sends messages exactly as large as the bus's
//              (measured first) between two connections of its own, set up
//              the same way. With send-asap connections (every publish
//              written at once, as a node's bus does) or batching ones (the
//              client's default, where both sides wait for nats.c's ~1 ms
//              flush timer).
//
// Latency runs from just before publish to the start of the handler: the
// event's `timestamp_ns` (a raw message carries it in its first bytes), set
// by the publisher and read with the same clock in the handler.
//
// Every run publishes in a namespace of its own (a random prefix) that has
// no stream: live events only.
#include "bench_report.hpp"

#include <aether/persistence/event_bus.hpp>
#include <aether/runtime/command_line.hpp>
#include <aether/runtime/nats.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <nats/nats.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

using namespace bench;

constexpr std::size_t payload_bytes = 128;
constexpr std::size_t lanes = 16;
constexpr auto wait_limit = std::chrono::seconds{30}; // a lost event fails the run instead of hanging it
constexpr std::int64_t warmup_events = 200;

/// The latency clock: steady (both ends are in this process), in ns.
std::int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(bench_clock::now().time_since_epoch()).count();
}

/// JSON event data of exactly `payload_bytes` bytes.
std::string event_data() {
  const std::string head = "{\"pad\":\"";
  const std::string tail = "\"}";
  return head + std::string(payload_bytes - head.size() - tail.size(), 'x') + tail;
}

/// A raw message of `size` bytes that starts with its send time
/// (`clock_ns`, 20 digits; 0: not timed).
std::string raw_payload(std::int64_t sent_ns, std::size_t size) {
  auto out = fmt::format("{:020}", sent_ns);
  out.resize(std::max<std::size_t>(size, 20), 'x');
  return out;
}

std::int64_t raw_sent_ns(std::string_view data) {
  std::int64_t sent = 0;
  const auto digits = data.substr(0, 20);
  std::from_chars(digits.data(), digits.data() + digits.size(), sent);
  return sent;
}

/// What a subscriber got: its handler counts each message, and the thread
/// that publishes waits here until a count is reached.
class receiver {
public:
  /// The handler's part: one more message, sent at `sent_ns` (the
  /// `clock_ns` clock), whose latency becomes `last_latency_ns`.
  void got(std::int64_t sent_ns) {
    if (sent_ns != 0) last_latency_ns_.store(clock_ns() - sent_ns, std::memory_order_relaxed);
    // Sequentially consistent with the waiter's store of `wake_at_`: one of
    // the two sees the other, so no wake-up is lost.
    const auto n = count_.fetch_add(1) + 1;
    if (n >= wake_at_.load()) {
      // Notified under the lock: the waiter may move on as soon as it wakes.
      std::lock_guard lock{mutex_};
      reached_.notify_all();
    }
  }

  /// Waits until `target` messages came; false after `wait_limit`.
  bool wait_for(std::int64_t target) {
    if (count_.load() >= target) return true;
    std::unique_lock lock{mutex_};
    wake_at_.store(target);
    const bool ok = reached_.wait_for(lock, wait_limit, [&] { return count_.load() >= target; });
    wake_at_.store(never);
    return ok;
  }

  [[nodiscard]] std::int64_t count() const noexcept { return count_.load(); }
  /// The latency of the last timed message, once `wait_for` saw it counted.
  [[nodiscard]] std::int64_t last_latency_ns() const noexcept {
    return last_latency_ns_.load(std::memory_order_relaxed);
  }

private:
  static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
  std::atomic<std::int64_t> count_{0};
  std::atomic<std::int64_t> wake_at_{never};
  std::atomic<std::int64_t> last_latency_ns_{0};
  std::mutex mutex_;
  std::condition_variable reached_;
};

/// Publishes `n` messages one at a time through `publish` (which stamps the
/// send time), each once `rx` has the one before; `sent` counts what was
/// published to `rx` so far. Appends the latencies to `out`, if given.
bool one_at_a_time(receiver& rx, std::int64_t& sent, std::int64_t n, const std::function<bool()>& publish,
                   std::vector<std::int64_t>* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (!publish()) return false;
    if (!rx.wait_for(++sent)) {
      note("  message {} did not arrive ({} of {} did)", sent, rx.count(), sent);
      return false;
    }
    if (out) out->push_back(rx.last_latency_ns());
  }
  return true;
}

/// Publishes `n` messages as fast as `rx` takes them, with at most `window`
/// not yet received; seconds until the last one arrived, or nullopt.
std::optional<double> burst(receiver& rx, std::int64_t& sent, std::int64_t n, std::int64_t window,
                            const std::function<bool()>& publish) {
  const auto start = bench_clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    // A full window waits until half of it arrived, rather than waking for each.
    if (sent - rx.count() >= window && !rx.wait_for(sent - window / 2)) {
      note("  stalled: {} of {} arrived", rx.count(), sent);
      return std::nullopt;
    }
    if (!publish()) return std::nullopt;
    ++sent;
  }
  if (!rx.wait_for(sent)) {
    note("  {} of {} arrived", rx.count(), sent);
    return std::nullopt;
  }
  return seconds_since(start);
}

// -- raw nats.c: connections and subscriptions of its own.

struct nats_deleter {
  void operator()(natsConnection* nc) const noexcept {
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  void operator()(natsOptions* o) const noexcept { natsOptions_Destroy(o); }
};
template <class T>
using nats_ptr = std::unique_ptr<T, nats_deleter>;

std::string nats_failure(natsStatus s, std::string_view what) {
  return fmt::format("{}: {} ({})", what, natsStatus_GetText(s), nats_GetLastError(nullptr));
}

/// A raw connection, set up as `aether::nats::connection` sets up its own.
nats_ptr<natsConnection> raw_connect(const std::string& url, const char* name, bool send_asap) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return nullptr;
  nats_ptr<natsOptions> guard{opts};
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetName(opts, name);
  natsOptions_SetSendAsap(opts, send_asap);
  natsConnection* nc = nullptr;
  if (auto s = natsConnection_Connect(&nc, opts); s != NATS_OK) {
    note("raw: {}", nats_failure(s, "connecting"));
    return nullptr;
  }
  return nats_ptr<natsConnection>{nc};
}

/// A raw subscription counting into a receiver. Ending it waits until
/// nats.c calls nothing more on it.
class raw_subscription {
public:
  explicit raw_subscription(std::shared_ptr<receiver> rx) : rx_{std::move(rx)} {}
  raw_subscription(const raw_subscription&) = delete;
  raw_subscription& operator=(const raw_subscription&) = delete;
  ~raw_subscription() {
    if (!sub_) return;
    natsSubscription_Unsubscribe(sub_);
    if (closed_.get_future().wait_for(10s) != std::future_status::ready) {
      note("raw: the subscription did not close");
      std::abort(); // its callback may still run on this
    }
    natsSubscription_Destroy(sub_);
  }

  /// Subscribes to `subject` with the pending limits `aether::nats::connection` sets.
  bool start(natsConnection* nc, const std::string& subject) {
    if (auto s = natsConnection_Subscribe(&sub_, nc, subject.c_str(), &raw_subscription::on_message, this);
        s != NATS_OK) {
      sub_ = nullptr;
      note("raw: {}", nats_failure(s, "subscribing"));
      return false;
    }
    natsSubscription_SetOnCompleteCB(sub_, &raw_subscription::on_complete, this);
    natsSubscription_SetPendingLimits(sub_, 65536, 64 * 1024 * 1024);
    return true;
  }

  [[nodiscard]] std::int64_t dropped() const noexcept {
    std::int64_t n = 0;
    if (sub_) natsSubscription_GetDropped(sub_, &n);
    return n;
  }

private:
  static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto& self = *static_cast<raw_subscription*>(closure);
    self.rx_->got(raw_sent_ns({natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))}));
    natsMsg_Destroy(m);
  }
  static void on_complete(void* closure) { static_cast<raw_subscription*>(closure)->closed_.set_value(); }

  std::shared_ptr<receiver> rx_;
  natsSubscription* sub_ = nullptr;
  std::promise<void> closed_;
};

/// A node's runtime: a thread pool and a bus on it, closed in order.
struct bus_node {
  bus_node() = default;
  bus_node(const bus_node&) = delete;
  bus_node& operator=(const bus_node&) = delete;
  ~bus_node() {
    if (bus) bus->close();
    pool.stop();
    pool.join();
  }

  aether::thread_pool_executor pool{worker_count(), lanes};
  std::shared_ptr<aether::event_bus> bus;
};

struct bench_env {
  double scale = 1;
  std::string url;
  std::string prefix; // namespaces and subjects of this run start with it
};

/// A handler that counts events into `rx`.
aether::event_bus::handler count_into(const std::shared_ptr<receiver>& rx) {
  return [rx](const aether::event& e) { rx->got(e.timestamp_ns); };
}

aether::event bench_event(const std::string& ns) {
  aether::event e;
  e.type = "bench.ticked";
  e.actor = actor_id{"sensor", "s1", ns};
  e.data = event_data();
  return e;
}

/// Publishes a copy of `proto` on `bus`, stamped now when `timed` (the
/// clock is read first, as the raw side reads it before formatting).
bool publish_event(aether::event_bus& bus, const std::string& ns, const aether::event& proto, bool timed) {
  const auto at = timed ? clock_ns() : 0;
  auto e = proto;
  e.timestamp_ns = at;
  if (auto r = bus.publish(ns, std::move(e)); !r) {
    note("  publish: {}", r.error().to_string());
    return false;
  }
  return true;
}

// -- local: one bus, one subscriber, in this process.

std::string local_burst_case(std::int64_t total) { return fmt::format("local burst events={}", total); }

std::string local_burst_params(std::int64_t total, std::int64_t window) {
  return param("mode", "burst") + param("events", total) + param("window", window) +
         param("payload_bytes", payload_bytes) + param("threads", worker_count());
}

void emit_local_latency(std::string_view impl, std::int64_t round_trips, std::vector<std::int64_t>& lat) {
  const auto key = fmt::format("local latency round_trips={}", round_trips);
  const auto params = param("mode", "latency") + param("round_trips", round_trips) +
                      param("payload_bytes", payload_bytes) + param("threads", worker_count());
  emit("local", key, impl, "p50_us", percentile_us(lat, 0.50), "us", params);
  emit("local", key, impl, "p99_us", percentile_us(lat, 0.99), "us", params);
}

bool run_local(const bench_env& env) {
  const auto ns = fmt::format("{}_local", env.prefix);
  const auto proto = bench_event(ns);
  const auto window = static_cast<std::int64_t>(aether::subscribe_options{}.buffer);

  bus_node node;
  node.bus = std::make_shared<aether::local_event_bus>(node.pool);
  auto rx = std::make_shared<receiver>();
  auto sub = node.bus->subscribe(ns, {}, count_into(rx));
  if (!sub) {
    note("local: {}", sub.error().to_string());
    return false;
  }
  std::int64_t sent = 0;
  auto publish = [&](bool timed) { return [&, timed] { return publish_event(*node.bus, ns, proto, timed); }; };

  const auto total = scaled(1'000'000, env.scale);
  if (!burst(*rx, sent, std::min<std::int64_t>(total, 10'000), window, publish(false))) return false;
  const auto secs = burst(*rx, sent, total, window, publish(false));
  if (!secs) return false;
  emit("local", local_burst_case(total), "aether", "events_per_s", static_cast<double>(total) / *secs, "events/s",
       local_burst_params(total, window));

  const auto round_trips = scaled(10'000, env.scale);
  std::vector<std::int64_t> lat;
  lat.reserve(static_cast<std::size_t>(round_trips));
  if (!one_at_a_time(*rx, sent, warmup_events, publish(true), nullptr) ||
      !one_at_a_time(*rx, sent, round_trips, publish(true), &lat)) {
    return false;
  }
  if (sub->dropped() != 0) {
    note("local: {} events dropped", sub->dropped());
    return false;
  }
  emit_local_latency("aether", round_trips, lat);
  return true;
}

// -- floor_post: the same patterns as plain posts to an idle pool.

bool run_floor_post(const bench_env& env) {
  const auto window = static_cast<std::int64_t>(aether::subscribe_options{}.buffer);
  bus_node node; // its pool only
  receiver rx;
  std::int64_t sent = 0;
  std::size_t next_lane = 0;
  auto post = [&](bool timed) {
    return [&, timed] {
      const auto at = timed ? clock_ns() : 0;
      node.pool.post(next_lane++ % lanes, [&rx, at] { rx.got(at); });
      return true;
    };
  };
  const auto total = scaled(1'000'000, env.scale);
  if (!burst(rx, sent, std::min<std::int64_t>(total, 10'000), window, post(false))) return false;
  const auto secs = burst(rx, sent, total, window, post(false));
  if (!secs) return false;
  emit("local", local_burst_case(total), "floor.pool_post", "events_per_s", static_cast<double>(total) / *secs,
       "events/s", local_burst_params(total, window));
  const auto round_trips = scaled(10'000, env.scale);
  std::vector<std::int64_t> lat;
  if (!one_at_a_time(rx, sent, warmup_events, post(true), nullptr) ||
      !one_at_a_time(rx, sent, round_trips, post(true), &lat)) {
    return false;
  }
  emit_local_latency("floor.pool_post", round_trips, lat);
  return true;
}

// -- cross_node: node A publishes on its bus, node B's bus delivers; beside
//    it raw nats.c pub/sub from one connection to another.

struct cross_nodes {
  std::shared_ptr<aether::nats::connection> conn_a;
  std::shared_ptr<aether::nats::connection> conn_b;
  bus_node node_a;
  bus_node node_b;
  nats_ptr<natsConnection> raw_a;
  nats_ptr<natsConnection> raw_b;
};

std::shared_ptr<aether::nats::connection> connect(const bench_env& env, std::string name, bool send_asap) {
  aether::nats::connect_options o;
  o.url = env.url;
  o.name = std::move(name);
  o.send_asap = send_asap;
  auto c = aether::nats::connection::connect(o);
  if (!c) {
    note("{}", c.error().to_string());
    return nullptr;
  }
  return *c;
}

bool open_nodes(const bench_env& env, bool send_asap, cross_nodes& nodes) {
  nodes.conn_a = connect(env, "bench-node-a", send_asap);
  nodes.conn_b = connect(env, "bench-node-b", send_asap);
  nodes.raw_a = raw_connect(env.url, "bench-raw-a", send_asap);
  nodes.raw_b = raw_connect(env.url, "bench-raw-b", send_asap);
  if (!nodes.conn_a || !nodes.conn_b || !nodes.raw_a || !nodes.raw_b) return false;
  for (auto [node, conn] : {std::pair{&nodes.node_a, nodes.conn_a}, std::pair{&nodes.node_b, nodes.conn_b}}) {
    auto bus = aether::nats_event_bus::open(node->pool, conn);
    if (!bus) {
      note("{}", bus.error().to_string());
      return false;
    }
    node->bus = *bus;
  }
  return true;
}

/// One side of one cross-node run: node B's bus subscription (aether) or a
/// raw subscription on node B's raw connection (nats.c), with what it got.
struct cross_run {
  cross_nodes& nodes;
  bool aether_side;
  std::string ns;
  std::string raw_subject;
  aether::event proto;
  std::size_t raw_size = payload_bytes;
  std::string raw_untimed;
  std::shared_ptr<receiver> rx = std::make_shared<receiver>();
  std::int64_t sent = 0;
  aether::event_subscription aether_sub;
  std::unique_ptr<raw_subscription> raw_sub = std::make_unique<raw_subscription>(rx);

  cross_run(const bench_env& e, cross_nodes& n, bool aether, std::string_view what)
      : nodes{n},
        aether_side{aether},
        ns{fmt::format("{}_{}", e.prefix, what)},
        raw_subject{fmt::format("bench.{}.raw.{}", e.prefix, what)},
        proto{bench_event(ns)} {}

  bool subscribe() {
    if (aether_side) {
      auto s = nodes.node_b.bus->subscribe(ns, {}, count_into(rx));
      if (!s) {
        note("cross_node: {}", s.error().to_string());
        return false;
      }
      aether_sub = std::move(*s); // the bus flushed: the server has the interest
      return true;
    }
    if (!raw_sub->start(nodes.raw_b.get(), raw_subject)) return false;
    if (auto f = natsConnection_FlushTimeout(nodes.raw_b.get(), 5'000); f != NATS_OK) {
      note("cross_node: {}", nats_failure(f, "flushing"));
      return false;
    }
    return true;
  }

  std::function<bool()> publish(bool timed) {
    if (aether_side) return [this, timed] { return publish_event(*nodes.node_a.bus, ns, proto, timed); };
    return [this, timed] {
      const auto payload = timed ? raw_payload(clock_ns(), raw_size) : raw_untimed;
      const auto s = natsConnection_Publish(nodes.raw_a.get(), raw_subject.c_str(), payload.data(),
                                            static_cast<int>(payload.size()));
      if (s != NATS_OK) note("  raw publish: {}", nats_failure(s, "publishing"));
      return s == NATS_OK;
    };
  }

  [[nodiscard]] std::int64_t dropped() const noexcept {
    return aether_side ? static_cast<std::int64_t>(aether_sub.dropped()) : raw_sub->dropped();
  }
};

/// The size of the message node A's bus sends for one bench event.
std::optional<std::size_t> wire_size(const bench_env& env, cross_nodes& nodes) {
  const auto ns = fmt::format("{}_size", env.prefix);
  auto rx = std::make_shared<receiver>();
  auto size = std::make_shared<std::atomic<std::size_t>>(0);
  auto probe =
      nodes.conn_b->subscribe(fmt::format("aether.{}.pub.>", ns), [rx, size](const aether::nats::message_view& m) {
        size->store(m.data().size());
        rx->got(0);
      });
  if (!probe || !nodes.conn_b->flush(5s)) return std::nullopt;
  std::int64_t sent = 0;
  const auto proto = bench_event(ns);
  if (!one_at_a_time(
          *rx, sent, 1, [&] { return publish_event(*nodes.node_a.bus, ns, proto, false); }, nullptr)) {
    return std::nullopt;
  }
  return size->load();
}

bool run_cross_node(const bench_env& env, bool aether_side, bool send_asap) {
  cross_nodes nodes;
  if (!open_nodes(env, send_asap, nodes)) return false;
  const auto size = wire_size(env, nodes);
  if (!size) {
    note("cross_node: the bus's message size is unknown");
    return false;
  }
  const auto impl = aether_side ? "aether" : "nats.c";
  const auto asap = send_asap ? 1 : 0;
  const auto size_params = param("send_asap", asap) + param("payload_bytes", payload_bytes);

  // Latency: one at a time, after a warm-up.
  {
    cross_run run{env, nodes, aether_side, send_asap ? "lat_asap" : "lat"};
    run.raw_size = *size;
    run.raw_untimed = raw_payload(0, *size);
    if (!run.subscribe() || !one_at_a_time(*run.rx, run.sent, warmup_events, run.publish(true), nullptr)) {
      return false;
    }
    const auto round_trips = scaled(5'000, env.scale);
    std::vector<std::int64_t> lat;
    lat.reserve(static_cast<std::size_t>(round_trips));
    if (!one_at_a_time(*run.rx, run.sent, round_trips, run.publish(true), &lat)) return false;
    if (run.dropped() != 0) {
      note("cross_node: {} dropped", run.dropped());
      return false;
    }
    const auto key = fmt::format("cross_node latency send_asap={}", asap);
    const auto params = param("mode", "latency") + param("round_trips", round_trips) + size_params;
    emit("cross_node", key, impl, "p50_us", percentile_us(lat, 0.50), "us", params);
    emit("cross_node", key, impl, "p99_us", percentile_us(lat, 0.99), "us", params);
    emit("cross_node", key, impl, "message_bytes_on_wire", static_cast<double>(*size), "bytes", params);
  }
  // Burst: a window of 1,024 in flight, after a warm-up burst.
  {
    cross_run run{env, nodes, aether_side, send_asap ? "burst_asap" : "burst"};
    run.raw_size = *size;
    run.raw_untimed = raw_payload(0, *size);
    const auto events = scaled(100'000, env.scale);
    constexpr std::int64_t window = 1'024;
    if (!run.subscribe() ||
        !burst(*run.rx, run.sent, std::min<std::int64_t>(events, 10'000), window, run.publish(false))) {
      return false;
    }
    const auto secs = burst(*run.rx, run.sent, events, window, run.publish(false));
    if (!secs) return false;
    if (run.dropped() != 0) {
      note("cross_node: {} dropped", run.dropped());
      return false;
    }
    const auto key = fmt::format("cross_node burst send_asap={}", asap);
    const auto params = param("mode", "burst") + param("events", events) + param("window", window) + size_params;
    emit("cross_node", key, impl, "events_per_s", static_cast<double>(events) / *secs, "events/s", params);
  }
  if (nodes.conn_a->slow_consumer_events() != 0 || nodes.conn_b->slow_consumer_events() != 0) {
    note("slow consumer events: node A {}, node B {}", nodes.conn_a->slow_consumer_events(),
         nodes.conn_b->slow_consumer_events());
  }
  return true;
}

std::string random_prefix() {
  std::random_device device;
  return fmt::format("bb{:08x}", device());
}

} // namespace

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"aether_bus_bench",
           "Usage: aether_bus_bench --only local|floor_post [--scale F]\n"
           "       aether_bus_bench --only cross_node --url nats://HOST:PORT --impl aether|nats.c --send-asap 0|1 "
           "[--scale F]\n"
           "One event-bus workload; its results as JSON lines on stdout (bench/run.sh bus runs them all).",
           "  0  the workload ran\n  1  the workload failed\n  2  bad arguments\n"})) {
    return *answered;
  }
  bench_env env;
  std::string only;
  std::string impl = "aether";
  bool send_asap = true;
  bool usage_error = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (arg == "--url" && i + 1 < argc) {
      env.url = argv[++i];
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--scale" && i + 1 < argc) {
      env.scale = std::atof(argv[++i]);
    } else if (arg == "--impl" && i + 1 < argc) {
      impl = argv[++i];
    } else if (arg == "--send-asap" && i + 1 < argc) {
      send_asap = std::string_view{argv[++i]} == "1";
    } else {
      usage_error = true;
      break;
    }
  }
  if (usage_error || (only != "local" && only != "floor_post" && only != "cross_node") ||
      (only == "cross_node" && env.url.empty()) || (impl != "aether" && impl != "nats.c") || env.scale <= 0) {
    std::fprintf(stderr,
                 "usage: %s --only local|floor_post [--scale F]\n"
                 "       %s --only cross_node --url nats://HOST:PORT --impl aether|nats.c --send-asap 0|1 "
                 "[--scale F]\n",
                 argv[0], argv[0]);
    return 2;
  }
  env.prefix = random_prefix();
  bool ok = false;
  if (only == "local") {
    ok = run_local(env);
  } else if (only == "floor_post") {
    ok = run_floor_post(env);
  } else {
    ok = run_cross_node(env, impl == "aether", send_asap);
  }
  return ok ? 0 : 1;
}
