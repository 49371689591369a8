#include <aether/actors/actor_id.hpp>
#include <aether/cluster/cluster_config.hpp>

#include <fmt/format.h>

namespace aether {

expected<void> cluster_config::validate() const {
  auto bad = [](std::string what) { return error{errc::invalid_argument, std::move(what)}; };
  if (auto r = actor_id::validate_name(name, "cluster name"); !r) return bad(r.error().to_string());
  if (auto r = actor_id::validate_part(node_id, "node id"); !r) return bad(r.error().to_string());
  if (shards == 0) return bad("the cluster needs at least one shard");
  if (heartbeat_interval.count() <= 0) return bad("the heartbeat interval must be positive");
  if (self_fence_timeout <= heartbeat_interval) return bad("the self-fence timeout must exceed the heartbeat interval");
  if (failure_timeout <= self_fence_timeout) {
    return bad(fmt::format("the failure timeout ({} ms) must exceed the self-fence timeout ({} ms)",
                           failure_timeout.count(), self_fence_timeout.count()));
  }
  if (replicas < 1 || replicas > 5) return bad("control stream replicas must be 1 to 5");
  return {};
}

} // namespace aether
