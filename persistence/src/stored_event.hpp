#pragma once

// The stored form of events: what the JetStream store writes and reads, and
// what every store validates an append against.

#include <aether/persistence/event.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/json.hpp>

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace aether::detail {

/// One event as stored (docs/WIRE_FORMAT.md). Writes before the actor and
/// version were stored with each event have them only in the subject and
/// the position in the batch.
struct stored_event {
  std::optional<std::string> actor; ///< `actor_id::to_string()`
  std::optional<std::uint64_t> version;
  std::string id;
  std::string type;
  std::uint32_t schema_version = 1;
  std::int64_t timestamp_ns = 0;
  json::raw data;
  std::map<std::string, std::string> metadata;
};
AETHER_JSON_FIELDS(stored_event, actor, version, id, type, schema_version, timestamp_ns, data, metadata)

/// Checks an event's type and data (one JSON value, not too large); fills
/// in a missing id and timestamp.
expected<void> prepare_event(event& e);

/// Checks what an append carries before anything is written: ids, types and
/// JSON data present. Fills in missing ids and timestamps, and sets the
/// actor and versions.
expected<void> prepare_append(const actor_id& actor, std::uint64_t expected_version, std::vector<event>& events);

/// A batch of events as one JSON array.
std::string encode_batch(std::span<const event> events);

/// The events of a stored batch whose first version is `first_version`.
/// `replay_failed` naming the actor, version and stream sequence when the
/// bytes do not decode.
expected<std::vector<event>> decode_batch(const actor_id& actor, std::uint64_t first_version, std::uint64_t sequence,
                                          std::string_view bytes);
/// The events of a stored batch whose place names no version (the per-actor
/// layout): the first event's own version counts, and it must name one.
expected<std::vector<event>> decode_batch_own_versions(const actor_id& actor, std::uint64_t sequence,
                                                       std::string_view bytes);

} // namespace aether::detail
