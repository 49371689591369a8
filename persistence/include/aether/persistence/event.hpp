#pragma once

#include <aether/actors/actor_id.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace aether {

/// A fact in an actor's history: the source of truth its state is derived from.
struct event {
  /// Its name as a message: the event bus delivers events to actors.
  static constexpr std::string_view type_name = "aether.event";

  std::string id;                   ///< unique; also the write's dedupe key
  std::string type;                 ///< the event type's name
  std::uint32_t schema_version = 1; ///< of `data`; older ones are upcast on replay
  actor_id actor;
  std::uint64_t version = 0;     ///< position in the actor's history: 1, 2, 3, ... no gaps
  std::int64_t timestamp_ns = 0; ///< when it was recorded, Unix time in nanoseconds
  std::string data;              ///< the payload, JSON
  /// Correlation and causation ids and the like.
  std::map<std::string, std::string> metadata;
  /// Where it is stored (the stream sequence), when read back; 0 otherwise.
  std::uint64_t sequence = 0;
};

/// A fresh random event id (128 bits, hex).
[[nodiscard]] std::string new_event_id();
/// The current time as `event::timestamp_ns` wants it.
[[nodiscard]] std::int64_t now_ns() noexcept;

} // namespace aether
