#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace aether {

/// One process of a cluster: the node's id (stable across restarts, a NATS
/// subject token) and the incarnation, drawn at random when the process
/// starts. A restarted node is a new incarnation of the same id.
///
/// Thread-safety: a value type.
struct member_id {
  std::string node;
  std::uint64_t incarnation = 0;

  [[nodiscard]] bool empty() const noexcept { return node.empty(); }
  /// `node/incarnation-in-hex`, as in logs.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const member_id&, const member_id&) = default;
  friend auto operator<=>(const member_id&, const member_id&) = default;
};

/// Where a member stands in the cluster's control log.
enum class member_status {
  alive, ///< joined, and neither left nor declared dead
  left,  ///< announced that it leaves (graceful stop)
  dead,  ///< declared dead by a leader, or replaced by a newer incarnation
};

[[nodiscard]] std::string_view to_string(member_status s) noexcept;

/// A member as the control log describes it.
struct member {
  member_id id;
  member_status status = member_status::alive;

  friend bool operator==(const member&, const member&) = default;
};

/// A well-mixed 64-bit hash of a member, for ranking ties (stable across
/// processes: it depends only on the id and the incarnation).
[[nodiscard]] std::uint64_t member_rank_hash(const member_id& m) noexcept;

/// A well-mixed combination of two 64-bit values (splitmix64 finaliser).
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace aether
