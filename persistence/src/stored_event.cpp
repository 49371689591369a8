#include "stored_event.hpp"

#include <fmt/format.h>

#include <chrono>
#include <random>

namespace aether {

std::string new_event_id() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  return fmt::format("{:016x}{:016x}", engine(), engine());
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace detail {

expected<void> prepare_event(event& e) {
  if (e.type.empty()) return error{errc::invalid_argument, fmt::format("event {} has no type", e.version)};
  if (e.data.empty()) e.data = "null";
  if (e.id.empty()) e.id = new_event_id();
  if (e.timestamp_ns == 0) e.timestamp_ns = now_ns();
  // Data is stored verbatim inside a batch: it must be one JSON value.
  if (e.data.size() > json::default_max_size) {
    return error{errc::payload_too_large, fmt::format("event {} of {} has {} bytes of data, more than {}", e.version,
                                                      e.actor.to_string(), e.data.size(), json::default_max_size)};
  }
  const auto wrapped = fmt::format("{{\"d\":{}}}", e.data);
  if (auto r = json::decode<std::map<std::string, json::raw>>(wrapped, wrapped.size()); !r) {
    return error{errc::malformed_payload, fmt::format("event {} of {}: data is not JSON: {}", e.version,
                                                      e.actor.to_string(), r.error().detail())};
  }
  return {};
}

expected<void> prepare_append(const actor_id& actor, std::uint64_t expected_version, std::vector<event>& events) {
  if (actor.empty()) return error{errc::invalid_id, "the actor id is empty"};
  if (events.empty()) return error{errc::invalid_argument, "an append needs at least one event"};
  auto version = expected_version;
  for (auto& e : events) {
    e.actor = actor;
    e.version = ++version;
    e.sequence = 0;
    if (auto r = prepare_event(e); !r) return r;
  }
  return {};
}

std::string encode_batch(std::span<const event> events) {
  std::vector<stored_event> out;
  out.reserve(events.size());
  for (const auto& e : events) {
    out.push_back(stored_event{e.actor.to_string(), e.version, e.id, e.type, e.schema_version, e.timestamp_ns,
                               json::raw{e.data}, e.metadata});
  }
  return json::encode(out);
}

namespace {

/// The events of a decoded batch whose first version is `first_version`.
expected<std::vector<event>> events_of(const actor_id& actor, std::vector<stored_event>& batch,
                                       std::uint64_t first_version, std::uint64_t sequence) {
  std::vector<event> out;
  out.reserve(batch.size());
  auto version = first_version;
  std::string name; // the actor's, once an event names one
  for (auto& s : batch) {
    // Each event names its actor and version: they must be the ones its
    // place says, or the write is not what it claims to be.
    if (s.version && *s.version != version) {
      return error{errc::replay_failed,
                   fmt::format("{} version {} (stream sequence {}) holds an event of version {}", actor.to_string(),
                               version, sequence, *s.version),
                   version};
    }
    if (s.actor) {
      if (name.empty()) name = actor.to_string();
      if (*s.actor != name) {
        return error{
            errc::replay_failed,
            fmt::format("{} version {} (stream sequence {}) holds an event of {}", name, version, sequence, *s.actor),
            version};
      }
    }
    out.push_back(event{std::move(s.id), std::move(s.type), s.schema_version, actor, version++, s.timestamp_ns,
                        std::move(s.data.text), std::move(s.metadata), sequence});
  }
  return out;
}

} // namespace

expected<std::vector<event>> decode_batch(const actor_id& actor, std::uint64_t first_version, std::uint64_t sequence,
                                          std::string_view bytes) {
  auto batch = json::decode<std::vector<stored_event>>(bytes);
  if (!batch || batch->empty()) {
    return error{errc::replay_failed,
                 fmt::format("{} version {} (stream sequence {}) does not decode: {}", actor.to_string(), first_version,
                             sequence, batch ? "an empty batch" : batch.error().detail()),
                 first_version};
  }
  return events_of(actor, *batch, first_version, sequence);
}

expected<std::vector<event>> decode_batch_own_versions(const actor_id& actor, std::uint64_t sequence,
                                                       std::string_view bytes) {
  auto batch = json::decode<std::vector<stored_event>>(bytes);
  if (!batch || batch->empty()) {
    return error{errc::replay_failed,
                 fmt::format("{}: the write at stream sequence {} does not decode: {}", actor.to_string(), sequence,
                             batch ? "an empty batch" : batch.error().detail())};
  }
  if (!batch->front().version || *batch->front().version == 0) {
    return error{errc::replay_failed, fmt::format("{}: the write at stream sequence {} does not name its version",
                                                  actor.to_string(), sequence)};
  }
  return events_of(actor, *batch, *batch->front().version, sequence);
}

} // namespace detail
} // namespace aether
