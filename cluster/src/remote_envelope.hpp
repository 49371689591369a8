#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/cluster/member.hpp>
#include <aether/runtime/error.hpp>
#include <aether/runtime/expected.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
/// Appends the JSON of `e` to `out`: the bytes of `encode_envelope`, with no
/// copy of the envelope's fields on the way.
void encode_envelope_to(fmt::memory_buffer& out, const remote_envelope& e);

/// Encodes envelopes as `encode_envelope_to` does, byte for byte,
/// remembering the bytes before the payload for the last kind, sending node,
/// target, sender and type, and those after it for the last numbers: a
/// node's tells to one actor mostly repeat both, and then cost two copies.
///
/// Thread-safety: one thread at a time.
class envelope_encoder {
public:
  void encode(fmt::memory_buffer& out, const remote_envelope& e);

private:
  remote_kind kind_ = remote_kind::tell;
  member_id from_;
  actor_id target_;
  actor_id sender_;
  std::string type_;
  fmt::memory_buffer head_; // empty: nothing remembered yet
  std::uint64_t correlation_ = 0;
  std::uint64_t timeout_ms_ = 0;
  std::uint64_t epoch_ = 0;
  std::uint32_t shard_ = 0;
  std::uint32_t hops_ = 0;
  fmt::memory_buffer tail_; // empty: nothing remembered yet (never one with a failure)
};

namespace detail {
/// The JSON of `e` through the declared wire shape (`json::encode`): what
/// `encode_envelope` must equal, for the tests.
[[nodiscard]] std::string encode_envelope_reference(const remote_envelope& e);
} // namespace detail

/// Envelopes bigger than this are refused before parsing.
inline constexpr std::size_t max_envelope_size = std::size_t{8} << 20;
/// A batch announcing more envelopes than this is refused.
inline constexpr std::size_t max_batch_envelopes = 65536;
/// A batch bigger than this is refused before it is read.
inline constexpr std::size_t max_batch_size = std::size_t{16} << 20;

/// Many envelopes for one node in one NATS message, in send order
/// (`docs/WIRE_FORMAT.md`, "Node-to-node envelopes"):
///
///     "#" <count> "\n"   then <count> times:   <length> "\n" <envelope JSON of length bytes>
///
/// A single envelope travels as its JSON alone (it starts with '{'); a
/// batch starts with '#'.
///
/// Thread-safety: a value type.
class envelope_batch {
public:
  envelope_batch();
  /// Appends `e`.
  void add(const remote_envelope& e);
  /// Appends an envelope already encoded (its JSON).
  void add_encoded(std::string_view json);
  [[nodiscard]] std::size_t count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// The bytes the message will have.
  [[nodiscard]] std::size_t size() const noexcept;
  /// The message: the header, then the envelopes. Valid until the next
  /// `add` or `clear`; empty when nothing was added.
  [[nodiscard]] std::string_view finish();
  /// The JSON of the only envelope (when `count() == 1`): what travels
  /// alone needs no batch.
  [[nodiscard]] std::string_view only() const noexcept;
  void clear() noexcept;

private:
  fmt::memory_buffer buffer_; // starts with room for the header
  fmt::memory_buffer scratch_;
  std::size_t count_ = 0;
  std::size_t first_at_ = 0; // where the first envelope's JSON starts
};

/// True when `bytes` is a batch rather than one envelope.
[[nodiscard]] inline bool is_batch(std::string_view bytes) noexcept { return !bytes.empty() && bytes.front() == '#'; }

/// Splits a batch into its envelopes' JSON (not yet decoded), checking the
/// framing only: `payload_too_large` for a batch over `max_batch_size` or an
/// envelope over `max_envelope_size`; `malformed_payload` for a header that is
/// not "#<count>\n" with 1 <= count <= `max_batch_envelopes`, a length that
/// is not decimal digits, fewer bytes or envelopes than announced, bytes after
/// the last envelope, or an envelope that does not start with '{'. Never throws.
[[nodiscard]] expected<std::vector<std::string_view>> split_batch(std::string_view bytes);

/// What the envelopes of one batch said last: a batch's envelopes mostly
/// name the same target and sender, and in the encoder's shape mostly repeat
/// the bytes before the payload (kind, sending node, ids, type) and after it
/// (the numbers). Those are then read and checked once. Decoding with it
/// gives what decoding without it gives.
///
/// Thread-safety: one decoding thread at a time.
struct envelope_ids {
  std::string target_text;
  actor_id target;
  std::string sender_text;
  actor_id sender;

  /// The bytes up to the payload, and the fields they hold, checked.
  struct head {
    std::string text; // empty: nothing remembered
    remote_kind kind = remote_kind::tell;
    member_id from;
    actor_id target;
    actor_id sender;
    std::optional<std::string> type;
  } last_head;
  /// The bytes after the payload (never with a failure), and their numbers.
  struct tail {
    std::string text; // empty: nothing remembered
    std::uint64_t correlation = 0;
    std::uint64_t timeout_ms = 0;
    std::uint64_t epoch = 0;
    std::uint32_t shard = 0;
    std::optional<std::uint32_t> hops;
  } last_tail;
};

/// Decodes and checks an envelope from the wire: `malformed_payload` (or
/// `payload_too_large`) for anything but a well-formed envelope of a known
/// kind with valid ids, a non-zero correlation where one is needed, a JSON
/// payload where a value travels and a known error code. Never throws for
/// any input. `ids`, when given, remembers the ids parsed and reuses those
/// whose text repeats.
///
/// Envelopes in exactly the shape `encode_envelope` writes (its field order,
/// no whitespace, no escapes outside the payload, plain JSON payload) are read
/// by a single pass over the bytes; anything else goes to the general JSON
/// decoder (`detail::decode_envelope_general`), whose result is the same.
[[nodiscard]] expected<remote_envelope> decode_envelope(std::string_view bytes, envelope_ids* ids = nullptr);

namespace detail {
/// `decode_envelope` through the general JSON decoder alone: what the fast
/// reader must agree with, for the tests and the fuzz target.
[[nodiscard]] expected<remote_envelope> decode_envelope_general(std::string_view bytes, envelope_ids* ids = nullptr);
/// `decode_envelope` through the fast reader alone: empty when the bytes are
/// not in the encoder's exact shape (the general decoder then decides).
[[nodiscard]] std::optional<expected<remote_envelope>> decode_envelope_fast(std::string_view bytes,
                                                                            envelope_ids* ids = nullptr);
} // namespace detail

} // namespace aether
