#pragma once

// The buses under test: the local bus with the memory store, and the NATS bus
// with the JetStream store on a real single nats-server. Each store hands
// what it stores to its bus, as a node wires them.

#include "store_fixtures.hpp"

#include <aether/persistence/event_bus.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace test {

using namespace std::chrono_literals;

inline void watch(aether::event_store& store, const std::shared_ptr<aether::event_bus>& bus) {
  store.watch_appends([weak = std::weak_ptr{bus}](const std::vector<aether::event>& events) {
    if (auto b = weak.lock()) b->stored(events);
  });
}

/// `bus` publishes and `store` persists; `sub()` is where the tests subscribe:
/// the same bus, or another node's.
struct bus_fixture_base {
  aether::thread_pool_executor pool{2, 8};
  std::shared_ptr<aether::event_bus> bus;
  std::shared_ptr<aether::event_store> store;
  std::shared_ptr<aether::event_bus> peer;

  aether::event_bus& sub() { return peer ? *peer : *bus; }

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

/// Collects what a subscription delivers.
class collector {
public:
  aether::event_bus::handler handler() {
    return [this](const aether::event& e) {
      std::lock_guard lock{mutex_};
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  /// Waits until at least `n` events arrived; false after `timeout`.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock{mutex_};
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
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
};

/// An event of actor `ns/type/key`.
inline aether::event bus_event(std::string_view ns, std::string_view type, std::string_view key, std::string event_type,
                               std::string data = "{}") {
  aether::event e;
  e.actor = aether::actor_id{type, key, ns};
  e.type = std::move(event_type);
  e.data = std::move(data);
  return e;
}

/// Lets events still on their way arrive, so a test can check none does.
inline void settle() { std::this_thread::sleep_for(300ms); }

} // namespace test
