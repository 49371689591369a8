#pragma once

// A namespace's JetStream stream, shared by the event store and the NATS bus
// so both create it with the same configuration.

#include <aether/runtime/nats.hpp>

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace aether::detail {

/// Names the process that published a message, so its own bus can skip it.
inline constexpr std::string_view origin_header = "Aether-Origin";

inline std::string namespace_stream_name(std::string_view ns) { return fmt::format("{}_events", ns); }

/// The stream of `ns`: its actors' writes (`aether.{ns}.ev.>`) and the events
/// published on its bus (`aether.{ns}.pub.>`).
inline nats::stream_config namespace_stream(std::string_view ns, int replicas) {
  nats::stream_config c;
  c.name = namespace_stream_name(ns);
  c.subjects = {fmt::format("aether.{}.ev.>", ns), fmt::format("aether.{}.pub.>", ns)};
  c.replicas = replicas;
  return c;
}

} // namespace aether::detail
