#pragma once

// The stores under test: in memory, and on a real single nats-server.

#include <aether/persistence/event_store.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/persistence/snapshot_store.hpp>

#include "support/nats_connection.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace test {

struct memory_stores {
  static constexpr const char* name = "memory";
  std::shared_ptr<aether::event_store> events = std::make_shared<aether::memory_event_store>();
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::memory_snapshot_store>();
  /// Another writer of the same histories: in memory, the same store.
  std::shared_ptr<aether::event_store> other() { return events; }
};

using aether::testing::connect;

inline std::shared_ptr<aether::jetstream_event_store> open_store(std::shared_ptr<aether::nats::connection> c,
                                                                 aether::jetstream_store_options o = {},
                                                                 std::shared_ptr<aether::nats::connection> quick = {}) {
  auto s = aether::jetstream_event_store::open(std::move(c), o, std::move(quick));
  REQUIRE_MESSAGE(s, (s ? "" : s.error().to_string()));
  return *s;
}

/// The JetStream store with its streams in the per-write layout, asked for
/// (the layout R3 streams get on servers before 2.9.21).
struct jetstream_stores {
  static constexpr const char* name = "jetstream per-write";
  static aether::jetstream_store_options options() {
    aether::jetstream_store_options o;
    o.layout = aether::event_layout::per_write;
    return o;
  }
  aether::testing::nats_server server;
  std::shared_ptr<aether::nats::connection> conn = connect(server.url());
  std::shared_ptr<aether::event_store> events = open_store(conn, options());
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::kv_snapshot_store>(conn);
  /// Another writer of the same histories: a store of its own on a
  /// connection of its own, knowing nothing of what `events` wrote.
  std::shared_ptr<aether::event_store> other() { return open_store(connect(server.url()), options()); }
};

/// The layout of a namespace's stream (created if need be).
inline aether::event_layout layout_of(aether::jetstream_event_store& store, std::string_view ns) {
  auto l = store.layout(ns);
  REQUIRE_MESSAGE(l, (l ? "" : l.error().to_string()));
  return *l;
}

/// The JetStream store as configured by default: on R1 its streams are in
/// the per-actor layout.
struct jetstream_per_actor_stores {
  static constexpr const char* name = "jetstream per-actor (default)";
  static aether::jetstream_store_options options() { return {}; }
  aether::testing::nats_server server;
  std::shared_ptr<aether::nats::connection> conn = connect(server.url());
  std::shared_ptr<aether::event_store> events = open_store(conn, options());
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::kv_snapshot_store>(conn);
  std::shared_ptr<aether::event_store> other() { return open_store(connect(server.url()), options()); }
};

/// An event of a test type with JSON data.
inline aether::event make_event(std::string type, std::string data = "{}") {
  aether::event e;
  e.type = std::move(type);
  e.data = std::move(data);
  return e;
}

} // namespace test

namespace test {

/// The history a race trial starts from: even trials race for version 1 of a
/// fresh actor, odd ones after 1 to 4 events already stored.
inline std::uint64_t race_history(std::size_t trial) { return trial % 2 == 0 ? 0 : 1 + trial % 4; }

/// Stores `history` events of `actor` in one write, before a race.
inline void write_history(aether::event_store& store, const aether::actor_id& actor, std::uint64_t history) {
  if (history == 0) return;
  std::vector<aether::event> events;
  for (std::uint64_t v = 1; v <= history; ++v) events.push_back(make_event("opened", "{}"));
  auto r = store.append_wait(actor, 0, std::move(events));
  REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
}

/// The event data a racing writer named `name` appends.
inline std::string race_data(std::string_view name) { return fmt::format("{{\"writer\":\"{}\"}}", name); }

/// Which of `names` wrote the event the store holds at `version` of `actor`
/// (the one whose `race_data` it carries); nullopt if there is none or it is
/// nobody's, and also when more than the events up to it are stored.
inline std::optional<std::size_t> stored_writer(aether::event_store& store, const aether::actor_id& actor,
                                                std::uint64_t version, const std::vector<std::string>& names) {
  auto events = store.read_wait(actor);
  REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
  if (events->size() != version) return std::nullopt;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (events->back().version == version && events->back().data == race_data(names[i])) return i;
  }
  return std::nullopt;
}

} // namespace test
