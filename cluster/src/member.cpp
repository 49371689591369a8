#include <aether/actors/actor_id.hpp>
#include <aether/cluster/member.hpp>

#include <fmt/format.h>

namespace aether {

std::string member_id::to_string() const { return fmt::format("{}/{:016x}", node, incarnation); }

std::string_view to_string(member_status s) noexcept {
  switch (s) {
  case member_status::alive:
    return "alive";
  case member_status::left:
    return "left";
  case member_status::dead:
    return "dead";
  }
  return "?";
}

std::uint64_t member_rank_hash(const member_id& m) noexcept { return mix64(fnv1a_64(m.node), m.incarnation); }

} // namespace aether
