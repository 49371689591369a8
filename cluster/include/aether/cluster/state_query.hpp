#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/persistence/state_fold.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/nats.hpp>

#include <chrono>

namespace aether {

/// Asks the nodes on `conn`'s NATS for the state of event-sourced actor
/// `id` folded to `point`: one node that registered `id`'s type folds a
/// read-only copy (see `fold_state`) and answers. The fold's errors come
/// back as they were (`state_failure_of` reads them); besides:
/// `unknown_actor_type` at once when no node serves the type (NATS's "no
/// responders"), `timeout` when none answers within `timeout`,
/// `malformed_payload` for an answer that does not decode, `unavailable`
/// when `conn` is not connected.
///
/// Thread-safety: from any thread; blocks the caller (never a runtime thread).
[[nodiscard]] expected<state_at> query_state(nats::connection& conn, const actor_id& id, state_point point,
                                             std::chrono::milliseconds timeout);

} // namespace aether
