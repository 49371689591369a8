#pragma once

/// Forward declarations of the cluster module.
namespace aether {
struct member_id;
struct member;
class shard_map;
struct cluster_config;
struct control_record;
struct control_log_follower;
class control_log_follow;
class control_log;
class memory_control_log;
class nats_control_log;
struct heartbeat;
class heartbeat_subscription;
class heartbeat_transport;
class memory_heartbeat_transport;
class nats_heartbeat_transport;
struct state_change;
class cluster_state;
class failure_detector;
class leader_election;
class map_publisher;
struct cluster_snapshot;
class cluster_watch;
class cluster;
class membership;
struct node_config;
class node;
} // namespace aether
