#pragma once

// The buses under test: the local bus with the memory store, and the NATS bus
// with the JetStream store on a real single nats-server. Each store hands
// what it stores to its bus, as a node wires them.

#include "store_fixtures.hpp"

#include <aether/persistence/event_bus.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace test {

using namespace std::chrono_literals;

inline void watch(aether::event_store& store, const std::shared_ptr<aether::event_bus>& bus) {
  store.watch_appends([weak = std::weak_ptr{bus}](const std::vector<aether::event>& events) {
    if (auto b = weak.lock()) b->stored(events);
  });
}

/// Collects what a subscription delivers; sentinels (see `sync`) are
/// noted apart.
class collector {
public:
  aether::event_bus::handler handler() {
    return [this](const aether::event& e) {
      std::lock_guard lock{mutex_};
      if (auto it = e.metadata.find("sentinel"); it != e.metadata.end()) {
        sentinels_.insert(it->second);
      } else {
        events_.push_back(e);
      }
      cv_.notify_all();
    };
  }
  /// Waits until at least `n` events arrived; false after `timeout`.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock{mutex_};
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
  }
  /// Waits until the sentinel `id` arrived; false after `timeout`.
  bool wait_sentinel(const std::string& id, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock{mutex_};
    return cv_.wait_for(lock, timeout, [&] { return sentinels_.contains(id); });
  }
  std::vector<aether::event> events() {
    std::lock_guard lock{mutex_};
    return events_;
  }
  std::size_t size() {
    std::lock_guard lock{mutex_};
    return events_.size();
  }
  /// `type/key:event type` of each event, sorted.
  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& e : events())
      out.push_back(std::string{e.actor.type()} + "/" + std::string{e.actor.key()} + ":" + e.type);
    std::sort(out.begin(), out.end());
    return out;
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<aether::event> events_;
  std::set<std::string> sentinels_;
};

/// A token of an actor pattern made concrete: wildcards become `sentinel`.
inline std::string concrete(std::string_view token) {
  return token.empty() || token == "*" || token == ">" ? "sentinel" : std::string{token};
}

/// `bus` publishes and `store` persists; `sub()` is where the tests subscribe:
/// the same bus, or another node's.
struct bus_fixture_base {
  aether::thread_pool_executor pool{2, 8};
  std::shared_ptr<aether::event_bus> bus;
  std::shared_ptr<aether::event_store> store;
  std::shared_ptr<aether::event_bus> peer;
  /// The bus's own connection, on NATS.
  std::shared_ptr<aether::nats::connection> raw;

  aether::event_bus& sub() { return peer ? *peer : *bus; }

  /// Sends a sentinel event that `filter` lets through to namespace `ns`
  /// (as a persisted write when `stored`) and waits until each collector got
  /// it. Delivery keeps each publisher's order, so whatever was sent before
  /// has reached them by then, copies coming back from the server included:
  /// on NATS the sentinel goes out on the bus's own connection, without its
  /// origin, so it travels behind them.
  void sync(std::string_view ns, const aether::event_filter& filter, const std::vector<collector*>& collectors,
            bool stored = false) {
    static std::atomic<int> next{0};
    const auto id = std::to_string(next.fetch_add(1));
    const std::string_view pattern = filter.actor_pattern;
    const auto dot = pattern.find('.');
    const auto type = concrete(pattern.substr(0, dot));
    const auto key_token = dot == std::string_view::npos ? std::string_view{} : pattern.substr(dot + 1);
    // A fresh actor where the pattern allows one, so a persisted sentinel starts at version 1.
    const auto key = concrete(key_token) == "sentinel" ? "sentinel" + id : std::string{key_token};
    const std::string event_type = filter.event_types.empty() ? "sentinel" : filter.event_types.front();
    if (raw) {
      const auto payload =
          fmt::format(R"([{{"id":"s{}","version":1,"type":"{}","schema_version":1,"timestamp_ns":1,"data":null,)"
                      R"("metadata":{{"sentinel":"{}"}}}}])",
                      id, event_type, id);
      // The wire subjects, spelled out (docs/WIRE_FORMAT.md): a write in
      // the store's subject of the namespace as one token (the actor's, or
      // the write's in a per-write stream), a publish on the bus subject
      // ending in the namespace's tokens.
      std::string token{ns};
      std::replace(token.begin(), token.end(), '.', ':');
      const auto info =
          raw->request(fmt::format("$JS.API.STREAM.INFO.{}", aether::jetstream_event_store::stream_name(ns)), "",
                       std::chrono::seconds{5});
      const bool per_actor = info && info->data.find("layout per-actor") != std::string::npos;
      const auto subject = !stored     ? fmt::format("aether_bus.pub.{}.{}.1.{}", type, key, ns)
                           : per_actor ? fmt::format("aether.{}.ev.{}.{}", token, type, key)
                                       : fmt::format("aether.{}.ev.{}.{}.1", token, type, key);
      REQUIRE(raw->publish(subject, payload));
    } else {
      aether::event e;
      e.actor = aether::actor_id{type, key, ns};
      e.type = event_type;
      e.metadata["sentinel"] = id;
      if (stored) {
        REQUIRE(store->append_wait(e.actor, 0, {e}));
      } else {
        REQUIRE(bus->publish(ns, e));
      }
    }
    for (auto* c : collectors) REQUIRE_MESSAGE(c->wait_sentinel(id), "sentinel " << id << " did not arrive");
  }

  ~bus_fixture_base() {
    if (peer) peer->close();
    if (bus) bus->close();
    pool.stop();
    pool.join();
  }
};

struct local_bus : bus_fixture_base {
  static constexpr const char* name = "local";
  local_bus() {
    bus = std::make_shared<aether::local_event_bus>(pool);
    store = std::make_shared<aether::memory_event_store>();
    watch(*store, bus);
  }
};

inline std::shared_ptr<aether::nats_event_bus>
open_bus(aether::executor& ex, std::shared_ptr<aether::nats::connection> conn, int replicas = 1) {
  auto b = aether::nats_event_bus::open(ex, std::move(conn), aether::nats_bus_options{replicas});
  REQUIRE_MESSAGE(b, (b ? "" : b.error().to_string()));
  return *b;
}

/// A NATS bus and a JetStream store wired as a node wires them.
inline std::shared_ptr<aether::event_store> open_watched_store(std::shared_ptr<aether::nats::connection> conn,
                                                               const std::shared_ptr<aether::nats_event_bus>& bus,
                                                               int replicas = 1) {
  aether::jetstream_store_options o;
  o.origin = bus->origin();
  o.replicas = replicas;
  std::shared_ptr<aether::event_store> s = open_store(std::move(conn), o);
  watch(*s, bus);
  return s;
}

struct nats_bus : bus_fixture_base {
  static constexpr const char* name = "nats";
  aether::testing::nats_server server;
  std::shared_ptr<aether::nats::connection> conn = connect(server.url());
  nats_bus() {
    raw = conn;
    auto b = open_bus(pool, conn);
    store = open_watched_store(conn, b);
    bus = std::move(b);
  }
};

/// Subscribers on a second node (its own connection and bus) on the same server.
struct nats_bus_across_nodes : nats_bus {
  static constexpr const char* name = "nats-across-nodes";
  std::shared_ptr<aether::nats::connection> peer_conn = connect(server.url());
  nats_bus_across_nodes() { peer = open_bus(pool, peer_conn); }
};

/// Whether namespace `ns` matches `pattern` by NATS's subject rules (`*` one
/// token, `>` one or more at the end): the reference the buses are held to,
/// written apart from theirs.
inline bool reference_match(std::string_view pattern, std::string_view ns) {
  const auto split = [](std::string_view s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
      const auto dot = s.find('.', start);
      out.emplace_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
      if (dot == std::string_view::npos) return out;
      start = dot + 1;
    }
  };
  const auto p = split(pattern);
  const auto n = split(ns);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return n.size() > i;
    if (i >= n.size() || (p[i] != "*" && p[i] != n[i])) return false;
  }
  return p.size() == n.size();
}

/// Namespaces that tempt a bus to mix them up: prefixes of each other, the
/// same letters with `.`, `_` or `-` between them, deep and long ones.
inline const std::vector<std::string>& adversarial_namespaces() {
  static const std::vector<std::string> all{
      "acme",        "acme.billing",  "acme_billing",  "acme-billing",  "acme.billing.eu",
      "acme.orders", "acme.b_illing", "acme_.billing", "acme._billing", "globex.billing",
      "billing",     "a.b.c.d.e.f",   "a_b.c",         "a.b_c",         "x." + std::string(40, 'y'),
  };
  return all;
}

/// Namespace patterns for the matrix: exact, `*` and `>` at every place.
inline const std::vector<std::string>& matrix_patterns() {
  static const std::vector<std::string> all{
      "acme",         "acme.*",       "acme.>",      "*.billing", "*",       ">",           "*.*",           "*.>",
      "acme.billing", "acme_billing", "*.billing.>", "acme.*.eu", "a.*.c.>", "*.*.*.*.*.*", "acme._billing", "x.>",
  };
  return all;
}

/// An event of actor `ns/type/key`.
inline aether::event bus_event(std::string_view ns, std::string_view type, std::string_view key, std::string event_type,
                               std::string data = "{}") {
  aether::event e;
  e.actor = aether::actor_id{type, key, ns};
  e.type = std::move(event_type);
  e.data = std::move(data);
  return e;
}

} // namespace test
