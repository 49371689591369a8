#pragma once

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_id.hpp>
#include <aether/runtime/error.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace aether {

class actor_system;

/// How far to fold an actor's history: to its last event, to a version, or
/// to a time (the events recorded at or before it).
struct state_point {
  enum class kind : std::uint8_t { latest, version, time };
  kind at = kind::latest;
  std::uint64_t version = 0; ///< for `kind::version`: fold events 1..version
  std::int64_t time_ns = 0;  ///< for `kind::time`: Unix time in nanoseconds

  [[nodiscard]] static state_point latest() noexcept { return {}; }
  [[nodiscard]] static state_point at_version(std::uint64_t v) noexcept { return {kind::version, v, 0}; }
  [[nodiscard]] static state_point at_time(std::int64_t unix_ns) noexcept { return {kind::time, 0, unix_ns}; }
};

/// An event-sourced actor's state folded to a point.
struct state_at {
  std::string state;                  ///< JSON, as the actor's snapshots encode it
  std::uint64_t version = 0;          ///< the last event folded
  std::int64_t timestamp_ns = 0;      ///< when the event at `version` was recorded (Unix ns)
  std::uint64_t last_version = 0;     ///< the actor's last version as the fold read it
  std::uint64_t snapshot_version = 0; ///< the snapshot the fold started from; 0 when it folded from version 1
};

/// Why a fold failed, read from its error (`state_failure_of`). Each is one
/// `errc` (and, where two share one, told apart by `error::value()`):
///
/// | failure | errc | value() |
/// |---|---|---|
/// | `unknown_type`: no actor type of that name is registered (on NATS: no node serves it) | `unknown_actor_type` | 0 |
/// | `not_event_sourced`: the type is registered but not an event-sourced actor | `unknown_message_type` | 0 |
/// | `no_events`: the actor has no events | `not_found` | 0 |
/// | `beyond_last_version`: the version is past the actor's last | `not_found` | the last version |
/// | `before_first_event`: version 0, or a time before the first event's | `invalid_argument` | 0 |
/// | `corrupted_event`: an event in range does not decode or apply | `replay_failed` | its version |
///
/// The detail of `corrupted_event` names the version and stream sequence.
/// Anything else (`invalid_id`, `unavailable`, `timeout`, ...) is `other`.
enum class state_failure : std::uint8_t {
  unknown_type,
  not_event_sourced,
  no_events,
  beyond_last_version,
  before_first_event,
  corrupted_event,
  other,
};

/// Which failure of a fold `e` is (see `state_failure`).
[[nodiscard]] state_failure state_failure_of(const error& e) noexcept;
/// Short name, e.g. "beyond_last_version".
[[nodiscard]] std::string_view to_string(state_failure f) noexcept;

using state_callback = unique_function<void(expected<state_at>)>;

/// Folds the stored history of event-sourced actor `id` to `point` into a
/// fresh instance of its type, made by the type's factory on `system` and
/// never activated: the live actor (if any) is not touched, nothing is
/// written. A snapshot is used only when its version is at or before the
/// point (never for a time: snapshots carry no time). `done` runs once, on
/// the calling thread (memory store) or a store thread.
///
/// Thread-safety: from any thread.
void fold_state(actor_system& system, const actor_id& id, state_point point, state_callback done);

/// The blocking form: for tools, tests and `main()`, never on a runtime thread.
[[nodiscard]] expected<state_at> fold_state_wait(actor_system& system, const actor_id& id, state_point point);

} // namespace aether
