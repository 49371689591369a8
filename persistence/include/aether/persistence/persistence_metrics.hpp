#pragma once

#include <aether/runtime/metrics.hpp>

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace aether {

/// What event-sourced actors count of their stores, per namespace: appends
/// and their latency, version conflicts, replays and snapshot writes.
///
/// Thread-safety: every member from any thread.
class persistence_metrics {
public:
  struct cells {
    striped_counter appends;         ///< appends the store acknowledged
    striped_counter appended_events; ///< events in them
    striped_counter append_failures; ///< appends that failed otherwise than by a conflict
    striped_counter version_conflicts;
    striped_counter replays; ///< activations and reloads that replayed
    striped_counter replay_failures;
    striped_counter snapshot_writes;
    striped_counter snapshot_failures;
    latency_histogram append_latency;
    latency_histogram replay_latency;
  };

  /// The cells of namespace `ns` (made on first use; they live as long as this).
  [[nodiscard]] cells& of(std::string_view ns);
  /// Writes the `aether_persistence_*` samples.
  void collect(metric_sink& sink) const;

private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::unique_ptr<cells>, std::less<>> by_namespace_;
};

} // namespace aether
