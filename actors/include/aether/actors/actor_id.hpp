#pragma once

#include <aether/runtime/expected.hpp>
#include <aether/runtime/ref_counted.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace aether {

namespace detail {
/// The shared body of an `actor_id`: one allocation with the count, hash,
/// part sizes and then the bytes of namespace, type and key.
struct actor_id_rep : ref_counted {
  std::uint64_t hash = 0;
  std::uint16_t ns_size = 0;
  std::uint16_t type_size = 0;
  std::uint16_t key_size = 0;

  [[nodiscard]] const char* bytes() const noexcept { return reinterpret_cast<const char*>(this + 1); }

protected:
  void destroy() const noexcept override;
};
} // namespace detail

/// The identity of a virtual actor: namespace, actor type and key.
///
/// Type and key are NATS subject tokens: 1 to `max_part_size` bytes, none of
/// `.`, `*`, `>`, `/`, whitespace or control characters, and no leading `$`.
/// The namespace is hierarchical: one or more tokens separated by dots
/// (`acme`, `acme.billing`), each of ASCII letters, digits, `-` or `_`, 1 to
/// `max_namespace_size` bytes in all. Its tokens become subject tokens as
/// they are, and stream and bucket names through a reversible encoding
/// (docs/ARCHITECTURE.md, "Namespaces"). An id's text form is `ns/type/key`;
/// nothing invalid reaches the wire.
///
/// An id is immutable and shared: copying it bumps one atomic count. Its hash
/// is stable across processes and machines and decides the actor's local
/// mailbox and its cluster shard: FNV-1a 64 of `ns.type.key` (unambiguous
/// for dotted namespaces too, since type and key hold no dot). The hash is
/// frozen (golden values in tests/cluster/shard_hash_test.cpp): changing it
/// would move every actor of every cluster to another shard.
///
/// Thread-safety: a value type; copies may be used from any thread.
class actor_id {
public:
  static constexpr std::size_t max_part_size = 128;
  static constexpr std::size_t max_namespace_size = 64;
  static constexpr std::string_view default_namespace = "default";

  /// The null id (names no actor).
  actor_id() noexcept = default;
  /// Builds an id from trusted parts; throws `bad_expected_access` when a part
  /// is invalid. Use `make` for untrusted input.
  actor_id(std::string_view type, std::string_view key, std::string_view ns = default_namespace);

  /// Builds an id, or returns `errc::invalid_id` naming the bad part.
  [[nodiscard]] static expected<actor_id> make(std::string_view type, std::string_view key,
                                               std::string_view ns = default_namespace);
  /// Parses `type/key` or `ns/type/key`.
  [[nodiscard]] static expected<actor_id> parse(std::string_view text);
  /// Checks one part against the token rules; `what` names it in the error.
  [[nodiscard]] static expected<void> validate_part(std::string_view part, std::string_view what);
  /// Checks a namespace: dot-separated tokens of letters, digits, `-` and
  /// `_`. `invalid_id` naming an empty token (a leading, trailing or double
  /// dot), a wildcard, another character, or the length.
  [[nodiscard]] static expected<void> validate_namespace(std::string_view ns);
  /// Checks a flat name (a cluster, a durable subscription): 1 to
  /// `max_namespace_size` letters, digits, `-` and `_`; `what` names it.
  [[nodiscard]] static expected<void> validate_name(std::string_view name, std::string_view what);

  [[nodiscard]] std::string_view ns() const noexcept;
  [[nodiscard]] std::string_view type() const noexcept;
  [[nodiscard]] std::string_view key() const noexcept;
  /// `ns/type/key`.
  [[nodiscard]] std::string to_string() const;
  /// Stable 64-bit hash of the id (frozen: FNV-1a 64 of `ns.type.key`).
  [[nodiscard]] std::uint64_t hash() const noexcept { return rep_ ? rep_->hash : 0; }
  /// `hash() % shard_count`: the local mailbox (of `AETHER_SHARDS`) or the
  /// cluster shard (of the cluster's shard count).
  [[nodiscard]] std::uint32_t shard(std::uint32_t shard_count) const noexcept {
    return static_cast<std::uint32_t>(hash() % shard_count);
  }
  [[nodiscard]] bool empty() const noexcept { return !rep_; }

  friend bool operator==(const actor_id& a, const actor_id& b) noexcept;

private:
  explicit actor_id(intrusive_ptr<const detail::actor_id_rep> r) noexcept : rep_{std::move(r)} {}
  intrusive_ptr<const detail::actor_id_rep> rep_;
};

/// Stable FNV-1a 64-bit hash of bytes (the id hash).
[[nodiscard]] constexpr std::uint64_t fnv1a_64(std::string_view bytes,
                                               std::uint64_t seed = 0xcbf29ce484222325ULL) noexcept {
  std::uint64_t h = seed;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

} // namespace aether

template <>
struct std::hash<aether::actor_id> {
  std::size_t operator()(const aether::actor_id& id) const noexcept { return static_cast<std::size_t>(id.hash()); }
};
