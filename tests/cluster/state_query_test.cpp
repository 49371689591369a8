// State at a point: the node's fold (memory store and JetStream), the state
// queries on NATS across processes, and hostile points and ids.
#include "state_tally.hpp"
#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/nats_connection.hpp"
#include "support/nats_server.hpp"

#include <aether/aether.hpp>
#include <aether/cluster/state_query.hpp>
#include <aether/persistence/jetstream_event_store.hpp>

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using aether::state_failure;
using aether::state_point;
using aether::testing::connect;
using state_test::add;

namespace {

using fold_fn = std::function<aether::expected<aether::state_at>(const actor_id&, state_point)>;

constexpr std::uint64_t history = 10;
constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

aether::node_config small(std::string url = {}) {
  aether::node_config c;
  c.threads = 2;
  c.system.shard_count = 8;
  c.handle_signals = false;
  c.snapshot_every = 4; // snapshots at 4 and 8: the latest is 8
  c.nats_url = std::move(url);
  c.cluster.route_messages = false; // one node: the fold needs no routing
  return c;
}

/// Writes `history` events through the live actor; returns the commands.
std::vector<add> write_history(aether::node& node, const actor_id& id) {
  std::vector<add> adds;
  for (std::uint64_t i = 1; i <= history; ++i) {
    adds.push_back(state_test::nth_add(i));
    auto v = node.ask<std::int64_t>(id, adds.back(), 10s).get();
    REQUIRE(v);
    REQUIRE(*v == static_cast<std::int64_t>(i));
  }
  return adds;
}

state_failure failure(const aether::expected<aether::state_at>& r) {
  REQUIRE_FALSE(r);
  return aether::state_failure_of(r.error());
}

/// Checks folds at every version, at every event's time and at the last
/// event against the hand fold; `snapshot_at` is the latest snapshot's
/// version (0: none), used only at or before the point and never for times.
void check_folds(const fold_fn& fold, const actor_id& id, const std::vector<add>& adds,
                 const std::vector<aether::event>& events, std::uint64_t snapshot_at) {
  REQUIRE(events.size() == history);
  for (std::uint64_t v = 1; v <= history; ++v) {
    CAPTURE(v);
    auto r = fold(id, state_point::at_version(v));
    REQUIRE_MESSAGE(r, r.error().to_string());
    CHECK(r->state == aether::json::encode(state_test::fold_by_hand(adds, v)));
    CHECK(r->version == v);
    CHECK(r->timestamp_ns == events[v - 1].timestamp_ns);
    CHECK(r->last_version == history);
    CHECK(r->snapshot_version == (snapshot_at != 0 && snapshot_at <= v ? snapshot_at : 0));
  }
  auto latest = fold(id, state_point::latest());
  REQUIRE_MESSAGE(latest, latest.error().to_string());
  CHECK(latest->state == aether::json::encode(state_test::fold_by_hand(adds, history)));
  CHECK(latest->version == history);
  CHECK(latest->snapshot_version == snapshot_at);
  CHECK(latest->timestamp_ns == events.back().timestamp_ns);
  for (const auto& e : events) {
    CAPTURE(e.version);
    // The events recorded at or before that time (clocks may repeat a value).
    std::uint64_t expect = 0;
    for (const auto& f : events) {
      if (f.timestamp_ns <= e.timestamp_ns) expect = std::max(expect, f.version);
    }
    auto r = fold(id, state_point::at_time(e.timestamp_ns));
    REQUIRE_MESSAGE(r, r.error().to_string());
    CHECK(r->version == expect);
    CHECK(r->state == aether::json::encode(state_test::fold_by_hand(adds, expect)));
    CHECK(r->snapshot_version == 0);
  }
  auto future = fold(id, state_point::at_time(never));
  REQUIRE(future);
  CHECK(future->version == history);
  CHECK(failure(fold(id, state_point::at_time(events.front().timestamp_ns - 1))) == state_failure::before_first_event);
}

/// Hostile points and ids: typed errors, never a crash or a wrong state.
/// Over NATS a type that is not event-sourced is served by no node.
void check_hostile(const fold_fn& fold, const actor_id& id, bool over_nats) {
  CHECK(failure(fold(id, state_point::at_version(0))) == state_failure::before_first_event);
  auto past = fold(id, state_point::at_version(history + 1));
  CHECK(failure(past) == state_failure::beyond_last_version);
  CHECK(past.error().value() == history);
  CHECK(failure(fold(id, state_point::at_version(std::numeric_limits<std::uint64_t>::max()))) ==
        state_failure::beyond_last_version);
  CHECK(failure(fold(id, state_point::at_time(std::numeric_limits<std::int64_t>::min()))) ==
        state_failure::before_first_event);
  CHECK(failure(fold(id, state_point::at_time(-1))) == state_failure::before_first_event);
  CHECK(failure(fold(id, state_point::at_time(0))) == state_failure::before_first_event);
  CHECK(failure(fold(actor_id{"tally", "never-written"}, state_point::latest())) == state_failure::no_events);
  CHECK(failure(fold(actor_id{"tally", "never-written"}, state_point::at_version(3))) == state_failure::no_events);
  CHECK(failure(fold(actor_id{"tally", "x", "other.ns"}, state_point::latest())) == state_failure::no_events);
  CHECK(failure(fold(actor_id{"ghost", "x"}, state_point::latest())) == state_failure::unknown_type);
  CHECK(failure(fold(actor_id{"plain", "x"}, state_point::latest())) ==
        (over_nats ? state_failure::unknown_type : state_failure::not_event_sourced));
  auto empty = fold(actor_id{}, state_point::latest());
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == errc::invalid_id);
}

struct live_view {
  state_test::seen seen;
  std::uint64_t activations = 0;
};

live_view look_at_live(aether::node& node, const actor_id& id) {
  auto s = node.ask<state_test::seen>(id, state_test::peek{}, 10s).get();
  REQUIRE(s);
  return {*s, node.metrics().activations};
}

void check_live_untouched(aether::node& node, const actor_id& id, const live_view& before) {
  auto after = look_at_live(node, id);
  CHECK(after.seen.version == before.seen.version);
  CHECK(aether::json::encode(after.seen.state) == aether::json::encode(before.seen.state));
  CHECK(after.activations == before.activations);
}

void register_types(aether::node& node) {
  node.register_event_sourced<state_test::tally>("tally");
  node.register_actor<state_test::plain>("plain");
}

fold_fn node_fold(aether::node& node) {
  return [&node](const actor_id& id, state_point p) { return node.state_of(id, p); };
}

fold_fn query_fold(aether::nats::connection& conn) {
  return [&conn](const actor_id& id, state_point p) { return aether::query_state(conn, id, p, 20s); };
}

std::uint64_t snapshot_version_of(aether::node& node, const actor_id& id) {
  auto s = node.stores()->snapshots->load_wait(id);
  return s && *s ? (*s)->version : 0;
}

} // namespace

TEST_CASE("the embedded node folds an actor to every version and time of its memory store, leaving the live actor "
          "alone") {
  aether::node node{small()};
  register_types(node);
  const actor_id id{"tally", "t1"};
  const auto adds = write_history(node, id);
  AETHER_EVENTUALLY(snapshot_version_of(node, id) == 8, 10s);
  auto events = node.stores()->events->read_wait(id);
  REQUIRE(events);
  const auto live = look_at_live(node, id);
  CHECK(live.seen.version == history);
  check_folds(node_fold(node), id, adds, *events, 8);
  check_hostile(node_fold(node), id, false);
  check_live_untouched(node, id, live);
  // Nothing written: the history and the snapshot are as they were.
  CHECK(*node.stores()->events->latest_version_wait(id) == history);
  CHECK(snapshot_version_of(node, id) == 8);
  CHECK_FALSE(node.on_nats());
}

TEST_CASE("a node on JetStream folds the same, writes nothing, and answers query_state the same way") {
  aether::testing::nats_server server;
  aether::node node{small(server.url())};
  register_types(node);
  const actor_id id{"tally", "t2"};
  const auto adds = write_history(node, id);
  AETHER_EVENTUALLY(snapshot_version_of(node, id) == 8, 10s);
  auto events = node.stores()->events->read_wait(id);
  REQUIRE(events);
  auto conn = connect(server.url());
  const auto stream = aether::jetstream_event_store::stream_name("default");
  const auto stored = conn->stream_message_count(stream);
  REQUIRE(stored);
  const auto live = look_at_live(node, id);
  check_folds(node_fold(node), id, adds, *events, 8);
  check_folds(query_fold(*conn), id, adds, *events, 8);
  check_hostile(node_fold(node), id, false);
  check_hostile(query_fold(*conn), id, true);
  check_live_untouched(node, id, live);
  CHECK(*conn->stream_message_count(stream) == *stored);
  CHECK(snapshot_version_of(node, id) == 8);
}

TEST_CASE("a damaged event fails the folds that need it, with its version and stream sequence, and no other") {
  aether::testing::nats_server server;
  aether::node node{small(server.url())};
  register_types(node);
  const actor_id id{"tally", "t3"};
  const auto adds = write_history(node, id);
  AETHER_EVENTUALLY(snapshot_version_of(node, id) == 8, 10s);
  auto conn = connect(server.url());
  // Someone writes garbage where version 11 belongs (on the actor's
  // subject: the node's R1 stream is per-actor).
  const aether::nats::header last[] = {{"Aether-Last-Version", "11"}};
  auto ack = conn->request(aether::jetstream_event_store::actor_subject(id), "{not json", 5s, last);
  REQUIRE(ack);
  for (const auto& fold : {node_fold(node), query_fold(*conn)}) {
    auto before = fold(id, state_point::at_version(10));
    REQUIRE_MESSAGE(before, before.error().to_string());
    CHECK(before->state == aether::json::encode(state_test::fold_by_hand(adds, 10)));
    CHECK(before->last_version == 11);
    for (const auto point : {state_point::latest(), state_point::at_version(11), state_point::at_time(never)}) {
      auto r = fold(id, point);
      CHECK(failure(r) == state_failure::corrupted_event);
      CHECK(r.error().value() == 11);
      CHECK(r.error().detail().find("version 11") != std::string::npos);
      CHECK(r.error().detail().find("stream sequence") != std::string::npos);
    }
    auto past = fold(id, state_point::at_version(12));
    CHECK(failure(past) == state_failure::beyond_last_version);
    CHECK(past.error().value() == 11);
  }
}

TEST_CASE("a node process answers state queries for its types and a type no node serves fails at once") {
  aether::testing::nats_server server;
  auto conn = connect(server.url());
  // No node yet: no responders, so an unknown type rather than a timeout.
  auto none = aether::query_state(*conn, actor_id{"tally", "p1"}, state_point::latest(), 30s);
  CHECK(failure(none) == state_failure::unknown_type);

  aether::testing::child_process node{{"/usr/bin/env", "AETHER_NATS_URL=" + server.url(), "AETHER_NODE_ID=state-n1",
                                       "AETHER_SNAPSHOT_EVERY=3", "AETHER_THREADS=2", "AETHER_ROUTING=0",
                                       AETHER_STATE_NODE}};
  const auto deadline = [] { return std::chrono::steady_clock::now() + 60s; };
  auto ready = node.line(deadline());
  REQUIRE(ready);
  CHECK(*ready == "ready state-n1");
  const actor_id id{"tally", "p1"};
  std::vector<add> adds;
  for (std::uint64_t i = 1; i <= history; ++i) {
    adds.push_back(state_test::nth_add(i));
    node.write(fmt::format("add p1 {} l{}\n", adds.back().n, i));
    adds.back().label = fmt::format("l{}", i);
    auto answer = node.line(deadline());
    REQUIRE(answer);
    CHECK(*answer == fmt::format("ok {}", i));
  }
  for (std::uint64_t v = 1; v <= history; ++v) {
    auto r = aether::query_state(*conn, id, state_point::at_version(v), 20s);
    REQUIRE_MESSAGE(r, r.error().to_string());
    CHECK(r->state == aether::json::encode(state_test::fold_by_hand(adds, v)));
    CHECK(r->version == v);
    CHECK(r->last_version == history);
  }
  // Types the node did not register: no responders, at once.
  CHECK(failure(aether::query_state(*conn, actor_id{"plain", "x"}, state_point::latest(), 30s)) ==
        state_failure::unknown_type);
  CHECK(failure(aether::query_state(*conn, actor_id{"ghost", "x"}, state_point::latest(), 30s)) ==
        state_failure::unknown_type);

  // Requests no client of this library would send: typed answers, and the
  // node goes on serving.
  const auto subject = std::string{"aether_ctl.state.tally"};
  for (const auto* bad :
       {"{not json", R"({"actor":"default/tally/p1","at":"sideways"})", R"({"actor":"default/other/p1","at":"latest"})",
        R"({"actor":"no slashes","at":"latest"})", R"({"actor":"default/tally/p1","at":"version","version":-1})"}) {
    CAPTURE(bad);
    auto reply = conn->request(subject, bad, 20s);
    REQUIRE(reply);
    CHECK(reply->data.find(R"("error":")") != std::string::npos);
  }
  auto still = aether::query_state(*conn, id, state_point::latest(), 20s);
  REQUIRE(still);
  CHECK(still->version == history);

  node.close_input();
  REQUIRE(node.wait(deadline()));
  // The node is gone: nobody serves the type any more.
  AETHER_EVENTUALLY(!aether::query_state(*conn, id, state_point::latest(), 20s) &&
                        aether::query_state(*conn, id, state_point::latest(), 20s).error().code() ==
                            errc::unknown_actor_type,
                    20s);
}
