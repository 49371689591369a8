#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

/// Every NATS stream and subject of the cluster layer, spelled here only.
/// The root token differs from the event streams' `aether.` so that no
/// cluster name can overlap a namespace's subjects.
namespace aether::cluster_subjects {

inline std::string stream(std::string_view cluster) { return fmt::format("aether_cluster_{}", cluster); }
inline std::string control_prefix(std::string_view cluster) { return fmt::format("aether_cluster.{}.ctl.", cluster); }
inline std::string control_all(std::string_view cluster) { return fmt::format("aether_cluster.{}.ctl.>", cluster); }
inline std::string heartbeat_all(std::string_view cluster) { return fmt::format("aether_cluster.{}.hb.>", cluster); }
inline std::string heartbeat(std::string_view cluster, std::string_view node, std::uint64_t incarnation) {
  return fmt::format("aether_cluster.{}.hb.{}.{:016x}", cluster, node, incarnation);
}

/// The inbox of one node incarnation: messages, asks and answers from other nodes.
inline std::string node_inbox(std::string_view cluster, std::string_view node, std::uint64_t incarnation) {
  return fmt::format("aether_cluster.{}.node.{}.{:016x}", cluster, node, incarnation);
}

/// Where the nodes that registered event-sourced actor type `type` answer
/// state queries (any cluster on the server: the stores are the server's),
/// one node of the queue group `state_queue` each.
inline std::string state_request(std::string_view type) { return fmt::format("aether_ctl.state.{}", type); }
inline constexpr std::string_view state_queue = "aether_ctl_state";

} // namespace aether::cluster_subjects
