#include "node_ops.hpp"
#include "sd_notify.hpp"
#include "services.hpp"
#include "shard_router.hpp"
#include "state_service.hpp"

#include <aether/cluster/membership.hpp>
#include <aether/cluster/memory_control_log.hpp>
#include <aether/cluster/memory_heartbeat_transport.hpp>
#include <aether/cluster/nats_control_log.hpp>
#include <aether/cluster/nats_heartbeat_transport.hpp>
#include <aether/cluster/node.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/log.hpp>
#include <aether/runtime/signal_waiter.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace aether {

namespace {

/// The connections to NATS, or none for the embedded default: one batching
/// publishes for throughput, one sending each at once for latency.
struct connections {
  std::shared_ptr<nats::connection> batched;
  std::shared_ptr<nats::connection> quick;
};

connections connect(const node_config& c) {
  if (c.nats_url.empty()) return {};
  nats::connect_options o;
  o.url = c.nats_url;
  o.name = "aether-node";
  o.security = c.nats_security;
  auto batched = nats::connection::connect(o);
  if (!batched) throw startup_error{batched.error()};
  o.name = "aether-node-quick";
  o.send_asap = true;
  auto quick = nats::connection::connect(o);
  if (!quick) throw startup_error{quick.error()};
  return {*batched, *quick};
}

/// The local bus, or the NATS bus (on the quick connection: an event is one
/// message, and its subscribers are waiting).
std::shared_ptr<event_bus> open_bus(const node_config& c, executor& ex, const connections& conns) {
  if (!conns.quick) return std::make_shared<local_event_bus>(ex);
  auto bus = nats_event_bus::open(ex, conns.quick, nats_bus_options{c.replicas});
  if (!bus) throw startup_error{bus.error()};
  return *bus;
}

/// The stores of the embedded default, or JetStream's; what they store
/// reaches the bus.
std::shared_ptr<persistence> open_stores(const node_config& c, const connections& conns,
                                         const std::shared_ptr<event_bus>& bus) {
  auto p = std::make_shared<persistence>();
  p->snapshot_every = c.snapshot_every;
  if (!conns.batched) {
    p->events = std::make_shared<memory_event_store>();
    p->snapshots = std::make_shared<memory_snapshot_store>();
  } else {
    jetstream_store_options js;
    js.replicas = c.replicas;
    js.origin = static_cast<const nats_event_bus&>(*bus).origin();
    auto events = jetstream_event_store::open(conns.batched, js, conns.quick);
    if (!events) throw startup_error{events.error()};
    p->events = *events;
    p->snapshots = std::make_shared<kv_snapshot_store>(conns.batched, c.replicas);
  }
  p->events->watch_appends([weak = std::weak_ptr{bus}](const std::vector<event>& events) {
    if (auto b = weak.lock()) b->stored(events);
  });
  return p;
}

/// The membership's control log and heartbeats: on NATS, or in memory for
/// the one-node cluster of the embedded default.
std::unique_ptr<membership> open_membership(const node_config& c, executor& ex, const connections& conns,
                                            membership::incarnation_source incarnations) {
  std::shared_ptr<control_log> log;
  std::shared_ptr<heartbeat_transport> heartbeats;
  if (!conns.batched) {
    log = std::make_shared<memory_control_log>();
    heartbeats = std::make_shared<memory_heartbeat_transport>();
  } else {
    auto nats_log = nats_control_log::open(
        conns.batched, nats_control_options{c.cluster.name, c.cluster.replicas, c.cluster.max_control_messages});
    if (!nats_log) throw startup_error{nats_log.error()};
    log = *nats_log;
    heartbeats = std::make_shared<nats_heartbeat_transport>(conns.quick, c.cluster.name);
  }
  // The last lane: the cluster's strand.
  return std::make_unique<membership>(ex, ex.lane_count() - 1, std::move(log), std::move(heartbeats), c.cluster,
                                      std::move(incarnations));
}

/// Waits on the pool (never sleeping on the caller's thread) until the
/// system is idle or `timeout` passes.
bool wait_until_idle(actor_system& system, executor& ex, std::chrono::milliseconds timeout) {
  if (system.idle()) return true;
  auto idle = std::make_shared<std::promise<void>>();
  auto done = idle->get_future();
  auto timer = std::make_shared<std::optional<executor::timer_id>>();
  ex.post(0, [&system, &ex, idle, timer] {
    *timer = ex.start_timer(0, std::chrono::milliseconds{1}, std::chrono::milliseconds{1}, [&system, &ex, idle, timer] {
      if (!timer->has_value() || !system.idle()) return;
      ex.cancel_timer(0, **timer);
      timer->reset();
      idle->set_value();
    });
  });
  const bool ok = done.wait_for(timeout) == std::future_status::ready;
  if (!ok) {
    ex.post(0, [&ex, timer] {
      if (timer->has_value()) ex.cancel_timer(0, **timer);
      timer->reset();
    });
  }
  return ok;
}

} // namespace

struct node::impl {
  explicit impl(node_config cfg)
      : config{std::move(cfg)},
        threads{config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency())},
        signals{config.handle_signals} {}

  node_config config;
  std::size_t threads;
  signal_waiter signals; // catching from construction on
  std::unique_ptr<thread_pool_executor> pool;
  // Outlives the system, whose sends may reach it until the pool stops.
  std::shared_ptr<shard_router> router;
  cluster_watch router_watch;
  std::unique_ptr<actor_system> system;
  connections conns;
  std::shared_ptr<event_bus> bus;
  std::unique_ptr<membership> members;
  // Destroyed first: closing a store answers what waits on it, through the system.
  std::shared_ptr<persistence> stores;
  // Metrics and the HTTP endpoints; its watch ends before the membership does.
  std::unique_ptr<node_ops> ops;
  // The bus's samples on /metrics; removed before `ops` goes.
  metrics_registry::registration bus_metrics;
  // Answers state queries on NATS; stops first, before the actors close.
  std::unique_ptr<state_service> states;
  services running;

  std::mutex mutex;
  bool stopped = false;
  bool left_cluster = false;

  /// Starts the services in order; on failure the started ones stop in reverse.
  void start() {
    // The pool has a lane per local mailbox, and one more for the cluster.
    running.start(
        "threads", [&] { pool = std::make_unique<thread_pool_executor>(threads, config.system.shard_count + 1); },
        [&] {
          pool->stop();
          pool->join();
          if (system) system->discard_queued();
        });
    system = std::make_unique<actor_system>(config.system, *pool);
    running.start(
        "endpoints",
        [&] {
          auto o = node_ops::start(config, *pool, *system);
          if (!o) throw startup_error{o.error()};
          ops = std::move(*o);
        },
        [&] { ops->stop(); });
    running.start("nats", [&] { conns = connect(config); }, {});
    running.start(
        "bus", [&] { bus = open_bus(config, *pool, conns); }, [&] { bus->close(); });
    running.start("stores", [&] { stores = open_stores(config, conns, bus); }, {});
    running.start(
        "actors", [] {},
        [&] {
          close_actors();
          // The placement stays (actors closing may still send to others);
          // the inbox closes once the actors did.
          if (router) router->stop();
        });
    running.start(
        "cluster", [&] { join_cluster(); }, [&] { leave_cluster(); });
    running.start(
        "routing", [&] { start_routing(); },
        [&] {
          router_watch.reset();
          if (!router) return;
          // A graceful stop hands the shards over: the leave record moves
          // them in the next map, while this node finishes what is queued
          // for them, passivates and releases them to the new owners.
          leave_cluster();
          // Shared: a release slower than the drain timeout still completes
          // after this wait gave up.
          auto released = std::make_shared<std::promise<void>>();
          router->leave([released] { released->set_value(); });
          if (released->get_future().wait_for(config.drain_timeout) != std::future_status::ready) {
            log(log_level::warn, "shutdown: shards not released within {} ms", config.drain_timeout.count());
          }
          // Nodes that have not applied the map without this one yet still
          // send here: the inbox stays open two failure timeouts longer (long
          // enough for a new leader's map when this node led) and answers
          // their asks not_owner (certainly not delivered, so their askers
          // look again) rather than letting them vanish with it.
          const auto last = members->snapshot();
          const bool others = std::any_of(last->members.begin(), last->members.end(), [&](const member& m) {
            return m.status == member_status::alive && m.id != last->self;
          });
          if (others) std::this_thread::sleep_for(2 * config.cluster.failure_timeout);
        });
    running.start(
        "state queries",
        [&] {
          if (conns.quick) states = std::make_unique<state_service>(conns.quick, *system, config.cluster.node_id);
        },
        [&] {
          if (states) states->stop();
        });
  }

  /// Announces the leave (once) and stops the membership.
  void leave_cluster() {
    if (!members || left_cluster) return;
    left_cluster = true;
    std::promise<void> left;
    members->stop([&left] { left.set_value(); });
    left.get_future().wait();
  }

  /// On NATS with routing on, messages for actors of shards other nodes own go there; the
  /// embedded default has no placement (every actor is local).
  void start_routing() {
    if (!router) return;
    router_watch = members->watch([r = std::weak_ptr{router}](const cluster_snapshot& s) {
      if (auto p = r.lock()) p->apply(s);
    });
    // The current view, read on the cluster strand after the watch is in
    // place: no change falls between the two, and none is applied out of order.
    std::promise<void> applied;
    pool->post(pool->lane_count() - 1, [this, &applied] {
      router->apply(*members->snapshot());
      applied.set_value();
    });
    applied.get_future().wait();
    system->set_placement(router.get());
  }

  void join_cluster() {
    // With routing, the router exists before the node joins: it opens each
    // incarnation's inbox before the membership names it, so nothing sent
    // to this node by a map that names it is lost to a missing subscriber.
    membership::incarnation_source incarnations;
    if (conns.quick && config.cluster.route_messages) {
      router = std::make_shared<shard_router>(
          *system, *pool, pool->lane_count() - 1, conns.quick, config.cluster.name, config.cluster.shards,
          shard_router::options{config.cluster.release_timeout, config.cluster.hold_limit});
      incarnations = [r = std::weak_ptr{router}, node = config.cluster.node_id] {
        const auto incarnation = random_incarnation();
        if (auto p = r.lock()) p->listen(member_id{node, incarnation});
        return incarnation;
      };
    }
    members = open_membership(config, *pool, conns, std::move(incarnations));
    std::promise<expected<void>> joined;
    auto done = joined.get_future();
    members->start([&joined](expected<void> r) { joined.set_value(std::move(r)); });
    // The membership gives up after its join timeout.
    auto r = done.get();
    if (!r) {
      std::promise<void> stopped_promise;
      members->stop([&stopped_promise] { stopped_promise.set_value(); });
      stopped_promise.get_future().wait();
      throw startup_error{r.error()};
    }
    const auto view = members->snapshot();
    log(log_level::info, "node {} serves in cluster {} ({} of {} shards, term {}, map {})", view->self.to_string(),
        view->cluster, view->owned_shards.size(), view->shard_count, view->term, view->epoch());
  }

  /// Stops accepting outside messages, lets actors finish what is queued
  /// (they may still message each other), then passivates them all.
  void close_actors() {
    system->stop_accepting();
    if (!wait_until_idle(*system, *pool, config.drain_timeout)) {
      log(log_level::warn, "shutdown: mailboxes did not empty within {} ms", config.drain_timeout.count());
    }
    std::promise<void> closed;
    auto done = closed.get_future();
    system->close([&closed] { closed.set_value(); });
    if (done.wait_for(config.drain_timeout) != std::future_status::ready) {
      log(log_level::warn, "shutdown: actors did not passivate within {} ms", config.drain_timeout.count());
    }
  }

  void shutdown() {
    std::lock_guard lock{mutex};
    if (stopped) return;
    stopped = true;
    running.stop_all();
    signals.notify();
  }
};

node::node(node_config config) {
  config.system.validate().value();
  if (config.cluster.node_id.empty()) config.cluster.node_id = default_node_id();
  config.cluster.replicas = config.replicas;
  impl_ = std::make_unique<impl>(std::move(config));
  impl_->start();
  impl_->ops->attach(*impl_->members, {{"batched", impl_->conns.batched}, {"quick", impl_->conns.quick}},
                     impl_->stores);
  impl_->bus_metrics = impl_->ops->registry().add([bus = std::weak_ptr{impl_->bus}](metric_sink& s) {
    if (auto b = bus.lock()) b->collect(s);
  });
}

node::~node() { stop(); }

actor_system& node::system() const noexcept { return *impl_->system; }
std::shared_ptr<const persistence> node::stores() const noexcept { return impl_->stores; }
event_bus& node::bus() const noexcept { return *impl_->bus; }
bool node::on_nats() const noexcept { return impl_->conns.batched != nullptr; }
const node_config& node::config() const noexcept { return impl_->config; }
aether::cluster& node::cluster() const noexcept { return *impl_->members; }
metrics_registry& node::metric_registry() const noexcept { return impl_->ops->registry(); }
std::uint16_t node::http_port() const noexcept { return impl_->ops->http_port(); }

int node::run() {
  // Under systemd (Type=notify): ready once serving, watchdog pings while
  // running, stopping before the graceful shutdown.
  systemd_notifier systemd;
  systemd.ready();
  impl_->signals.wait();
  systemd.stopping();
  // A signal or stop() ended the wait; shutdown() is idempotent.
  impl_->shutdown();
  return 0;
}

void node::stop() { impl_->shutdown(); }

expected<state_at> node::state_of(const actor_id& id, state_point point) const {
  return fold_state_wait(*impl_->system, id, point);
}

void node::serve_state(std::string_view type) {
  if (!impl_->states) return;
  if (auto r = impl_->states->serve(type); !r) {
    log(log_level::warn, "node: state queries for {} are not served: {}", type, r.error().to_string());
  }
}

} // namespace aether
