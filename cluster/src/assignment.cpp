#include <aether/cluster/assignment.hpp>

#include <algorithm>
#include <numeric>

namespace aether {

std::uint64_t shard_affinity(std::uint32_t shard, const member_id& m) noexcept {
  return mix64(member_rank_hash(m), shard);
}

std::vector<member_id> assign_shards(const shard_map& previous, std::span<const member_id> live,
                                     std::uint32_t shard_count) {
  std::vector<member_id> owners(shard_count);
  const auto n = live.size();
  if (n == 0 || shard_count == 0) return owners;

  // The shards each live member keeps from the previous map.
  std::vector<std::vector<std::uint32_t>> kept(n);
  std::vector<std::uint32_t> orphans;
  const bool sticky = previous.shard_count() == shard_count;
  for (std::uint32_t s = 0; s < shard_count; ++s) {
    const auto it = sticky ? std::find(live.begin(), live.end(), previous.owner(s)) : live.end();
    if (it == live.end()) {
      orphans.push_back(s);
    } else {
      kept[static_cast<std::size_t>(it - live.begin())].push_back(s);
    }
  }

  // Targets: floor or ceil; the larger ones go to the members that own the
  // most already (fewest moves), ties by rank hash, then by id.
  const auto base = static_cast<std::uint32_t>(shard_count / n);
  const auto extra = static_cast<std::size_t>(shard_count % n);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (kept[a].size() != kept[b].size()) return kept[a].size() > kept[b].size();
    const auto ha = member_rank_hash(live[a]);
    const auto hb = member_rank_hash(live[b]);
    if (ha != hb) return ha > hb;
    return live[a] < live[b];
  });
  std::vector<std::uint32_t> target(n, base);
  for (std::size_t i = 0; i < extra; ++i) target[order[i]] = base + 1;

  // Members over target give up the shards they rank lowest.
  for (std::size_t i = 0; i < n; ++i) {
    auto& mine = kept[i];
    if (mine.size() > target[i]) {
      std::sort(mine.begin(), mine.end(), [&](std::uint32_t a, std::uint32_t b) {
        const auto sa = shard_affinity(a, live[i]);
        const auto sb = shard_affinity(b, live[i]);
        return sa != sb ? sa < sb : a < b;
      });
      const auto shed = mine.size() - target[i];
      orphans.insert(orphans.end(), mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(shed));
      mine.erase(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(shed));
    }
    for (const auto s : mine) owners[s] = live[i];
  }

  // Orphans, in shard order, go to the member under target that ranks them highest.
  std::sort(orphans.begin(), orphans.end());
  std::vector<std::uint32_t> count(n);
  for (std::size_t i = 0; i < n; ++i) count[i] = static_cast<std::uint32_t>(kept[i].size());
  for (const auto s : orphans) {
    std::size_t best = n;
    std::uint64_t best_score = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (count[i] >= target[i]) continue;
      const auto score = shard_affinity(s, live[i]);
      if (best == n || score > best_score || (score == best_score && live[i] < live[best])) {
        best = i;
        best_score = score;
      }
    }
    // The targets add up to shard_count, so some member always has room.
    owners[s] = live[best];
    ++count[best];
  }
  return owners;
}

} // namespace aether
