// Aether's persistence benchmarks: the JetStream event store beside raw nats.c
// doing the same work on the same nats-server.
//
// One workload and one side per process (bench/run.sh runs each side in a
// fresh process, in turns, several times). Prints one flat JSON object per
// line on stdout:
//   {"bench":B,"case":C,"impl":I,"metric":M,"value":V,"unit":U,<params>}
//
// Usage: aether_persistence_bench --url nats://127.0.0.1:PORT --only WORKLOAD
//          [--prefix P] [--scale F] [--actors N] [--window N]
//          [--mode same_bytes|plain] [--impl aether|same_decoder|count]
//          [--events N] [--per-message N] [--snapshot 0|1] [--writes N] [--since UNIX_NS]
//          [--ack-timeout-ms N]
//
// append_writers  aether.store_writers: N writers calling the store
//                 directly, each appending one 128-byte event after the
//                 acknowledgement of its previous one (100,000 in all), the
//                 next append issued from the store's callback. An append
//                 answered `unavailable` (outcome unknown) is resolved by
//                 reading the actor's version back, stored or appended
//                 again; the counts are printed with the figure.
// append_actors   aether.es_actors: the same through the actor system: N
//                 event-sourced actors, each told commands one after the
//                 other (the next once the reply to the previous came), each
//                 command persisting one event; all N activated at once
//                 first (`activation_ms`).
// append_raw      nats.c with `--window` publishes in flight: same_bytes
//                 sends what the store sends to a per-actor stream made by
//                 the store (its republish and settings): `--window` writers,
//                 each write on its writer's subject with the store's headers
//                 and JSON batch, sent from the acknowledgement of the
//                 writer's previous one and expecting its stream sequence;
//                 plain sends 128-byte messages on one subject of a plain
//                 stream: the ceiling.
// replay          one actor's history (`--events`, `--per-message` events
//                 per stored message) read back: aether through the store;
//                 same_decoder: a raw ordered consumer decoding every message
//                 with the store's decoder; count: a raw consumer that only
//                 counts (the transport's ceiling).
// conflict        a losing append's time from the call to its
//                 version_conflict (a second store on its own connections, a
//                 writer in another process that knows nothing of the winner,
//                 appends after version 0 of an actor the first store just
//                 wrote), beside the winner's plain append of the same actor
//                 (floor.append), one actor at a time, 2,000 actors.
// growth          `--writes` events into a fresh server (bench/run.sh reads
//                 its memory and restarts it): aether: 10,000 store writers
//                 on a per-actor stream, as append_writers (unknown outcomes
//                 resolved and counted); nats.c.subjects_10k /
//                 nats.c.subject_per_write: raw async publishes of 128 bytes,
//                 10,000 in flight, over 10,000 subjects or on a fresh
//                 subject each (the per-write layout's shape). Prints the
//                 throughput and the layout the stream records, checked
//                 against the last write on one actor's subject.
// await_stream    after a restart: connects, then asks for the growth
//                 stream's message count until it answers with every write;
//                 prints the time since `--since` (Unix ns, taken before the
//                 server was started).
// activation      the first message to an event-sourced actor with 10,000
//                 events, without or with a snapshot 10 events before the
//                 end, in a fresh actor system after one untimed activation.
//
// --ack-timeout-ms N sets the store's acknowledgement timeout (default
// 2,000 ms): a short one makes appends of unknown outcome common, to check
// how the writers resolve them; not for measuring.
//
// Histories for replay and activation live in namespaces named after
// `--prefix` and are written by the first process that needs them; append
// workloads use namespaces of their own and delete them at the end. Streams
// use file storage: on nats-server 2.9.10 a memory stream scans for a
// subject's last message on every conditional publish.
#include "bench_report.hpp"

// The store's own encoder and decoder (a private header of the persistence
// library): the raw peers send and decode exactly what the store does.
#include "stored_event.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/persistence/snapshot_store.hpp>
#include <aether/runtime/command_line.hpp>
#include <aether/runtime/nats.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <nats/nats.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
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
using aether::expected;

namespace {

using namespace bench;

constexpr std::size_t payload_bytes = 128;
constexpr auto run_deadline = std::chrono::minutes{10}; // a stuck run gives up instead of hanging

std::int64_t nanos_since(bench_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(bench_clock::now() - start).count();
}

/// Latencies recorded from many threads into slots taken in turn.
class latency_log {
public:
  explicit latency_log(std::size_t capacity) : ns_(capacity) {}
  void record(std::int64_t ns) noexcept {
    const auto i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i < ns_.size()) ns_[i] = ns;
  }
  /// The recorded latencies; call once the recording threads are done.
  std::vector<std::int64_t> take() {
    ns_.resize(std::min(ns_.size(), next_.load()));
    return std::move(ns_);
  }

private:
  std::vector<std::int64_t> ns_;
  std::atomic<std::size_t> next_{0};
};

/// A count that one thread waits on until it reaches a target.
class countdown {
public:
  void add(std::int64_t n = 1) {
    // Notified under the lock: the waiter may destroy this as soon as it wakes.
    std::lock_guard lock{mutex_};
    count_ += n;
    changed_.notify_all();
  }
  /// Waits until the count is at least `target`; false at the deadline.
  bool wait_for(std::int64_t target, std::chrono::nanoseconds timeout) {
    std::unique_lock lock{mutex_};
    return changed_.wait_for(lock, timeout, [&] { return count_ >= target; });
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::int64_t count_ = 0;
};

/// A JSON event payload of exactly `payload_bytes` bytes.
std::string event_payload() {
  const std::string head = "{\"pad\":\"";
  const std::string tail = "\"}";
  return head + std::string(payload_bytes - head.size() - tail.size(), 'x') + tail;
}

aether::event make_event(std::string_view type, std::string data) {
  aether::event e;
  e.type = std::string{type};
  e.data = std::move(data);
  return e;
}

// -- raw nats.c: its own connection, streams and JetStream contexts.

struct nats_deleter {
  void operator()(natsConnection* nc) const noexcept {
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  void operator()(jsCtx* js) const noexcept { jsCtx_Destroy(js); }
  void operator()(natsSubscription* sub) const noexcept { natsSubscription_Destroy(sub); }
  void operator()(natsOptions* o) const noexcept { natsOptions_Destroy(o); }
};
template <class T>
using nats_ptr = std::unique_ptr<T, nats_deleter>;

std::string nats_failure(natsStatus s, std::string_view what) {
  return fmt::format("{}: {} ({})", what, natsStatus_GetText(s), nats_GetLastError(nullptr));
}

class raw_client {
public:
  /// `send_asap`: every publish written at once, as the store's second
  /// connection does while fewer than four writes are in flight.
  static std::optional<raw_client> connect(const std::string& url, bool send_asap = false) {
    natsOptions* opts = nullptr;
    if (natsOptions_Create(&opts) != NATS_OK) return std::nullopt;
    nats_ptr<natsOptions> guard{opts};
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetName(opts, "bench-raw");
    natsOptions_SetSendAsap(opts, send_asap);
    natsOptions_SetErrorHandler(opts, &raw_client::on_error, nullptr);
    natsConnection* nc = nullptr;
    if (auto s = natsConnection_Connect(&nc, opts); s != NATS_OK) {
      note("raw: {}", nats_failure(s, "connecting"));
      return std::nullopt;
    }
    raw_client out;
    out.nc_.reset(nc);
    return out;
  }

  /// A JetStream context; `window` bounds its async publishes in flight.
  nats_ptr<jsCtx> jetstream(std::int64_t window = 0, jsPubAckHandler on_ack = nullptr, void* closure = nullptr) {
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 10'000;
    if (window > 0) {
      o.PublishAsync.MaxPending = window;
      o.PublishAsync.StallWait = 60'000;
      o.PublishAsync.AckHandler = on_ack;
      o.PublishAsync.AckHandlerClosure = closure;
    }
    jsCtx* js = nullptr;
    if (auto s = natsConnection_JetStream(&js, nc_.get(), &o); s != NATS_OK) {
      note("raw: {}", nats_failure(s, "opening JetStream"));
      return nullptr;
    }
    return nats_ptr<jsCtx>{js};
  }

  /// A file-storage stream capturing `subject`.
  bool add_stream(const std::string& name, const std::string& subject) {
    auto js = jetstream();
    if (!js) return false;
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = name.c_str();
    const char* subjects[] = {subject.c_str()};
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    jsStreamInfo* info = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (auto s = js_AddStream(&info, js.get(), &c, nullptr, &jerr); s != NATS_OK) {
      note("raw: {} (JetStream error {})", nats_failure(s, "creating stream " + name), static_cast<int>(jerr));
      return false;
    }
    jsStreamInfo_Destroy(info);
    return true;
  }

  static std::uint64_t slow_consumer_events() noexcept { return slow_consumers_.load(); }

private:
  static void on_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
    if (err == NATS_SLOW_CONSUMER) slow_consumers_.fetch_add(1);
  }

  nats_ptr<natsConnection> nc_;
  static inline std::atomic<std::uint64_t> slow_consumers_{0};
};

// -- the run: connections, store, and what to delete at the end.

struct bench_env {
  std::string url;
  double scale = 1;
  std::string prefix; // namespaces, streams and subjects of this suite run start with it
  std::shared_ptr<aether::nats::connection> conn;
  std::shared_ptr<aether::jetstream_event_store> store;
  std::shared_ptr<aether::kv_snapshot_store> snapshots;
  std::optional<raw_client> raw;
  std::vector<std::string> streams; // deleted at the end

  /// A namespace of this process only, whose stream is deleted at the end.
  std::string own_namespace(std::string_view what) {
    auto ns = fmt::format("{}_{}_{:08x}", prefix, what, std::random_device{}());
    streams.push_back(aether::jetstream_event_store::stream_name(ns));
    return ns;
  }
  /// A namespace shared by the processes of this suite run (histories).
  [[nodiscard]] std::string shared_namespace(std::string_view what) const { return fmt::format("{}_{}", prefix, what); }

  /// A plain raw stream of this process, deleted at the end: its name and
  /// the subject prefix `p` it captures (as `p.>`).
  std::optional<std::pair<std::string, std::string>> raw_stream(std::string_view what) {
    auto tag = fmt::format("{}_raw_{}_{:08x}", prefix, what, std::random_device{}());
    auto subject = fmt::format("bench.{}", tag);
    if (!raw->add_stream(tag, subject + ".>")) return std::nullopt;
    streams.push_back(tag);
    return std::pair{tag, subject};
  }

  void cleanup() {
    for (const auto& s : streams) {
      if (auto r = conn->delete_stream(s); !r && r.error().code() != aether::errc::not_found) {
        note("cleanup: {}", r.error().to_string());
      }
    }
  }

  [[nodiscard]] std::uint64_t message_count(const std::string& stream) const {
    auto n = conn->stream_message_count(stream);
    return n ? *n : 0;
  }
};

/// Writes `total` events of one actor, `per_append` per append, with up to
/// `window` appends in flight, in version order (one thread issues them, so
/// the stream holds them in order). Returns each write's stream sequence.
expected<std::vector<std::uint64_t>> write_history(aether::event_store& store, const actor_id& actor,
                                                   std::int64_t total, std::int64_t per_append, std::int64_t window,
                                                   const std::function<std::string(std::int64_t version)>& data,
                                                   std::string_view type) {
  const auto writes = (total + per_append - 1) / per_append;
  std::vector<std::uint64_t> sequences(static_cast<std::size_t>(writes));
  countdown acked;
  std::mutex failure_mutex;
  std::optional<aether::error> failure;
  auto failed = [&] {
    std::lock_guard lock{failure_mutex};
    return failure.has_value();
  };
  std::int64_t issued = 0;
  for (; issued < writes && !failed(); ++issued) {
    if (issued >= window && !acked.wait_for(issued - window + 1, run_deadline)) break;
    const auto first = issued * per_append; // the version this write follows
    const auto count = std::min(per_append, total - first);
    std::vector<aether::event> events;
    events.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) events.push_back(make_event(type, data(first + i + 1)));
    store.append(actor, static_cast<std::uint64_t>(first), std::move(events),
                 [&, w = static_cast<std::size_t>(issued)](expected<aether::append_result> r) {
                   if (r) {
                     sequences[w] = r->sequence;
                   } else {
                     std::lock_guard lock{failure_mutex};
                     if (!failure) failure = r.error();
                   }
                   acked.add();
                 });
  }
  // Every issued write is waited for, even after a failure: the callbacks use locals.
  if (!acked.wait_for(issued, run_deadline)) {
    note("writing the history of {}: timed out", actor.to_string());
    std::abort();
  }
  std::lock_guard lock{failure_mutex};
  if (failure) return *failure;
  if (issued < writes) return aether::error{aether::errc::timeout, "writing the history timed out"};
  return sequences;
}

// -- append

constexpr std::int64_t append_total = 100'000;
constexpr std::int64_t append_warmup = 200;

std::string append_case(std::int64_t window) { return fmt::format("append window={}", window); }

std::string append_params(std::int64_t window, std::int64_t total) {
  return param("window", window) + param("events", total) + param("payload_bytes", payload_bytes);
}

void emit_append(std::string_view impl, std::int64_t window, std::int64_t total, double secs,
                 std::vector<std::int64_t>& lat, const std::string& throughput_params = {}) {
  const auto key = append_case(window);
  const auto params = append_params(window, total);
  emit("append", key, impl, "events_per_s", static_cast<double>(total) / secs, "events/s", params + throughput_params);
  emit("append", key, impl, "p50_us", percentile_us(lat, 0.50), "us", params);
  emit("append", key, impl, "p99_us", percentile_us(lat, 0.99), "us", params);
}

/// One write as the store sends it: subject, headers, payload.
struct store_write {
  std::string subject;
  std::string write_id;
  std::string last_version;
  std::string payload;
};

/// The writes the store would send to a per-actor stream for `actors`
/// writers appending one event at a time, `total` in all, in the order a
/// round robin issues them: write k is writer k % actors's version
/// k / actors + 1, on the writer's own subject. (Each one expects the stream
/// sequence of its writer's previous write, known only once that one is
/// acknowledged: the sender sets it.)
std::vector<store_write> store_writes(const std::string& ns, std::int64_t actors, std::int64_t total) {
  std::vector<store_write> out;
  out.reserve(static_cast<std::size_t>(total));
  for (std::int64_t k = 0; k < total; ++k) {
    const actor_id id{"account", fmt::format("a{}", k % actors), ns};
    const auto version = static_cast<std::uint64_t>(k / actors);
    std::vector<aether::event> events;
    events.push_back(make_event("bench.appended", event_payload()));
    if (auto r = aether::detail::prepare_append(id, version, events); !r) std::abort();
    out.push_back(store_write{aether::jetstream_event_store::actor_subject(id), events.front().id,
                              std::to_string(version + 1), aether::detail::encode_batch(events)});
  }
  return out;
}

/// Warms up the connection, the store's paths and the server's stream of `ns`.
bool warm_store(bench_env& env, const std::string& ns) {
  auto warm = write_history(
      *env.store, actor_id{"warmup", "w", ns}, append_warmup, 1, 1, [](std::int64_t) { return event_payload(); },
      "bench.appended");
  if (!warm) note("append warmup: {}", warm.error().to_string());
  return warm.has_value();
}

/// Drives `actors` writers through `per_actor` sequential appends each. The
/// next append of a writer is issued from its previous one's callback (on a
/// store or nats.c thread): the store's own cost, without an executor hop.
///
/// An append that ends `unavailable` has an unknown outcome (its
/// acknowledgement did not come, and its read-back did not answer): the
/// writer does what a client of the store must, it reads the actor's last
/// version back. Stored, it goes on after it; not stored, it appends the
/// same event again after the same version (the server's per-actor sequence
/// check stores at most one of the two). Each such write is counted and
/// reported; any other failure stops the writer and fails the run.
class append_driver {
public:
  append_driver(aether::event_store& store, std::string_view ns, std::int64_t actors, std::int64_t per_actor)
      : store_{store}, per_actor_{per_actor}, latencies_{static_cast<std::size_t>(actors * per_actor)} {
    for (std::int64_t i = 0; i < actors; ++i) {
      actors_.push_back(actor{actor_id{"account", fmt::format("a{}", i), ns}, 0, {}, false, 0});
    }
  }

  /// Runs to the end; false when an append failed or the run timed out.
  bool run(double& seconds) {
    const auto start = bench_clock::now();
    for (std::size_t i = 0; i < actors_.size(); ++i) issue(i);
    const bool finished = finished_.wait_for(static_cast<std::int64_t>(actors_.size()), run_deadline);
    seconds = seconds_since(start);
    if (!finished) {
      note("  append: timed out"); // callbacks still in flight refer to this driver
      std::abort();
    }
    std::lock_guard lock{failure_mutex_};
    if (unknown_ > 0) {
      note("  append: {} appends ended with an unknown outcome (the first: {}); read back: {} stored, {} not stored "
           "and appended again",
           unknown_, first_unknown_ ? first_unknown_->to_string() : std::string{}, found_stored_, appended_again_);
    }
    if (failure_) note("  append: {} appends failed, the first: {}", failures_, failure_->to_string());
    return finished && !failure_;
  }

  std::vector<std::int64_t> latencies() { return latencies_.take(); }

  /// The appends whose outcome was unknown, and what reading back found.
  struct unknowns {
    std::int64_t total = 0;
    std::int64_t found_stored = 0;
    std::int64_t appended_again = 0;
  };
  unknowns unknown_outcomes() {
    std::lock_guard lock{failure_mutex_};
    return {unknown_, found_stored_, appended_again_};
  }

  /// The unknown-outcome figures as result parameters.
  std::string unknown_params() {
    const auto u = unknown_outcomes();
    return param("unknown_outcomes", u.total) + param("unknown_found_stored", u.found_stored) +
           param("unknown_appended_again", u.appended_again);
  }

private:
  struct actor {
    actor_id id;
    std::int64_t version = 0;
    bench_clock::time_point sent;
    bool again = false; // the append in flight repeats one whose outcome was unknown
    int read_backs = 0; // of the current append's outcome
  };

  // Each writer's state is touched by one append chain at a time.
  void issue(std::size_t i) {
    auto& a = actors_[i];
    std::vector<aether::event> events;
    events.push_back(make_event("bench.appended", payload_));
    a.sent = bench_clock::now();
    store_.append(a.id, static_cast<std::uint64_t>(a.version), std::move(events),
                  [this, i](expected<aether::append_result> r) { on_stored(i, r); });
  }

  void stop(const aether::error& e) {
    {
      std::lock_guard lock{failure_mutex_};
      ++failures_;
      if (!failure_) failure_ = e;
    }
    finished_.add(); // this writer stops
  }

  void next(std::size_t i) {
    auto& a = actors_[i];
    a.again = false;
    a.read_backs = 0;
    if (++a.version < per_actor_) {
      issue(i);
    } else {
      finished_.add();
    }
  }

  void on_stored(std::size_t i, const expected<aether::append_result>& r) {
    auto& a = actors_[i];
    latencies_.record(nanos_since(a.sent));
    if (r) {
      next(i);
      return;
    }
    const auto code = r.error().code();
    // A repeated append refused by the version the unknown one stored: that
    // one was stored after all (after the read-back said it was not).
    if (a.again && code == aether::errc::version_conflict &&
        r.error().value() == static_cast<std::uint64_t>(a.version + 1)) {
      {
        std::lock_guard lock{failure_mutex_};
        ++found_stored_;
        --appended_again_;
      }
      next(i);
      return;
    }
    if (code != aether::errc::unavailable) {
      stop(r.error());
      return;
    }
    {
      std::lock_guard lock{failure_mutex_};
      ++unknown_;
      if (!first_unknown_) first_unknown_ = r.error();
    }
    read_back(i);
  }

  /// Reads the actor's last version after an append of unknown outcome.
  void read_back(std::size_t i) {
    store_.latest_version(actors_[i].id, [this, i](expected<std::uint64_t> v) {
      auto& a = actors_[i];
      if (!v) {
        if (v.error().code() == aether::errc::unavailable && ++a.read_backs < max_read_backs) {
          read_back(i); // the server is still busy: ask again
          return;
        }
        stop(v.error());
        return;
      }
      if (*v == static_cast<std::uint64_t>(a.version + 1)) {
        {
          std::lock_guard lock{failure_mutex_};
          ++found_stored_;
        }
        next(i);
      } else if (*v == static_cast<std::uint64_t>(a.version)) {
        {
          std::lock_guard lock{failure_mutex_};
          ++appended_again_;
        }
        a.again = true;
        issue(i);
      } else {
        stop(
            aether::error{aether::errc::replay_failed, fmt::format("{}: at version {} after an append after version {}",
                                                                   a.id.to_string(), *v, a.version)});
      }
    });
  }

  static constexpr int max_read_backs = 10;

  aether::event_store& store_;
  std::int64_t per_actor_;
  std::string payload_ = event_payload();
  std::vector<actor> actors_;
  latency_log latencies_;
  countdown finished_;
  std::mutex failure_mutex_;
  std::optional<aether::error> failure_;
  std::int64_t failures_ = 0;
  std::optional<aether::error> first_unknown_;
  std::int64_t unknown_ = 0;
  std::int64_t found_stored_ = 0;
  std::int64_t appended_again_ = 0;
};

bool run_append_writers(bench_env& env, std::int64_t actors) {
  const auto total = scaled(append_total, env.scale);
  const auto per_actor = std::max<std::int64_t>(1, total / actors);
  const auto ns = env.own_namespace(fmt::format("writers{}", actors));
  if (auto r = env.store->prepare(ns); !r) {
    note("append: {}", r.error().to_string());
    return false;
  }
  if (!warm_store(env, ns)) return false;
  append_driver driver{*env.store, ns, actors, per_actor};
  double secs = 0;
  const bool ok = driver.run(secs);
  auto lat = driver.latencies();
  const auto stored = env.message_count(aether::jetstream_event_store::stream_name(ns));
  if (!ok || stored != static_cast<std::uint64_t>(actors * per_actor + append_warmup)) {
    note("append writers: {} messages stored, expected {}", stored, actors * per_actor + append_warmup);
    return false;
  }
  emit_append("aether.store_writers", actors, actors * per_actor, secs, lat, driver.unknown_params());
  emit("append", append_case(actors), "aether.store_writers", "payload_bytes_on_wire",
       static_cast<double>(store_writes(ns, 1, 1).front().payload.size()), "bytes",
       append_params(actors, actors * per_actor));
  return true;
}

// -- append_actors: event-sourced actors in an actor system.

struct appended {
  static constexpr std::string_view type_name = "bench.appended";
  std::string pad;
};
AETHER_JSON_FIELDS(appended, pad)

struct ledger_state {
  std::int64_t count = 0;
};
AETHER_JSON_FIELDS(ledger_state, count)

struct append_one {};
struct wake_up {};

class ledger : public aether::event_sourced_actor<ledger_state> {
public:
  ledger() {
    apply([](ledger_state& s, const appended&) { ++s.count; });
    on([this](const append_one&, aether::context& ctx) { persist(ctx, appended{pad()}); });
    on([](const wake_up&) { return 0; });
  }

private:
  // 128 bytes of JSON once encoded, like the writers' event.
  static const std::string& pad() {
    static const std::string p(payload_bytes - std::string_view{R"({"pad":""})"}.size(), 'x');
    return p;
  }
};

/// A node-like setup: a thread per core, default shards.
struct runtime {
  runtime() = default;
  ~runtime() { aether::close_and_join(system, pool); }
  aether::thread_pool_executor pool{worker_count(), aether::system_config{}.shard_count};
  aether::actor_system system{aether::system_config{}, pool};
};

/// Tells each of `actors` event-sourced actors `per_actor` commands, the next
/// once the reply to the previous came (its callback runs on a runtime thread).
class command_driver {
public:
  command_driver(aether::actor_system& system, std::string_view ns, std::int64_t actors, std::int64_t per_actor)
      : system_{system}, per_actor_{per_actor}, latencies_{static_cast<std::size_t>(actors * per_actor)} {
    for (std::int64_t i = 0; i < actors; ++i) slots_.push_back(slot{actor_id{"ledger", fmt::format("l{}", i), ns}});
  }

  /// Activates every actor at once, as a node that took over their shards
  /// would (each reads its empty history); `seconds` is how long until all
  /// answered. Each must answer within the persistence timeout (10 s).
  bool activate(double& seconds) {
    countdown woken;
    std::mutex failed_mutex;
    std::int64_t failed = 0;
    std::optional<aether::error> first;
    const auto start = bench_clock::now();
    std::int64_t asked = 0;
    for (const auto& s : slots_) {
      ++asked;
      // As long as the run may take: activations queue behind each other's
      // reads (for minutes under emulation).
      system_.ask<int>(s.id, wake_up{}, run_deadline).then([&](expected<int> r) {
        if (!r) {
          std::lock_guard lock{failed_mutex};
          ++failed;
          if (!first) first = r.error();
        }
        woken.add();
      });
    }
    // Every ask is waited for: the callbacks use locals.
    if (asked < static_cast<std::int64_t>(slots_.size()) || !woken.wait_for(asked, run_deadline)) {
      note("append actors: activation timed out");
      std::abort();
    }
    seconds = seconds_since(start);
    std::lock_guard lock{failed_mutex};
    if (first)
      note("append actors: {} of {} activations failed, the first: {}", failed, slots_.size(), first->to_string());
    return !first;
  }

  bool run(double& seconds) {
    const auto start = bench_clock::now();
    for (std::size_t i = 0; i < slots_.size(); ++i) issue(i);
    const bool finished = finished_.wait_for(static_cast<std::int64_t>(slots_.size()), run_deadline);
    seconds = seconds_since(start);
    if (!finished) {
      note("  append actors: timed out"); // callbacks still in flight refer to this driver
      std::abort();
    }
    std::lock_guard lock{failure_mutex_};
    if (failure_) note("  append actors: {} commands failed, the first: {}", failures_, failure_->to_string());
    return finished && !failure_;
  }

  std::vector<std::int64_t> latencies() { return latencies_.take(); }

private:
  struct slot {
    actor_id id;
    std::int64_t done = 0;
    bench_clock::time_point sent{};
  };

  void issue(std::size_t i) {
    auto& sending = slots_[i];
    sending.sent = bench_clock::now();
    system_.ask<aether::persisted>(sending.id, append_one{}, 60s).then([this, i](expected<aether::persisted> r) {
      auto& s = slots_[i];
      latencies_.record(nanos_since(s.sent));
      if (!r) {
        std::lock_guard lock{failure_mutex_};
        ++failures_;
        if (!failure_) failure_ = r.error();
        finished_.add();
      } else if (++s.done < per_actor_) {
        issue(i);
      } else {
        finished_.add();
      }
    });
  }

  aether::actor_system& system_;
  std::int64_t per_actor_;
  std::vector<slot> slots_;
  latency_log latencies_;
  countdown finished_;
  std::mutex failure_mutex_;
  std::optional<aether::error> failure_;
  std::int64_t failures_ = 0;
};

bool run_append_actors(bench_env& env, std::int64_t actors) {
  const auto total = scaled(append_total, env.scale);
  const auto per_actor = std::max<std::int64_t>(1, total / actors);
  const auto ns = env.own_namespace(fmt::format("actors{}", actors));
  if (auto r = env.store->prepare(ns); !r) {
    note("append: {}", r.error().to_string());
    return false;
  }
  if (!warm_store(env, ns)) return false;
  auto p = std::make_shared<aether::persistence>();
  p->events = env.store;
  p->snapshot_on_passivate = false;
  double secs = 0;
  double activation_secs = 0;
  bool ok = false;
  std::vector<std::int64_t> lat;
  {
    runtime rt;
    aether::register_event_sourced<ledger>(rt.system, "ledger", p);
    command_driver driver{rt.system, ns, actors, per_actor};
    ok = driver.activate(activation_secs) && driver.run(secs);
    lat = driver.latencies();
  }
  const auto stored = env.message_count(aether::jetstream_event_store::stream_name(ns));
  if (!ok || stored != static_cast<std::uint64_t>(actors * per_actor + append_warmup)) {
    note("append actors: {} messages stored, expected {}", stored, actors * per_actor + append_warmup);
    return false;
  }
  emit_append("aether.es_actors", actors, actors * per_actor, secs, lat);
  // All actors activated at once: their history reads, side by side.
  emit("append", append_case(actors), "aether.es_actors", "activation_ms", activation_secs * 1000, "ms",
       append_params(actors, actors * per_actor));
  return true;
}

// -- append_raw

/// Raw async publish: what the ack handler needs.
struct async_acks {
  bench_clock::time_point epoch;
  latency_log* latencies = nullptr;
  std::vector<std::int64_t>* sent_at = nullptr; // by write index, for same_bytes
  std::int64_t writers = 1;                     // same_bytes: writes k go to writer k % writers
  // same_bytes: called with a write's index and its stream sequence (0: not
  // stored) on nats.c's thread, to send its writer's next write.
  std::function<void(std::size_t, std::uint64_t)> stored;
  std::atomic<std::int64_t> acked{0};
  std::atomic<std::int64_t> failed{0};

  static void on_ack(jsCtx*, natsMsg* m, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto& self = *static_cast<async_acks*>(closure);
    std::int64_t sent = 0;
    std::optional<std::size_t> index;
    if (self.sent_at != nullptr) {
      // The subject names the writer (...a{writer}), the header the version.
      const std::string_view subject{natsMsg_GetSubject(m)};
      const auto writer = std::atoll(subject.substr(subject.rfind(".a") + 2).data());
      const char* last = nullptr;
      if (natsMsgHeader_Get(m, "Aether-Last-Version", &last) == NATS_OK && last != nullptr) {
        const auto version = std::atoll(last);
        index = static_cast<std::size_t>((version - 1) * self.writers + writer);
        if (*index < self.sent_at->size()) sent = (*self.sent_at)[*index];
      }
    } else if (natsMsg_GetDataLength(m) >= static_cast<int>(sizeof sent)) {
      // The send time rides in the payload's first bytes.
      std::memcpy(&sent, natsMsg_GetData(m), sizeof sent);
    }
    self.latencies->record(nanos_since(self.epoch) - sent);
    const bool ok = pa != nullptr && pae == nullptr;
    const auto sequence = ok ? pa->Sequence : 0;
    natsMsg_Destroy(m);
    if (index && self.stored) self.stored(*index, sequence);
    // Counted last: the sender waits for the count, then leaves.
    if (ok) {
      self.acked.fetch_add(1, std::memory_order_relaxed);
    } else {
      self.failed.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

/// Raw async publishes with up to `window` in flight. same_bytes: `window`
/// writers on a per-actor stream made by the store, each write sent once the
/// writer's previous one is acknowledged (from nats.c's ack handler), with
/// that write's stream sequence as its expectation, as the store does;
/// plain: a window of publishes on one subject.
bool run_append_raw(bench_env& env, std::int64_t window, std::string_view mode) {
  const bool same_bytes = mode == "same_bytes";
  const auto total = std::max<std::int64_t>(1, scaled(append_total, env.scale) / window) * window;
  // Below four in flight the store writes on a send-asap connection: so does this.
  auto client = raw_client::connect(env.url, window < 4);
  if (!client) return false;
  std::string stream;
  std::string plain_subject;
  std::vector<store_write> writes;
  if (same_bytes) {
    // A namespace stream made by the store itself: the same settings and republish.
    const auto ns = env.own_namespace(fmt::format("raw{}", window));
    if (auto r = env.store->prepare(ns); !r) {
      note("append raw: {}", r.error().to_string());
      return false;
    }
    if (auto l = env.store->layout(ns); !l || *l != aether::event_layout::per_actor) {
      note("append raw: the store's stream is not in the per-actor layout");
      return false;
    }
    stream = aether::jetstream_event_store::stream_name(ns);
    writes = store_writes(ns, window, total + append_warmup);
  } else {
    auto s = env.raw_stream(fmt::format("plain{}", window));
    if (!s) return false;
    stream = s->first;
    plain_subject = s->second + ".all";
  }
  latency_log lat_log{static_cast<std::size_t>(total + append_warmup)};
  std::vector<std::int64_t> sent_at(static_cast<std::size_t>(total + append_warmup));
  // same_bytes: each writer's last stored write (touched by its one chain at a time).
  std::vector<std::uint64_t> last_sequence(static_cast<std::size_t>(window), 0);
  std::atomic<std::int64_t> phase_end{0}; // same_bytes: writes from this index on wait for the next phase
  countdown chains_ended;
  std::int64_t chains_started = 0;
  async_acks acks;
  acks.epoch = bench_clock::now();
  acks.latencies = &lat_log;
  std::string payload(payload_bytes, 'x');
  std::int64_t wire_bytes = 0;
  nats_ptr<jsCtx> js;
  auto publish = [&](std::int64_t i) {
    natsStatus s = NATS_OK;
    const auto now = nanos_since(acks.epoch);
    if (same_bytes) {
      const auto& w = writes[static_cast<std::size_t>(i)];
      sent_at[static_cast<std::size_t>(i)] = now;
      const auto expect = std::to_string(last_sequence[static_cast<std::size_t>(i % window)]);
      natsMsg* m = nullptr;
      s = natsMsg_Create(&m, w.subject.c_str(), nullptr, w.payload.data(), static_cast<int>(w.payload.size()));
      // The store's headers, in its order.
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", expect.c_str());
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Aether-Write-Id", w.write_id.c_str());
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Aether-Last-Version", w.last_version.c_str());
      while (s == NATS_OK || s == NATS_TIMEOUT) {
        s = js_PublishMsgAsync(js.get(), &m, nullptr);
        if (s != NATS_TIMEOUT) break; // the window stayed full for the whole stall wait
      }
      natsMsg_Destroy(m); // null once the library took it
    } else {
      std::memcpy(payload.data(), &now, sizeof now);
      do {
        s = js_PublishAsync(js.get(), plain_subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr);
      } while (s == NATS_TIMEOUT);
    }
    if (s != NATS_OK) note("raw {}: {}", mode, nats_failure(s, "publishing"));
    return s == NATS_OK;
  };
  if (same_bytes) {
    acks.sent_at = &sent_at;
    acks.writers = window;
    wire_bytes = static_cast<std::int64_t>(writes.front().payload.size());
    // A writer's chain goes on from the acknowledgement of its last write,
    // and ends at the phase's end or at a write that failed (counted).
    acks.stored = [&](std::size_t index, std::uint64_t sequence) {
      if (sequence == 0) { // not stored: counted as failed
        chains_ended.add();
        return;
      }
      last_sequence[index % static_cast<std::size_t>(window)] = sequence;
      const auto next = static_cast<std::int64_t>(index) + window;
      if (next >= phase_end.load()) {
        chains_ended.add();
      } else if (!publish(next)) {
        acks.failed.fetch_add(1);
        chains_ended.add();
      }
    };
  } else {
    wire_bytes = static_cast<std::int64_t>(payload.size());
  }
  // same_bytes: room for more than the window, so the ack handler that sends
  // a writer's next write never waits for an acknowledgement it would deliver.
  js = client->jetstream(same_bytes ? 2 * window : window, &async_acks::on_ack, &acks);
  if (!js) return false;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::chrono::duration_cast<std::chrono::milliseconds>(run_deadline).count();
  // Sends writes [from, to) and waits for all of them: same_bytes starts one
  // chain per writer, plain sends them all into the window.
  auto phase = [&](std::int64_t from, std::int64_t to) {
    if (!same_bytes) {
      for (std::int64_t i = from; i < to; ++i) {
        if (!publish(i)) return false;
      }
      if (auto s = js_PublishAsyncComplete(js.get(), &po); s != NATS_OK) {
        note("raw {}: {}", mode, nats_failure(s, "waiting for the acknowledgements"));
        return false;
      }
      return true;
    }
    phase_end = to;
    std::int64_t started = 0;
    bool ok = true;
    for (std::int64_t i = from; i < std::min(to, from + window); ++i, ++started) {
      if (!publish(i)) {
        ok = false;
        break;
      }
    }
    // Every chain started is waited for: the ack handler uses these locals.
    chains_started += started;
    if (!chains_ended.wait_for(chains_started, run_deadline)) {
      note("raw same_bytes: timed out");
      std::abort();
    }
    return ok;
  };
  // The same warm-up as the store gets, then the timed publishes.
  if (!phase(0, append_warmup)) return false;
  for (auto until = bench_clock::now() + 5s; acks.acked + acks.failed < append_warmup && bench_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  (void)lat_log.take(); // the warm-up's latencies
  latency_log timed_log{static_cast<std::size_t>(total)};
  acks.latencies = &timed_log;
  acks.acked = 0;
  const auto start = bench_clock::now();
  const bool sent = phase(append_warmup, append_warmup + total);
  const double secs = seconds_since(start);
  if (!sent) return false;
  // The handler of the last ack may still be running.
  for (auto until = bench_clock::now() + 5s; acks.acked + acks.failed < total && bench_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  auto lat = timed_log.take();
  const auto stored = env.message_count(stream);
  if (acks.failed > 0 || stored != static_cast<std::uint64_t>(total + append_warmup)) {
    note("raw {}: {} failed, {} stored, expected {}", mode, acks.failed.load(), stored, total + append_warmup);
    return false;
  }
  const auto impl = same_bytes ? "nats.c.same_bytes" : "nats.c.plain";
  emit_append(impl, window, total, secs, lat);
  emit("append", append_case(window), impl, "payload_bytes_on_wire", static_cast<double>(wire_bytes), "bytes",
       append_params(window, total));
  return true;
}

// -- replay: one actor's whole history, through the store or a raw ordered
//    consumer on the same stream and filter.

/// A raw ordered push consumer reading everything on a filter; with
/// `decode`, it decodes every message with the store's decoder and keeps
/// the events, as the store's read does.
struct raw_replay {
  bool decode = false;
  bool by_actor = false; // per-actor layout: each event carries its own version
  actor_id actor;
  std::atomic<std::int64_t> messages{0};
  std::atomic<std::int64_t> first_message_ns{0};
  bench_clock::time_point start;
  std::vector<aether::event> events;
  std::atomic<bool> failed{false};
  std::promise<void> done;
  std::atomic<bool> finished{false};
  std::promise<void> closed; // nats.c calls nothing more after this

  static void on_closed(void* closure) { static_cast<raw_replay*>(closure)->closed.set_value(); }

  static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto& self = *static_cast<raw_replay*>(closure);
    if (self.messages.fetch_add(1, std::memory_order_relaxed) == 0) self.first_message_ns = nanos_since(self.start);
    jsMsgMetaData* meta = nullptr;
    bool last = false;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      last = meta->NumPending == 0;
      if (self.decode) {
        const std::string_view data{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))};
        // Per write, the subject's last token is the write's first version.
        const std::string_view subject{natsMsg_GetSubject(m)};
        auto batch = self.by_actor
                         ? aether::detail::decode_batch_own_versions(self.actor, meta->Sequence.Stream, data)
                         : aether::detail::decode_batch(
                               self.actor, std::strtoull(subject.substr(subject.rfind('.') + 1).data(), nullptr, 10),
                               meta->Sequence.Stream, data);
        if (!batch) {
          self.failed = true;
        } else {
          if (self.events.empty()) self.events.reserve(batch->size());
          for (auto& e : *batch) self.events.push_back(std::move(e));
        }
      }
      jsMsgMetaData_Destroy(meta);
    } else {
      self.failed = true;
      last = true;
    }
    natsMsg_Destroy(m);
    if (last && !self.finished.exchange(true)) self.done.set_value();
  }
};

struct raw_replay_result {
  double seconds = 0;
  double first_message_ms = 0;
};

/// Reads the stream's messages on `filter` with a raw ordered consumer.
std::optional<raw_replay_result> time_raw_replay(bench_env& env, const actor_id& actor, bool decode,
                                                 std::int64_t expected_messages, std::int64_t expected_events) {
  auto js = env.raw->jetstream();
  if (!js) return std::nullopt;
  const auto stream = aether::jetstream_event_store::stream_name(actor.ns());
  const auto layout = env.store->layout(actor.ns());
  const auto filter = layout && *layout == aether::event_layout::per_actor
                          ? aether::jetstream_event_store::actor_subject(actor)
                          : aether::jetstream_event_store::actor_filter(actor);
  raw_replay r;
  r.decode = decode;
  r.by_actor = layout && *layout == aether::event_layout::per_actor;
  r.actor = actor;
  auto done = r.done.get_future();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  r.start = bench_clock::now();
  if (auto s = js_Subscribe(&sub, js.get(), filter.c_str(), &raw_replay::on_message, &r, nullptr, &so, &jerr);
      s != NATS_OK) {
    note("raw replay: {} (JetStream error {})", nats_failure(s, "subscribing"), static_cast<int>(jerr));
    return std::nullopt;
  }
  nats_ptr<natsSubscription> owned{sub};
  auto closed = r.closed.get_future();
  natsSubscription_SetOnCompleteCB(sub, &raw_replay::on_closed, &r);
  const bool in_time = done.wait_for(run_deadline) == std::future_status::ready;
  const double secs = seconds_since(r.start);
  std::int64_t dropped = 0;
  natsSubscription_GetDropped(sub, &dropped);
  natsSubscription_Unsubscribe(sub);
  if (closed.wait_for(10s) != std::future_status::ready) {
    note("raw replay: the subscription did not close");
    std::abort(); // its callback may still run on `r`
  }
  if (!in_time || r.failed || r.messages != expected_messages || dropped != 0 ||
      (decode && static_cast<std::int64_t>(r.events.size()) != expected_events)) {
    note("raw replay: {} of {} messages, {} events, {} dropped{}", r.messages.load(), expected_messages,
         r.events.size(), dropped, in_time ? "" : ", timed out");
    return std::nullopt;
  }
  return raw_replay_result{secs, static_cast<double>(r.first_message_ns.load()) / 1e6};
}

/// Makes sure the shared namespace `ns` holds `events` events of `actor`,
/// `per_message` per write (the first process of a suite run writes them).
bool ensure_history(bench_env& env, const std::string& ns, const actor_id& actor, std::int64_t events,
                    std::int64_t per_message, const std::function<std::string(std::int64_t)>& data,
                    std::string_view type, std::vector<std::uint64_t>* sequences = nullptr) {
  if (auto r = env.store->prepare(ns); !r) {
    note("history: {}", r.error().to_string());
    return false;
  }
  const auto writes = (events + per_message - 1) / per_message;
  const auto stream = aether::jetstream_event_store::stream_name(ns);
  const auto before = env.message_count(stream);
  if (before == 0) {
    const auto start = bench_clock::now();
    auto written = write_history(*env.store, actor, events, per_message, 1'000, data, type);
    if (!written) {
      note("history: {}", written.error().to_string());
      return false;
    }
    note("history {}: {} writes in {:.3f} s", actor.to_string(), written->size(), seconds_since(start));
    if (sequences) *sequences = std::move(*written);
    return true;
  }
  if (before < static_cast<std::uint64_t>(writes)) {
    note("history {}: {} writes stored, expected {}", actor.to_string(), before, writes);
    return false;
  }
  return true;
}

bool run_replay(bench_env& env, std::string_view impl, std::int64_t events, std::int64_t per_message) {
  per_message = std::min(per_message, events);
  const auto ns = env.shared_namespace(fmt::format("replay{}x{}", events, per_message));
  const actor_id actor{"ledger", "r", ns};
  if (!ensure_history(
          env, ns, actor, events, per_message, [](std::int64_t) { return event_payload(); }, "bench.appended")) {
    return false;
  }
  const auto messages = (events + per_message - 1) / per_message;
  const auto key = fmt::format("replay events={} per_message={}", events, per_message);
  const auto params = param("events", events) + param("events_per_msg", per_message);
  const auto explains = params + param("role", "explains");
  if (impl == "aether") {
    // Untimed: the first read of a process opens what later ones reuse.
    (void)env.store->read_wait(actor, 1);
    const auto start = bench_clock::now();
    auto read = env.store->read_wait(actor, 1);
    const double secs = seconds_since(start);
    if (!read || static_cast<std::int64_t>(read->size()) != events) {
      note("replay aether: {}",
           read ? fmt::format("{} events, expected {}", read->size(), events) : read.error().to_string());
      return false;
    }
    emit("replay", key, "aether", "events_per_s", static_cast<double>(events) / secs, "events/s", params);
    // What the read's first step costs on its own: 16 writes by exact subject,
    // a direct get each (the walk; a long history then opens a consumer).
    const auto stream = aether::jetstream_event_store::stream_name(ns);
    const auto layout = env.store->layout(ns);
    const bool per_actor = layout && *layout == aether::event_layout::per_actor;
    const auto walk_start = bench_clock::now();
    std::uint64_t version = 1;
    std::uint64_t after = 0; // per actor: the walk goes from one write's stream sequence to the next
    for (int i = 0; i < 16 && version <= static_cast<std::uint64_t>(events); ++i) {
      if (per_actor) {
        auto m = env.conn->request(fmt::format("$JS.API.DIRECT.GET.{}", stream),
                                   fmt::format(R"({{"seq":{},"next_by_subj":"{}"}})", after + 1,
                                               aether::jetstream_event_store::actor_subject(actor)),
                                   5s);
        if (!m || m->sequence == 0) break;
        after = m->sequence;
      } else if (!env.conn->direct_get_last(stream, aether::jetstream_event_store::subject(actor, version))) {
        break;
      }
      version += static_cast<std::uint64_t>(per_message);
    }
    emit("replay", key, "aether", "walk_16_direct_gets_ms", seconds_since(walk_start) * 1e3, "ms", explains);
    return true;
  }
  const bool decode = impl == "same_decoder";
  // Untimed, as on the store's side.
  if (!time_raw_replay(env, actor, decode, messages, events)) return false;
  auto r = time_raw_replay(env, actor, decode, messages, events);
  if (!r) return false;
  const auto name = decode ? "nats.c.same_decoder" : "nats.c.count";
  emit("replay", key, name, "events_per_s", static_cast<double>(events) / r->seconds, "events/s", params);
  emit("replay", key, name, "consumer_first_message_ms", r->first_message_ms, "ms", explains);
  return true;
}

// -- conflict: what a loser waits for its version_conflict.

constexpr std::int64_t conflict_actors = 2'000;

/// A store as a node opens it (a main and a send-asap connection), for a second writer.
std::shared_ptr<aether::jetstream_event_store> open_node_store(const std::string& url, std::string_view name) {
  aether::nats::connect_options options;
  options.url = url;
  options.name = std::string{name};
  auto conn = aether::nats::connection::connect(options);
  options.send_asap = true;
  auto quick = aether::nats::connection::connect(options);
  if (!conn || !quick) return nullptr;
  aether::jetstream_store_options so;
  so.layout = aether::event_layout::per_actor;
  auto store = aether::jetstream_event_store::open(*conn, so, *quick);
  return store ? *store : nullptr;
}

bool run_conflict(bench_env& env) {
  const auto actors = std::max<std::int64_t>(50, scaled(conflict_actors, env.scale));
  const auto ns = env.own_namespace("conflict");
  if (auto r = env.store->prepare(ns); !r) {
    note("conflict: {}", r.error().to_string());
    return false;
  }
  if (!warm_store(env, ns)) return false;
  auto loser = open_node_store(env.url, "bench-aether-loser");
  if (!loser) {
    note("conflict: cannot open the second store");
    return false;
  }
  // The loser's paths warmed too: one conflict it is not timed on.
  if (auto r = loser->append_wait(actor_id{"warmup", "w", ns}, 0, {make_event("bench.appended", event_payload())});
      r || r.error().code() != aether::errc::version_conflict) {
    note("conflict: the warm-up append after version 0 of a written actor was not refused");
    return false;
  }
  std::vector<std::int64_t> plain;
  std::vector<std::int64_t> conflict;
  plain.reserve(static_cast<std::size_t>(actors));
  conflict.reserve(static_cast<std::size_t>(actors));
  for (std::int64_t i = 0; i < actors; ++i) {
    const actor_id id{"account", fmt::format("c{}", i), ns};
    auto start = bench_clock::now();
    auto won = env.store->append_wait(id, 0, {make_event("bench.appended", event_payload())});
    plain.push_back(nanos_since(start));
    if (!won) {
      note("conflict: the winner's append: {}", won.error().to_string());
      return false;
    }
    start = bench_clock::now();
    auto lost = loser->append_wait(id, 0, {make_event("bench.appended", event_payload())});
    conflict.push_back(nanos_since(start));
    if (lost || lost.error().code() != aether::errc::version_conflict || lost.error().value() != 1) {
      note("conflict: the loser's append: {}", lost ? std::string{"stored"} : lost.error().to_string());
      return false;
    }
  }
  const auto key = std::string{"conflict r1"};
  const auto params = param("actors", actors) + param("payload_bytes", payload_bytes);
  emit("conflict", key, "aether", "p50_us", percentile_us(conflict, 0.50), "us", params);
  emit("conflict", key, "aether", "p99_us", percentile_us(conflict, 0.99), "us", params);
  emit("conflict", key, "floor.append", "p50_us", percentile_us(plain, 0.50), "us", params);
  emit("conflict", key, "floor.append", "p99_us", percentile_us(plain, 0.99), "us", params);
  return true;
}

// -- growth: what the server keeps per stored write.

constexpr std::int64_t growth_actors = 10'000;

std::string growth_case(std::int64_t writes) { return fmt::format("server_growth writes={}", writes); }

std::string growth_stream(const bench_env& env, std::string_view impl) {
  if (impl == "aether") return aether::jetstream_event_store::stream_name(env.shared_namespace("growth"));
  return fmt::format("{}_raw_growth_{}", env.prefix, impl == "nats.c.subjects_10k" ? "s" : "w");
}

bool run_growth(bench_env& env, std::string_view impl, std::int64_t writes) {
  const auto key = growth_case(writes);
  if (impl == "aether") {
    const auto ns = env.shared_namespace("growth");
    if (auto r = env.store->prepare(ns); !r) {
      note("growth: {}", r.error().to_string());
      return false;
    }
    const auto actors = std::min(growth_actors, writes);
    const auto per_actor = std::max<std::int64_t>(1, writes / actors);
    append_driver driver{*env.store, ns, actors, per_actor};
    double secs = 0;
    if (!driver.run(secs)) return false;
    const auto stored = env.message_count(aether::jetstream_event_store::stream_name(ns));
    if (stored != static_cast<std::uint64_t>(actors * per_actor)) {
      note("growth: {} messages stored, expected {}", stored, actors * per_actor);
      return false;
    }
    // The layout the stream records, checked against what it holds: in the
    // per-actor layout the last message on an actor's own subject ends its
    // history. One direct get by subject: a read of a whole history would
    // load the stream's blocks into the server's memory measured next.
    const auto stream = aether::jetstream_event_store::stream_name(ns);
    auto recorded = env.store->layout(ns);
    if (!recorded) {
      note("growth: {}", recorded.error().to_string());
      return false;
    }
    std::string layout = *recorded == aether::event_layout::per_actor ? "per_actor" : "per_write";
    if (*recorded == aether::event_layout::per_actor) {
      const actor_id first{"account", "a0", ns};
      auto last = env.conn->direct_get_last(stream, aether::jetstream_event_store::actor_subject(first));
      const auto version = last ? last->header("Aether-Last-Version") : std::nullopt;
      if (!version || *version != std::to_string(per_actor)) {
        note("growth: the last write on {}'s subject names version {}, expected {}", first.to_string(),
             version ? std::string{*version} : std::string{"none"}, per_actor);
        return false;
      }
    }
    emit("server_growth", key, "aether", "events_per_s", static_cast<double>(actors * per_actor) / secs, "events/s",
         param("writes", actors * per_actor) + param("actors", actors) + param("layout", layout) +
             driver.unknown_params());
    return true;
  }
  const bool per_write = impl == "nats.c.subject_per_write";
  const auto stream = growth_stream(env, impl);
  const auto prefix = fmt::format("bench.{}", stream);
  if (!env.raw->add_stream(stream, prefix + ".>")) return false;
  async_acks acks;
  latency_log lat_log{static_cast<std::size_t>(writes)};
  acks.epoch = bench_clock::now();
  acks.latencies = &lat_log;
  auto js = env.raw->jetstream(growth_actors, &async_acks::on_ack, &acks);
  if (!js) return false;
  std::string payload(payload_bytes, 'x');
  const auto start = bench_clock::now();
  for (std::int64_t i = 0; i < writes; ++i) {
    const auto now = nanos_since(acks.epoch);
    std::memcpy(payload.data(), &now, sizeof now);
    const auto subject = fmt::format("{}.{}", prefix, per_write ? i : i % growth_actors);
    natsStatus s = NATS_OK;
    do {
      s = js_PublishAsync(js.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr);
    } while (s == NATS_TIMEOUT);
    if (s != NATS_OK) {
      note("growth {}: {}", impl, nats_failure(s, "publishing"));
      return false;
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::chrono::duration_cast<std::chrono::milliseconds>(run_deadline).count();
  if (auto s = js_PublishAsyncComplete(js.get(), &po); s != NATS_OK) {
    note("growth {}: {}", impl, nats_failure(s, "waiting for the acknowledgements"));
    return false;
  }
  const double secs = seconds_since(start);
  const auto stored = env.message_count(stream);
  if (acks.failed > 0 || stored != static_cast<std::uint64_t>(writes)) {
    note("growth {}: {} failed, {} stored, expected {}", impl, acks.failed.load(), stored, writes);
    return false;
  }
  emit("server_growth", key, impl, "events_per_s", static_cast<double>(writes) / secs, "events/s",
       param("writes", writes) + param("subjects", per_write ? writes : std::min(growth_actors, writes)));
  return true;
}

/// After a restart: waits until the growth stream answers with all `writes`.
int run_await_stream(const std::string& url, const std::string& prefix, std::string_view impl, std::int64_t writes,
                     std::int64_t since_ns) {
  bench_env env;
  env.prefix = prefix;
  const auto stream = growth_stream(env, impl);
  aether::nats::connect_options options;
  options.url = url;
  options.name = "bench-await";
  options.connect_timeout = 200ms;
  const auto deadline = bench_clock::now() + run_deadline;
  std::shared_ptr<aether::nats::connection> conn;
  while (bench_clock::now() < deadline) {
    if (!conn) {
      if (auto c = aether::nats::connection::connect(options)) conn = *c;
    }
    if (conn) {
      if (auto n = conn->stream_message_count(stream); n && *n == static_cast<std::uint64_t>(writes)) {
        const auto ms = static_cast<double>(aether::now_ns() - since_ns) / 1e6;
        emit("server_growth", growth_case(writes), impl, "restart_ms", ms, "ms", param("writes", writes));
        return 0;
      }
    }
    std::this_thread::sleep_for(2ms);
  }
  note("await_stream: {} did not answer with {} messages", stream, writes);
  return 1;
}

// -- activation: the first message to an event-sourced actor with a long
//    history, in a fresh actor system (stores and connection stay up, as on
//    a running node).

struct added {
  static constexpr std::string_view type_name = "bench.added";
  std::int64_t amount = 0;
};
AETHER_JSON_FIELDS(added, amount)

struct counter_state {
  std::int64_t count = 0;
  std::int64_t total = 0;
};
AETHER_JSON_FIELDS(counter_state, count, total)

struct get_total {};

std::int64_t amount_of(std::int64_t version) { return version % 7 + 1; }

class counter : public aether::event_sourced_actor<counter_state> {
public:
  counter() {
    apply([](counter_state& s, const added& e) {
      ++s.count;
      s.total += e.amount;
    });
    on([this](const get_total&, aether::context& ctx) { ctx.reply(state().total); });
  }
};

bool run_activation(bench_env& env, bool with_snapshot) {
  const auto events = scaled(10'000, env.scale);
  const auto ns = env.shared_namespace(with_snapshot ? "activation1" : "activation0");
  const actor_id id{"counter", with_snapshot ? "snap" : "plain", ns};
  std::int64_t expected_total = 0;
  for (std::int64_t v = 1; v <= events; ++v) expected_total += amount_of(v);
  const auto data = [](std::int64_t version) { return aether::json::encode(added{amount_of(version)}); };
  std::vector<std::uint64_t> sequences;
  if (!ensure_history(env, ns, id, events, 1, data, added::type_name, &sequences)) return false;
  // The snapshot a node would have taken a few events before the end.
  const auto snap_version = with_snapshot ? std::max<std::int64_t>(0, events - 10) : 0;
  if (snap_version > 0) {
    auto existing = env.snapshots->load_wait(id);
    if (!existing || !*existing) {
      // Only the process that wrote the history knows its sequences.
      if (sequences.empty()) {
        note("activation: the history exists without its snapshot");
        return false;
      }
      counter_state at_snapshot;
      for (std::int64_t v = 1; v <= snap_version; ++v) {
        ++at_snapshot.count;
        at_snapshot.total += amount_of(v);
      }
      const aether::snapshot s{static_cast<std::uint64_t>(snap_version),
                               sequences[static_cast<std::size_t>(snap_version - 1)], 1,
                               aether::json::encode(at_snapshot)};
      if (auto r = env.snapshots->save_wait(id, s); !r) {
        note("activation: saving the snapshot: {}", r.error().to_string());
        return false;
      }
    }
  } else {
    // The snapshot store opens the bucket once per namespace: not part of an activation.
    (void)env.snapshots->load_wait(actor_id{"counter", "none", ns});
  }

  auto p = std::make_shared<aether::persistence>();
  p->events = env.store;
  p->snapshots = env.snapshots;
  p->snapshot_on_passivate = false; // every run starts from the same stored state
  double elapsed_ms = 0;
  for (int run = 0; run < 2; ++run) { // the first, untimed, warms this process's paths
    runtime rt;
    aether::register_event_sourced<counter>(rt.system, "counter", p);
    const auto start = bench_clock::now();
    auto total = rt.system.ask<std::int64_t>(id, get_total{}, 60s).get();
    elapsed_ms = seconds_since(start) * 1e3;
    if (!total || *total != expected_total) {
      note("activation: {}",
           total ? fmt::format("total {}, expected {}", *total, expected_total) : total.error().to_string());
      return false;
    }
  }
  // What the two loads take on their own: the snapshot, then the events after it.
  auto start = bench_clock::now();
  auto snap = env.snapshots->load_wait(id);
  const double load_ms = seconds_since(start) * 1e3;
  const auto from = snap && *snap ? (*snap)->version + 1 : 1;
  const auto hint = snap && *snap ? (*snap)->sequence : 0;
  std::promise<expected<std::vector<aether::event>>> read;
  start = bench_clock::now();
  env.store->read(id, from, hint, [&](expected<std::vector<aether::event>> r) { read.set_value(std::move(r)); });
  (void)read.get_future().get();
  const double read_ms = seconds_since(start) * 1e3;

  const auto key = fmt::format("activation events={} snapshot={}", events, with_snapshot ? 1 : 0);
  const auto params = param("events", events) + param("snapshot", with_snapshot ? 1 : 0);
  emit("activation", key, "aether", "activation_ms", elapsed_ms, "ms", params);
  emit("activation", key, "aether", "snapshot_load_ms", load_ms, "ms", params + param("role", "explains"));
  emit("activation", key, "aether", "event_read_ms", read_ms, "ms", params + param("role", "explains"));
  return true;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --url nats://HOST:PORT --only "
               "append_writers|append_actors|append_raw|replay|activation|conflict|growth|await_stream "
               "[--prefix P] [--scale F] [--actors N] [--window N] [--mode same_bytes|plain] "
               "[--impl aether|same_decoder|count|nats.c.subjects_10k|nats.c.subject_per_write] [--events N] "
               "[--per-message N] [--snapshot 0|1] [--writes N] [--since UNIX_NS] [--ack-timeout-ms N]\n",
               argv0);
  return 2;
}

std::string random_prefix() {
  std::random_device device;
  return fmt::format("pb{:08x}", device());
}

} // namespace

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"aether_persistence_bench",
           "Usage: aether_persistence_bench --url nats://HOST:PORT\n"
           "         --only append_writers|append_actors|append_raw|replay|activation|conflict|growth|await_stream\n"
           "         [--prefix P] [--scale F] [--actors N] [--window N] [--mode same_bytes|plain]\n"
           "         [--impl aether|same_decoder|count|nats.c.subjects_10k|nats.c.subject_per_write]\n"
           "         [--events N] [--per-message N] [--snapshot 0|1] [--writes N] [--since UNIX_NS]\n"
           "         [--ack-timeout-ms N]\n"
           "One persistence workload, one side (Aether or raw nats.c) per process, against a nats-server with\n"
           "JetStream; results as JSON lines on stdout (bench/run.sh persistence runs them all).",
           "  0  the workload ran\n  1  the workload failed (a line on stderr says why)\n  2  bad arguments\n"})) {
    return *answered;
  }
  bench_env env;
  std::string only;
  std::string mode = "same_bytes";
  std::string impl = "aether";
  std::int64_t actors = 100;
  std::int64_t window = 100;
  std::int64_t events = 10'000;
  std::int64_t per_message = 1;
  bool snapshot = false;
  std::int64_t writes = 1'000'000;
  std::int64_t since_ns = 0;
  std::int64_t ack_timeout_ms = 0; // 0: the store's default
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (i + 1 >= argc) return usage(argv[0]);
    const std::string value = argv[++i];
    if (arg == "--url") {
      env.url = value;
    } else if (arg == "--only") {
      only = value;
    } else if (arg == "--prefix") {
      env.prefix = value;
    } else if (arg == "--scale") {
      env.scale = std::atof(value.c_str());
    } else if (arg == "--actors") {
      actors = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--window") {
      window = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--mode") {
      mode = value;
    } else if (arg == "--impl") {
      impl = value;
    } else if (arg == "--events") {
      events = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--per-message") {
      per_message = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--snapshot") {
      snapshot = value == "1";
    } else if (arg == "--writes") {
      writes = std::max(1LL, std::atoll(value.c_str()));
    } else if (arg == "--since") {
      since_ns = std::atoll(value.c_str());
    } else if (arg == "--ack-timeout-ms") {
      ack_timeout_ms = std::max(1LL, std::atoll(value.c_str()));
    } else {
      return usage(argv[0]);
    }
  }
  const bool growth = only == "growth" || only == "await_stream";
  if (env.url.empty() || env.scale <= 0 || (mode != "same_bytes" && mode != "plain") ||
      (!growth && impl != "aether" && impl != "same_decoder" && impl != "count") ||
      (growth && impl != "aether" && impl != "nats.c.subjects_10k" && impl != "nats.c.subject_per_write")) {
    return usage(argv[0]);
  }
  if (env.prefix.empty()) env.prefix = random_prefix();
  // Before any connection: the server is still starting.
  if (only == "await_stream") return run_await_stream(env.url, env.prefix, impl, writes, since_ns);

  aether::nats::connect_options options;
  options.url = env.url;
  options.name = "bench-aether";
  auto conn = aether::nats::connection::connect(options);
  if (!conn) {
    note("{}", conn.error().to_string());
    return 1;
  }
  env.conn = *conn;
  // As a node opens it: a second, send-asap connection for writes when few are in flight.
  options.name = "bench-aether-writes";
  options.send_asap = true;
  auto quick = aether::nats::connection::connect(options);
  if (!quick) {
    note("{}", quick.error().to_string());
    return 1;
  }
  // The per-actor layout (R1), whose server growth and throughput are measured.
  aether::jetstream_store_options so;
  so.layout = aether::event_layout::per_actor;
  // A short acknowledgement timeout makes appends of unknown outcome common:
  // it checks how the writers resolve them (not for measuring).
  if (ack_timeout_ms > 0) so.ack_timeout = std::chrono::milliseconds{ack_timeout_ms};
  auto store = aether::jetstream_event_store::open(env.conn, so, *quick);
  if (!store) {
    note("{}", store.error().to_string());
    return 1;
  }
  env.store = *store;
  env.snapshots = std::make_shared<aether::kv_snapshot_store>(env.conn);
  env.raw = raw_client::connect(env.url);
  if (!env.raw) return 1;

  bool ok = false;
  if (only == "append_writers") {
    ok = run_append_writers(env, actors);
  } else if (only == "append_actors") {
    ok = run_append_actors(env, actors);
  } else if (only == "append_raw") {
    ok = run_append_raw(env, window, mode);
  } else if (only == "replay") {
    ok = run_replay(env, impl, scaled(static_cast<double>(events), env.scale), per_message);
  } else if (only == "activation") {
    ok = run_activation(env, snapshot);
  } else if (only == "conflict") {
    ok = run_conflict(env);
  } else if (only == "growth") {
    ok = run_growth(env, impl, writes);
  } else {
    return usage(argv[0]);
  }
  if (env.conn->slow_consumer_events() != 0 || raw_client::slow_consumer_events() != 0) {
    note("slow consumer events: aether {}, nats.c {}", env.conn->slow_consumer_events(),
         raw_client::slow_consumer_events());
  }
  env.snapshots.reset();
  env.store.reset();
  env.cleanup();
  return ok ? 0 : 1;
}
