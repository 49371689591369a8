#include <aether/persistence/persistence_metrics.hpp>

#include <mutex>

namespace aether {

persistence_metrics::cells& persistence_metrics::of(std::string_view ns) {
  {
    std::shared_lock lock{mutex_};
    if (auto it = by_namespace_.find(ns); it != by_namespace_.end()) return *it->second;
  }
  std::unique_lock lock{mutex_};
  auto& slot = by_namespace_[std::string{ns}];
  if (!slot) slot = std::make_unique<cells>();
  return *slot;
}

void persistence_metrics::collect(metric_sink& sink) const {
  std::shared_lock lock{mutex_};
  for (const auto& [ns, c] : by_namespace_) {
    const std::initializer_list<metric_label> l{{"namespace", ns}};
    auto n = [](const striped_counter& s) { return static_cast<double>(s.value()); };
    sink.counter("aether_persistence_appends_total", "Appends the event store acknowledged.", n(c->appends), l);
    sink.counter("aether_persistence_appended_events_total", "Events in acknowledged appends.", n(c->appended_events),
                 l);
    sink.counter("aether_persistence_append_failures_total",
                 "Appends that failed other than by a version conflict (unavailable, timeout, refused).",
                 n(c->append_failures), l);
    sink.counter("aether_persistence_version_conflicts_total",
                 "Appends refused because another writer stored that version first.", n(c->version_conflicts), l);
    sink.histogram("aether_persistence_append_duration_seconds",
                   "Time from an append to the store's answer, acknowledged appends only.", c->append_latency.read(),
                   l);
    sink.counter("aether_persistence_replays_total", "Activations and reloads that read and applied stored events.",
                 n(c->replays), l);
    sink.counter("aether_persistence_replay_failures_total", "Activations and reloads whose read or replay failed.",
                 n(c->replay_failures), l);
    sink.histogram("aether_persistence_replay_duration_seconds",
                   "Time to activate an event-sourced actor: snapshot load, event read and replay.",
                   c->replay_latency.read(), l);
    sink.counter("aether_persistence_snapshot_writes_total", "Snapshots stored.", n(c->snapshot_writes), l);
    sink.counter("aether_persistence_snapshot_failures_total", "Snapshot writes that failed.", n(c->snapshot_failures),
                 l);
  }
}

} // namespace aether
