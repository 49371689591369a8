#pragma once

/// Forward declarations of the actors module.
namespace aether {
class actor_id;
class message;
struct message_type;
class actor;
class context;
class actor_system;
struct system_config;
struct actor_options;
struct metrics_snapshot;
struct system_detail_metrics;
struct type_metrics;
struct dead_letter;
template <class R>
class ask_handle;
template <class R>
class pending;
class response_promise;
} // namespace aether
