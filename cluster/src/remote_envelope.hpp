#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/cluster/member.hpp>
#include <aether/runtime/error.hpp>
#include <aether/runtime/expected.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aether {

/// What a node-to-node message is.
enum class remote_kind : std::uint8_t {
  tell,      ///< a message for `target`, no answer expected
  ask,       ///< a message for `target`; the answer goes back to `from` with `correlation`
  answer,    ///< the answer to ask `correlation`: a value (`type`, `payload`) or `failure`
  not_owner, ///< ask `correlation` was not delivered: the receiver does not own the shard
  released,  ///< the sender handed over `shard` (it finished and passivated its actors) as of map `epoch`
  query,     ///< the sender waits for `shard`: a node that released it answers `released` again
};

[[nodiscard]] std::string_view to_string(remote_kind k) noexcept;

/// One message between two nodes, as it travels on the receiving node's
/// inbox subject (JSON; see `docs/ARCHITECTURE.md`, "Remote messages").
///
/// Thread-safety: a value type.
struct remote_envelope {
  remote_kind kind = remote_kind::tell;
  /// The sending node incarnation: where answers go.
  member_id from;
  /// The actor the message is for (tell, ask).
  actor_id target;
  /// The sending actor, the receiver's `ctx.sender()`; empty from outside the actors.
  actor_id sender;
  /// The message's (or answer's) type name and its JSON (tell, ask, answer without failure).
  std::string type;
  std::string payload;
  /// The asking node's number for the ask (ask, answer, not_owner); never 0.
  std::uint64_t correlation = 0;
  /// How long the asker still waits, in milliseconds, when sent (ask).
  std::uint64_t timeout_ms = 0;
  /// The map epoch and cluster shard the sender routed by (tell, ask), or released (released).
  std::uint64_t epoch = 0;
  std::uint32_t shard = 0;
  /// How often a tell was sent on by a node that no longer owned its shard.
  std::uint32_t hops = 0;
  /// The error an answer carries instead of a value.
  std::optional<error> failure;
};

/// The JSON of `e`.
[[nodiscard]] std::string encode_envelope(const remote_envelope& e);

/// Decodes and checks an envelope from the wire: `malformed_payload` (or
/// `payload_too_large`) for anything but a well-formed envelope of a known
/// kind with valid ids, a non-zero correlation where one is needed, a JSON
/// payload where a value travels and a known error code. Never throws for
/// any input.
[[nodiscard]] expected<remote_envelope> decode_envelope(std::string_view bytes);

} // namespace aether
