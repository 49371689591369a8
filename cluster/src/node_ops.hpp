#pragma once

#include <aether/actors/actor_system.hpp>
#include <aether/cluster/cluster.hpp>
#include <aether/cluster/node_config.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/runtime/http_server.hpp>
#include <aether/runtime/metrics.hpp>
#include <aether/runtime/nats.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace aether {

class thread_pool_executor;

/// A node's operational side: its metrics registry, read at scrape time
/// from the counters the layers keep, and the HTTP endpoints (`/metrics`,
/// `/livez`, `/readyz`, `/status`) when `node_config::http_address` is set.
///
/// Thread-safety: `attach` once, from the thread that starts the node;
/// `stop` once, before the pool stops; the rest from any thread.
class node_ops {
public:
  /// Collects the actor system's metrics; serves HTTP when configured
  /// (throws `startup_error`'s error through `expected` when it cannot bind).
  static expected<std::unique_ptr<node_ops>> start(const node_config& config, thread_pool_executor& pool,
                                                   const actor_system& system);
  ~node_ops();
  node_ops(const node_ops&) = delete;
  node_ops& operator=(const node_ops&) = delete;

  /// The rest of the node, once it joined its cluster: from now on
  /// `/readyz` follows whether it serves, and `/status` shows it.
  void attach(aether::cluster& members, std::vector<std::pair<std::string, std::shared_ptr<nats::connection>>> conns,
              std::shared_ptr<const persistence> stores);
  /// Stops the HTTP server. Idempotent.
  void stop();

  [[nodiscard]] metrics_registry& registry() noexcept { return registry_; }
  /// The HTTP server's port; 0 when it is off.
  [[nodiscard]] std::uint16_t http_port() const noexcept { return http_ ? http_->port() : 0; }
  /// What an endpoint answers (the HTTP server calls it; so may a test).
  [[nodiscard]] http_response answer(std::string_view path) const;

private:
  explicit node_ops(const actor_system& system);
  [[nodiscard]] std::string status_json() const;
  [[nodiscard]] bool ready() const;
  void collect_system(metric_sink& sink) const;
  void collect_cluster(metric_sink& sink) const;

  const actor_system& system_;
  metrics_registry registry_;
  std::vector<metrics_registry::registration> registrations_;
  std::unique_ptr<http_server> http_;
  // Set once by attach (release), read by scrapes (acquire).
  std::atomic<aether::cluster*> cluster_{nullptr};
  cluster_watch watch_;
  std::atomic<std::uint64_t> shards_in_{0};
  std::atomic<std::uint64_t> shards_out_{0};
};

} // namespace aether
