#pragma once

/// Forward declarations of the persistence module.
namespace aether {
struct event;
struct append_result;
class event_store;
class memory_event_store;
class jetstream_event_store;
struct snapshot;
class snapshot_store;
class memory_snapshot_store;
class kv_snapshot_store;
template <class State>
class event_sourced_actor;
struct persistence;
} // namespace aether
