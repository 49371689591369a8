#pragma once

// The stores under test: in memory, and on a real single nats-server.

#include <aether/persistence/event_store.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/persistence/snapshot_store.hpp>

#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <memory>

namespace test {

struct memory_stores {
  static constexpr const char* name = "memory";
  std::shared_ptr<aether::event_store> events = std::make_shared<aether::memory_event_store>();
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::memory_snapshot_store>();
};

inline std::shared_ptr<aether::nats::connection> connect(const std::string& url) {
  aether::nats::connect_options o;
  o.url = url;
  auto c = aether::nats::connection::connect(o);
  REQUIRE_MESSAGE(c, (c ? "" : c.error().to_string()));
  return *c;
}

inline std::shared_ptr<aether::jetstream_event_store> open_store(std::shared_ptr<aether::nats::connection> c,
                                                                 aether::jetstream_store_options o = {},
                                                                 std::shared_ptr<aether::nats::connection> quick = {}) {
  auto s = aether::jetstream_event_store::open(std::move(c), o, std::move(quick));
  REQUIRE_MESSAGE(s, (s ? "" : s.error().to_string()));
  return *s;
}

struct jetstream_stores {
  static constexpr const char* name = "jetstream";
  aether::testing::nats_server server;
  std::shared_ptr<aether::nats::connection> conn = connect(server.url());
  std::shared_ptr<aether::event_store> events = open_store(conn);
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::kv_snapshot_store>(conn);
};

/// An event of a test type with JSON data.
inline aether::event make_event(std::string type, std::string data = "{}") {
  aether::event e;
  e.type = std::move(type);
  e.data = std::move(data);
  return e;
}

} // namespace test
