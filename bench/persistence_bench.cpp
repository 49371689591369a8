// Aether's persistence benchmarks: the JetStream event store beside raw nats.c
// doing the same work on the same nats-server, in the same run.
//
// Prints one flat JSON object per line on stdout:
//   {"bench":B,"impl":"aether"|"nats.c","metric":M,"value":V,"unit":U,<params>}
// and per-run diagnostics on stderr.
//
// Usage: aether_persistence_bench --url nats://127.0.0.1:PORT [--only append|replay|activation] [--scale F]
//
// append:     actors appending 128-byte events one at a time each, many
//              actors at once (1, 100, 10,000); beside it raw js_Publish
//              (sync, beside 1 actor) and js_PublishAsync with as many in
//              flight as the actors keep (async: plain, to one subject;
//              async_fenced: a subject per write with expect-empty and a
//              message id, the way the store writes, which shows the
//              server's share of the fence).
// replay:      one actor's history read back (10,000 and 100,000 events,
//              1 and 100 events per stored message); beside it a raw ordered
//              consumer on the same stream and subjects.
// activation:  the first message to an event-sourced actor with 10,000
//              events, without and with a snapshot 10 events before the end.
//
// Every run works in namespaces and streams of its own (a random prefix) and
// deletes them at the end. Streams use file storage: on nats-server 2.9.10 a
// memory stream scans for a subject's last message on every conditional
// publish.
#include "bench_report.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/persistence/snapshot_store.hpp>
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
  static std::optional<raw_client> connect(const std::string& url) {
    natsOptions* opts = nullptr;
    if (natsOptions_Create(&opts) != NATS_OK) return std::nullopt;
    nats_ptr<natsOptions> guard{opts};
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetName(opts, "bench-raw");
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
  double scale = 1;
  std::string prefix; // namespaces, streams and subjects of this run start with it
  std::shared_ptr<aether::nats::connection> conn;
  std::shared_ptr<aether::jetstream_event_store> store;
  std::shared_ptr<aether::kv_snapshot_store> snapshots;
  std::optional<raw_client> raw;
  std::vector<std::string> streams;
  std::vector<std::string> buckets;

  /// A namespace of this run, whose stream is deleted at the end.
  std::string namespace_for(std::string_view what) {
    auto ns = fmt::format("{}_{}", prefix, what);
    streams.push_back(aether::jetstream_event_store::stream_name(ns));
    return ns;
  }
  /// A raw stream of this run, deleted at the end: its name and the
  /// subject prefix `p` it captures (as `p.>`).
  std::optional<std::pair<std::string, std::string>> raw_stream(std::string_view what) {
    auto name = fmt::format("{}_raw_{}", prefix, what);
    auto subject = fmt::format("bench.{}.raw.{}", prefix, what);
    if (!raw->add_stream(name, subject + ".>")) return std::nullopt;
    streams.push_back(name);
    return std::pair{name, subject};
  }

  void cleanup() {
    for (const auto& s : streams) {
      if (auto r = conn->delete_stream(s); !r && r.error().code() != aether::errc::not_found) {
        note("cleanup: {}", r.error().to_string());
      }
    }
    for (const auto& b : buckets) {
      if (auto r = conn->delete_bucket(b); !r && r.error().code() != aether::errc::not_found) {
        note("cleanup: {}", r.error().to_string());
      }
    }
  }

  void check_count(const std::string& stream, std::uint64_t expected_messages) {
    auto n = conn->stream_message_count(stream);
    if (!n) {
      note("  {}: {}", stream, n.error().to_string());
    } else if (*n != expected_messages) {
      note("  {}: {} messages stored, expected {}", stream, *n, expected_messages);
    }
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

// -- append: actors appending one event at a time, each after the previous
//    one's acknowledgement, all actors at once.

/// Drives `actors` actors through `per_actor` sequential appends each. The
/// next append of an actor is issued from its previous one's callback (on a
/// store or nats.c thread): the store's own cost, without an executor hop.
class append_driver {
public:
  append_driver(aether::event_store& store, std::string_view ns, std::int64_t actors, std::int64_t per_actor)
      : store_{store}, per_actor_{per_actor}, latencies_{static_cast<std::size_t>(actors * per_actor)} {
    for (std::int64_t i = 0; i < actors; ++i) {
      actors_.push_back(actor{actor_id{"account", fmt::format("a{}", i), ns}, 0, {}});
    }
  }

  /// Runs to the end; false when an append failed or the run timed out.
  bool run(double& seconds) {
    const auto start = bench_clock::now();
    for (std::size_t i = 0; i < actors_.size(); ++i) issue(i);
    const bool finished = finished_.wait_for(static_cast<std::int64_t>(actors_.size()), run_deadline);
    seconds = seconds_since(start);
    if (!finished) note("  append: timed out");
    std::lock_guard lock{failure_mutex_};
    if (failure_) note("  append: {} appends failed, the first: {}", failures_, failure_->to_string());
    return finished && !failure_;
  }

  std::vector<std::int64_t> latencies() { return latencies_.take(); }

private:
  struct actor {
    actor_id id;
    std::int64_t version = 0;
    bench_clock::time_point sent;
  };

  // Each actor's state is touched by one append chain at a time.
  void issue(std::size_t i) {
    auto& a = actors_[i];
    std::vector<aether::event> events;
    events.push_back(make_event("bench.appended", payload_));
    a.sent = bench_clock::now();
    store_.append(a.id, static_cast<std::uint64_t>(a.version), std::move(events),
                  [this, i](expected<aether::append_result> r) { on_stored(i, r); });
  }

  void on_stored(std::size_t i, const expected<aether::append_result>& r) {
    auto& a = actors_[i];
    latencies_.record(nanos_since(a.sent));
    if (!r) {
      {
        std::lock_guard lock{failure_mutex_};
        ++failures_;
        if (!failure_) failure_ = r.error();
      }
      finished_.add(); // this actor stops
      return;
    }
    if (++a.version < per_actor_) {
      issue(i);
    } else {
      finished_.add();
    }
  }

  aether::event_store& store_;
  std::int64_t per_actor_;
  std::string payload_ = event_payload();
  std::vector<actor> actors_;
  latency_log latencies_;
  countdown finished_;
  std::mutex failure_mutex_;
  std::optional<aether::error> failure_;
  std::int64_t failures_ = 0;
};

bool run_aether_append(bench_env& env, std::int64_t actors, std::int64_t per_actor) {
  const auto ns = env.namespace_for(fmt::format("append{}", actors));
  if (auto r = env.store->prepare(ns); !r) {
    note("append: {}", r.error().to_string());
    return false;
  }
  // Warm up the connection, the store's paths and the server's stream.
  constexpr std::int64_t warmup = 200;
  auto warm = write_history(
      *env.store, actor_id{"warmup", "w", ns}, warmup, 1, 1, [](std::int64_t) { return event_payload(); },
      "bench.appended");
  if (!warm) {
    note("append warmup: {}", warm.error().to_string());
    return false;
  }
  append_driver driver{*env.store, ns, actors, per_actor};
  double secs = 0;
  const bool ok = driver.run(secs);
  auto lat = driver.latencies();
  const auto total = actors * per_actor;
  note("append aether actors={} events={}: {:.3f} s, {} latencies", actors, total, secs, lat.size());
  env.check_count(aether::jetstream_event_store::stream_name(ns), static_cast<std::uint64_t>(total + warmup));
  if (!ok) return false;
  const auto params = param("actors", actors) + param("events", total) + param("payload_bytes", payload_bytes);
  emit("append", "aether", "events_per_s", static_cast<double>(total) / secs, "events/s", params);
  emit("append", "aether", "p50_us", percentile_us(lat, 0.50), "us", params);
  emit("append", "aether", "p99_us", percentile_us(lat, 0.99), "us", params);
  return true;
}

/// Raw async publish: what the ack handler needs.
struct async_acks {
  bench_clock::time_point epoch;
  latency_log* latencies = nullptr;
  std::atomic<std::int64_t> acked{0};
  std::atomic<std::int64_t> failed{0};

  static void on_ack(jsCtx*, natsMsg* m, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto& self = *static_cast<async_acks*>(closure);
    // The send time rides in the payload's first bytes.
    std::int64_t sent = 0;
    if (natsMsg_GetDataLength(m) >= static_cast<int>(sizeof sent)) std::memcpy(&sent, natsMsg_GetData(m), sizeof sent);
    self.latencies->record(nanos_since(self.epoch) - sent);
    if (pa != nullptr && pae == nullptr) {
      self.acked.fetch_add(1, std::memory_order_relaxed);
    } else {
      self.failed.fetch_add(1, std::memory_order_relaxed);
    }
    natsMsg_Destroy(m);
  }
};

/// Raw async publishes with up to `window` in flight: plain (all on one
/// subject), or `fenced` the way the store writes (a subject per write,
/// expect-empty and a message id), which tells the server's share of the
/// fence from the client's.
bool run_raw_async(bench_env& env, std::int64_t window, std::int64_t total, bool fenced) {
  const std::string_view mode = fenced ? "async_fenced" : "async";
  auto stream = env.raw_stream(fmt::format("{}{}", mode, window));
  if (!stream) return false;
  latency_log lat_log{static_cast<std::size_t>(total)};
  async_acks acks;
  acks.epoch = bench_clock::now();
  acks.latencies = &lat_log;
  auto js = env.raw->jetstream(window, &async_acks::on_ack, &acks);
  if (!js) return false;
  std::string payload(payload_bytes, 'x');
  const auto plain_subject = stream->second + ".all";
  const auto start = bench_clock::now();
  for (std::int64_t i = 0; i < total; ++i) {
    const auto sent = nanos_since(acks.epoch);
    std::memcpy(payload.data(), &sent, sizeof sent);
    natsStatus s = NATS_OK;
    if (fenced) {
      const auto subject = fmt::format("{}.{}", stream->second, i);
      const auto msg_id = fmt::format("{}-{}", env.prefix, i);
      natsMsg* m = nullptr;
      s = natsMsg_Create(&m, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", "0");
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id.c_str());
      while (s == NATS_OK || s == NATS_TIMEOUT) {
        s = js_PublishMsgAsync(js.get(), &m, nullptr);
        if (s != NATS_TIMEOUT) break; // the window stayed full for the whole stall wait
      }
      natsMsg_Destroy(m); // null once the library took it
    } else {
      do {
        s = js_PublishAsync(js.get(), plain_subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr);
      } while (s == NATS_TIMEOUT);
    }
    if (s != NATS_OK) {
      note("raw {}: {}", mode, nats_failure(s, "publishing"));
      return false;
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::chrono::duration_cast<std::chrono::milliseconds>(run_deadline).count();
  const auto s = js_PublishAsyncComplete(js.get(), &po);
  const double secs = seconds_since(start);
  if (s != NATS_OK) {
    note("raw {}: {}", mode, nats_failure(s, "waiting for the acknowledgements"));
    return false;
  }
  // The handler of the last ack may still be running.
  for (auto until = bench_clock::now() + 5s; acks.acked + acks.failed < total && bench_clock::now() < until;) {
    std::this_thread::sleep_for(1ms);
  }
  auto lat = lat_log.take();
  note("append nats.c {} window={} messages={}: {:.3f} s, {} acked, {} failed", mode, window, total, secs,
       acks.acked.load(), acks.failed.load());
  env.check_count(stream->first, static_cast<std::uint64_t>(total));
  if (acks.failed > 0) return false;
  const auto params =
      param("mode", mode) + param("window", window) + param("events", total) + param("payload_bytes", payload_bytes);
  emit("append", "nats.c", "events_per_s", static_cast<double>(total) / secs, "events/s", params);
  emit("append", "nats.c", "p50_us", percentile_us(lat, 0.50), "us", params);
  emit("append", "nats.c", "p99_us", percentile_us(lat, 0.99), "us", params);
  return true;
}

bool run_raw_sync(bench_env& env, std::int64_t total) {
  auto stream = env.raw_stream("sync");
  if (!stream) return false;
  auto js = env.raw->jetstream();
  if (!js) return false;
  const std::string payload(payload_bytes, 'x');
  const auto subject = stream->second + ".all";
  std::vector<std::int64_t> lat;
  lat.reserve(static_cast<std::size_t>(total));
  const auto start = bench_clock::now();
  for (std::int64_t i = 0; i < total; ++i) {
    const auto sent = bench_clock::now();
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const auto s =
        js_Publish(&ack, js.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr, &jerr);
    lat.push_back(nanos_since(sent));
    jsPubAck_Destroy(ack);
    if (s != NATS_OK) {
      note("raw sync: {} (JetStream error {})", nats_failure(s, "publishing"), static_cast<int>(jerr));
      return false;
    }
  }
  const double secs = seconds_since(start);
  note("append nats.c sync messages={}: {:.3f} s", total, secs);
  env.check_count(stream->first, static_cast<std::uint64_t>(total));
  const auto params = param("mode", "sync") + param("events", total) + param("payload_bytes", payload_bytes);
  emit("append", "nats.c", "events_per_s", static_cast<double>(total) / secs, "events/s", params);
  emit("append", "nats.c", "p50_us", percentile_us(lat, 0.50), "us", params);
  emit("append", "nats.c", "p99_us", percentile_us(lat, 0.99), "us", params);
  return true;
}

bool run_append(bench_env& env) {
  const auto total = scaled(100'000, env.scale);
  for (const std::int64_t actors : {1, 100, 10'000}) {
    const auto per_actor = std::max<std::int64_t>(1, total / actors);
    if (!run_aether_append(env, actors, per_actor)) return false;
    // Raw nats.c beside it: one at a time beside one actor, else as many in
    // flight as the actors keep in flight.
    const bool ok = actors == 1 ? run_raw_sync(env, per_actor)
                                : run_raw_async(env, actors, actors * per_actor, false) &&
                                      run_raw_async(env, actors, actors * per_actor, true);
    if (!ok) return false;
  }
  return true;
}

// -- replay: one actor's whole history, through the store and through a raw
//    ordered consumer on the same stream.

/// A raw ordered push consumer reading everything on `filter`.
struct raw_replay {
  std::atomic<std::int64_t> messages{0};
  std::atomic<std::int64_t> bytes{0};
  std::atomic<bool> failed{false};
  std::promise<void> done;
  std::atomic<bool> finished{false};
  std::promise<void> closed; // nats.c calls nothing more after this

  static void on_closed(void* closure) { static_cast<raw_replay*>(closure)->closed.set_value(); }

  static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto& self = *static_cast<raw_replay*>(closure);
    self.messages.fetch_add(1, std::memory_order_relaxed);
    self.bytes.fetch_add(natsMsg_GetDataLength(m), std::memory_order_relaxed);
    jsMsgMetaData* meta = nullptr;
    bool last = false;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      last = meta->NumPending == 0;
      jsMsgMetaData_Destroy(meta);
    } else {
      self.failed = true;
      last = true;
    }
    natsMsg_Destroy(m);
    if (last && !self.finished.exchange(true)) self.done.set_value();
  }
};

/// Seconds to read the stream's messages on `filter`, or nullopt.
std::optional<double> time_raw_replay(bench_env& env, const std::string& stream, const std::string& filter,
                                      std::int64_t expected_messages) {
  auto js = env.raw->jetstream();
  if (!js) return std::nullopt;
  raw_replay r;
  auto done = r.done.get_future();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const auto start = bench_clock::now();
  if (auto s = js_Subscribe(&sub, js.get(), filter.c_str(), &raw_replay::on_message, &r, nullptr, &so, &jerr);
      s != NATS_OK) {
    note("raw replay: {} (JetStream error {})", nats_failure(s, "subscribing"), static_cast<int>(jerr));
    return std::nullopt;
  }
  nats_ptr<natsSubscription> owned{sub};
  auto closed = r.closed.get_future();
  natsSubscription_SetOnCompleteCB(sub, &raw_replay::on_closed, &r);
  const bool in_time = done.wait_for(run_deadline) == std::future_status::ready;
  const double secs = seconds_since(start);
  std::int64_t dropped = 0;
  natsSubscription_GetDropped(sub, &dropped);
  natsSubscription_Unsubscribe(sub);
  if (closed.wait_for(10s) != std::future_status::ready) {
    note("raw replay: the subscription did not close");
    std::abort(); // its callback may still run on `r`
  }
  if (!in_time || r.failed || r.messages != expected_messages || dropped != 0) {
    note("raw replay: {} of {} messages, {} dropped{}", r.messages.load(), expected_messages, dropped,
         in_time ? "" : ", timed out");
    return std::nullopt;
  }
  return secs;
}

bool run_replay_case(bench_env& env, std::int64_t events, std::int64_t per_message) {
  const auto ns = env.namespace_for(fmt::format("replay{}x{}", events, per_message));
  if (auto r = env.store->prepare(ns); !r) {
    note("replay: {}", r.error().to_string());
    return false;
  }
  const actor_id actor{"ledger", "r", ns};
  const auto prep_start = bench_clock::now();
  auto written = write_history(
      *env.store, actor, events, per_message, 1'000, [](std::int64_t) { return event_payload(); }, "bench.appended");
  if (!written) {
    note("replay: writing the history: {}", written.error().to_string());
    return false;
  }
  const auto messages = static_cast<std::int64_t>(written->size());
  const auto stream = aether::jetstream_event_store::stream_name(ns);
  const auto filter = aether::jetstream_event_store::actor_filter(actor);
  note("replay events={} events_per_msg={}: wrote {} messages in {:.3f} s", events, per_message, messages,
       seconds_since(prep_start));

  constexpr int runs = 3; // the median of these; the two sides take turns
  std::vector<double> aether_secs;
  std::vector<double> raw_secs;
  for (int run = 0; run < runs; ++run) {
    const auto start = bench_clock::now();
    auto read = env.store->read_wait(actor, 1);
    const double secs = seconds_since(start);
    if (!read || static_cast<std::int64_t>(read->size()) != events) {
      note("replay aether: {}",
           read ? fmt::format("{} events, expected {}", read->size(), events) : read.error().to_string());
      return false;
    }
    aether_secs.push_back(secs);
    auto raw = time_raw_replay(env, stream, filter, messages);
    if (!raw) return false;
    raw_secs.push_back(*raw);
    note("  run {}: aether {:.4f} s, nats.c {:.4f} s", run + 1, secs, *raw);
  }
  const double a = median(aether_secs);
  const double n = median(raw_secs);
  const auto params = param("events", events) + param("events_per_msg", per_message);
  emit("replay", "aether", "events_per_s", static_cast<double>(events) / a, "events/s", params);
  emit("replay", "nats.c", "events_per_s", static_cast<double>(events) / n, "events/s", params);
  emit("replay", "nats.c", "msgs_per_s", static_cast<double>(messages) / n, "msg/s", params);
  return true;
}

bool run_replay(bench_env& env) {
  for (const double base : {10'000.0, 100'000.0}) {
    const auto events = scaled(base, env.scale);
    for (const std::int64_t per_message : {1, 100}) {
      if (!run_replay_case(env, events, std::min(per_message, events))) return false;
    }
  }
  return true;
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

/// A node-like setup: a thread per core, default shards.
struct runtime {
  runtime() = default;
  ~runtime() { aether::close_and_join(system, pool); }
  aether::thread_pool_executor pool{worker_count(), aether::system_config{}.shard_count};
  aether::actor_system system{aether::system_config{}, pool};
};

/// Prints what an activation's loads take on their own: the snapshot, then
/// the events after it (medians).
void activation_breakdown(bench_env& env, const actor_id& id, int runs) {
  std::vector<double> load_ms;
  std::vector<double> read_ms;
  std::size_t events_read = 0;
  for (int run = 0; run < runs; ++run) {
    auto start = bench_clock::now();
    auto snap = env.snapshots->load_wait(id);
    load_ms.push_back(seconds_since(start) * 1e3);
    const auto from = snap && *snap ? (*snap)->version + 1 : 1;
    const auto hint = snap && *snap ? (*snap)->sequence : 0;
    std::promise<expected<std::vector<aether::event>>> read;
    start = bench_clock::now();
    env.store->read(id, from, hint, [&](expected<std::vector<aether::event>> r) { read.set_value(std::move(r)); });
    auto events = read.get_future().get();
    read_ms.push_back(seconds_since(start) * 1e3);
    if (events) events_read = events->size();
  }
  note("  alone: snapshot load {:.3f} ms, read of the {} events after it {:.3f} ms (medians)", median(load_ms),
       events_read, median(read_ms));
}

bool run_activation(bench_env& env) {
  const auto events = scaled(10'000, env.scale);
  const auto ns = env.namespace_for("activation");
  env.buckets.push_back(aether::kv_snapshot_store::bucket_name(ns));
  if (auto r = env.store->prepare(ns); !r) {
    note("activation: {}", r.error().to_string());
    return false;
  }
  std::int64_t expected_total = 0;
  for (std::int64_t v = 1; v <= events; ++v) expected_total += amount_of(v);

  const auto data = [](std::int64_t version) { return aether::json::encode(added{amount_of(version)}); };
  std::vector<std::uint64_t> snap_sequences;
  for (const std::string_view key : {"plain", "snap"}) {
    auto written = write_history(*env.store, actor_id{"counter", key, ns}, events, 1, 1'000, data, added::type_name);
    if (!written) {
      note("activation: writing the history: {}", written.error().to_string());
      return false;
    }
    if (key == "snap") snap_sequences = std::move(*written);
  }
  // The snapshot a node would have taken a few events before the end.
  const auto snap_version = std::max<std::int64_t>(0, events - 10);
  counter_state at_snapshot;
  for (std::int64_t v = 1; v <= snap_version; ++v) {
    ++at_snapshot.count;
    at_snapshot.total += amount_of(v);
  }
  if (snap_version > 0) {
    const aether::snapshot s{static_cast<std::uint64_t>(snap_version),
                             snap_sequences[static_cast<std::size_t>(snap_version - 1)], 1,
                             aether::json::encode(at_snapshot)};
    if (auto r = env.snapshots->save_wait(actor_id{"counter", "snap", ns}, s); !r) {
      note("activation: saving the snapshot: {}", r.error().to_string());
      return false;
    }
  }
  // The snapshot store opens the bucket once per namespace: not part of an activation.
  (void)env.snapshots->load_wait(actor_id{"counter", "none", ns});

  auto p = std::make_shared<aether::persistence>();
  p->events = env.store;
  p->snapshots = env.snapshots;
  p->snapshot_on_passivate = false; // every run starts from the same stored state
  constexpr int runs = 5;
  for (const bool with_snapshot : {false, true}) {
    const actor_id id{"counter", with_snapshot ? "snap" : "plain", ns};
    std::vector<double> ms;
    for (int run = 0; run < runs; ++run) {
      runtime rt;
      aether::register_event_sourced<counter>(rt.system, "counter", p);
      const auto start = bench_clock::now();
      auto total = rt.system.ask<std::int64_t>(id, get_total{}, 60s).get();
      const double elapsed = seconds_since(start) * 1e3;
      if (!total || *total != expected_total) {
        note("activation: {}",
             total ? fmt::format("total {}, expected {}", *total, expected_total) : total.error().to_string());
        return false;
      }
      ms.push_back(elapsed);
    }
    note("activation events={} snapshot={}: {:.3f} ms", events, with_snapshot ? snap_version : 0, fmt::join(ms, " "));
    activation_breakdown(env, id, runs);
    emit("activation", "aether", "activation_ms", median(ms), "ms",
         param("events", events) + param("snapshot", with_snapshot ? 1 : 0));
  }
  return true;
}

std::string random_prefix() {
  std::random_device device;
  return fmt::format("pb{:08x}", device());
}

} // namespace

int main(int argc, char** argv) {
  std::string url;
  std::string only;
  double scale = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (arg == "--url" && i + 1 < argc) {
      url = argv[++i];
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--scale" && i + 1 < argc) {
      scale = std::atof(argv[++i]);
    } else {
      url.clear();
      break;
    }
  }
  if (url.empty()) {
    std::fprintf(stderr, "usage: %s --url nats://HOST:PORT [--only append|replay|activation] [--scale F]\n", argv[0]);
    return 2;
  }
  if (scale <= 0) {
    std::fprintf(stderr, "--scale must be positive\n");
    return 2;
  }

  bench_env env;
  env.scale = scale;
  env.prefix = random_prefix();
  aether::nats::connect_options options;
  options.url = url;
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
  auto store = aether::jetstream_event_store::open(env.conn, {}, *quick);
  if (!store) {
    note("{}", store.error().to_string());
    return 1;
  }
  env.store = *store;
  env.snapshots = std::make_shared<aether::kv_snapshot_store>(env.conn);
  env.raw = raw_client::connect(url);
  if (!env.raw) return 1;
  note("run prefix {}", env.prefix);

  auto selected = [&](std::string_view name) { return only.empty() || only == name; };
  bool ok = true;
  if (ok && selected("append")) ok = run_append(env);
  if (ok && selected("replay")) ok = run_replay(env);
  if (ok && selected("activation")) ok = run_activation(env);

  note("slow consumer events: aether {}, nats.c {}", env.conn->slow_consumer_events(),
       raw_client::slow_consumer_events());
  env.snapshots.reset();
  env.store.reset();
  env.cleanup();
  return ok ? 0 : 1;
}
