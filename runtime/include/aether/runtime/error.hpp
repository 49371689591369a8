#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace aether {

/// Expected failures of Aether operations. Values, never exceptions.
enum class errc {
  invalid_id = 1,       ///< an actor id part breaks the token rules
  invalid_argument,     ///< a configuration value or argument is out of range
  mailbox_full,         ///< the target shard's mailbox is at capacity
  timeout,              ///< an ask got no answer in time
  unknown_actor_type,   ///< no factory is registered for the actor type
  unknown_message_type, ///< the actor has no handler for the message type
  handler_failed,       ///< the handler threw while processing the message
  no_reply,             ///< the handler returned without replying to an ask
  unexpected_reply,     ///< the reply has another type than the asker expects
  shutting_down,        ///< the runtime no longer accepts messages
  actor_stopped,        ///< the actor stopped before it could answer
  malformed_payload,    ///< bytes that do not decode: bad JSON, a missing or mistyped field
  payload_too_large,    ///< a payload over the configured or server limit
  version_conflict,     ///< another writer stored that actor version first
  replay_failed,        ///< a stored event could not be replayed
  unavailable,          ///< the server cannot be reached or did not answer in time
  not_found,            ///< no such stream, key or event
  io_error,             ///< the server refused an operation for another reason
  in_use,               ///< a name another live party holds (a durable subscription's)
  no_wire_form,         ///< a message or reply for another node whose type has no `type_name` and JSON fields
  unauthorized,         ///< the server refused the credentials or the TLS handshake, or wants some
  permission_denied,    ///< the server's permissions for this user forbid the subject
};

/// The `std::error_category` of `errc`.
[[nodiscard]] const std::error_category& aether_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), aether_category()};
}

/// A failure: an `errc`, a human-readable detail and, where the code says so,
/// a number (for `version_conflict`: the actor's current version).
///
/// Thread-safety: a value type; distinct objects may be used from any thread.
class error {
public:
  error(errc code, std::string detail = {}, std::uint64_t value = 0)
      : code_{code}, value_{value}, detail_{std::move(detail)} {}

  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }
  /// The number that goes with the code (0 when none does).
  [[nodiscard]] std::uint64_t value() const noexcept { return value_; }
  [[nodiscard]] std::error_code error_code() const noexcept { return make_error_code(code_); }
  /// "category message: detail".
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const error& e, errc c) noexcept { return e.code_ == c; }

private:
  errc code_;
  std::uint64_t value_;
  std::string detail_;
};

/// Short name of a code, e.g. "mailbox_full".
[[nodiscard]] std::string_view to_string(errc e) noexcept;

} // namespace aether

template <>
struct std::is_error_code_enum<aether::errc> : std::true_type {};
