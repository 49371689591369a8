#pragma once

// A namespace's JetStream stream, shared by the event store and the NATS bus
// so both create it with the same configuration.

#include "names.hpp"

#include <aether/runtime/nats.hpp>

#include <fmt/format.h>

#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace aether::detail {

/// Names the process that published a message, so its own bus can skip it.
inline constexpr std::string_view origin_header = "Aether-Origin";

/// The stream of `ns` (names.hpp): its actors' writes
/// (`aether.{token}.ev.{type}.{key}.{version}`) and the events published on
/// its bus (`aether_bus.pub.{type}.{key}.{version}.{ns}`; exactly the
/// namespace's tokens, so the streams of `acme` and `acme.billing` never
/// overlap). A write is also seen by plain subscribers of its subject when
/// the server refuses to store it, so the bus listens where the server
/// republishes what it stored: `aether_bus.stored.{type}.{key}.{version}.{ns}`.
inline nats::stream_config namespace_stream(std::string_view ns, int replicas) {
  nats::stream_config c;
  c.name = namespace_stream_name(ns);
  c.subjects = {store_subjects(ns), bus_filter("pub", "*", "*", ns)};
  c.replicas = replicas;
  c.republish_source = fmt::format("aether.{}.ev.*.*.*", namespace_token(ns));
  c.republish_destination =
      fmt::format("{}.stored.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{}", bus_root, ns);
  return c;
}

/// The namespaces whose stream is known to exist, so that each is set up
/// once per store or bus rather than asked of the server on every use.
///
/// Thread-safety: every member may be called from any thread.
class namespace_streams {
public:
  /// Creates (or updates) the stream of `ns` unless it is known to exist.
  expected<void> ensure(nats::connection& conn, std::string_view ns, int replicas) {
    if (known(ns)) return {};
    if (auto r = conn.ensure_stream(namespace_stream(ns, replicas)); !r) return r;
    learn(ns);
    return {};
  }
  [[nodiscard]] bool known(std::string_view ns) const {
    std::lock_guard lock{mutex_};
    return known_.contains(ns);
  }
  /// Records a stream seen to exist.
  void learn(std::string_view ns) {
    std::lock_guard lock{mutex_};
    known_.emplace(ns);
  }

private:
  mutable std::mutex mutex_;
  std::set<std::string, std::less<>> known_;
};

} // namespace aether::detail
