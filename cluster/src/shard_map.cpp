#include <aether/cluster/shard_map.hpp>

#include <algorithm>

namespace aether {

const member_id& shard_map::owner(std::uint32_t shard) const noexcept {
  static const member_id none{};
  return shard < owners_.size() ? owners_[shard] : none;
}

std::vector<std::uint32_t> shard_map::shards_of(const member_id& m) const {
  std::vector<std::uint32_t> out;
  for (std::uint32_t s = 0; s < owners_.size(); ++s) {
    if (owners_[s] == m) out.push_back(s);
  }
  return out;
}

std::uint32_t shard_map::count_of(const member_id& m) const noexcept {
  return static_cast<std::uint32_t>(std::count(owners_.begin(), owners_.end(), m));
}

std::vector<member_id> shard_map::owning_members() const {
  std::vector<member_id> out;
  for (const auto& o : owners_) {
    if (!o.empty() && std::find(out.begin(), out.end(), o) == out.end()) out.push_back(o);
  }
  return out;
}

std::uint32_t moved_shards(const shard_map& a, const shard_map& b) noexcept {
  const auto n = std::max(a.owners().size(), b.owners().size());
  std::uint32_t moved = 0;
  for (std::uint32_t s = 0; s < n; ++s) {
    if (a.owner(s) != b.owner(s)) ++moved;
  }
  return moved;
}

} // namespace aether
