// Tells and asks between node processes on one nats-server: each message
// reaches the node that owns its actor's cluster shard.
#include "support/child_process.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

/// A routing node process and its command line protocol.
struct routing_node {
  std::string id;
  std::unique_ptr<aether::testing::child_process> process;

  routing_node(const std::string& url, std::string node_id, const std::string& cluster, int expect)
      : id{std::move(node_id)} {
    process = std::make_unique<aether::testing::child_process>(std::vector<std::string>{
        "/usr/bin/env", "AETHER_NATS_URL=" + url, "AETHER_CLUSTER=" + cluster, "AETHER_NODE_ID=" + id,
        "AETHER_ROUTING=1", "AETHER_CLUSTER_SHARDS=16", "AETHER_EXPECT_NODES=" + std::to_string(expect),
        "AETHER_LOG=warn", AETHER_ROUTING_NODE});
  }

  /// Waits for `serving`: the node serves and the map gives every node shards.
  void wait_serving() {
    auto l = process->line(clock_type::now() + 60s);
    REQUIRE_MESSAGE(l.has_value(), id << " did not start");
    REQUIRE_MESSAGE(l->rfind("serving " + id, 0) == 0, id << ": " << *l);
  }

  /// Runs one command and returns its answer line.
  std::string operator()(const std::string& command) {
    process->write(command + "\n");
    auto l = process->line(clock_type::now() + 30s);
    REQUIRE_MESSAGE(l.has_value(), id << " did not answer " << command);
    return *l;
  }

  ~routing_node() {
    if (process) {
      process->write("quit\n");
      (void)process->wait(clock_type::now() + 20s);
    }
  }
};

/// Asks `n` with `command` until the answer starts with `expected`.
std::string until_answer(routing_node& n, const std::string& command, const std::string& expected,
                         std::chrono::seconds limit = 20s) {
  const auto deadline = clock_type::now() + limit;
  std::string last;
  while (clock_type::now() < deadline) {
    last = n(command);
    if (last.rfind(expected, 0) == 0) return last;
  }
  FAIL("no answer '" << expected << "' to " << command << " within " << limit.count() << " s; last: " << last);
  return last;
}

/// Keys of accounts `n` sees on another node, the first `count` of them.
std::vector<std::string> keys_where(routing_node& n, const std::string& answer, std::size_t count) {
  std::vector<std::string> keys;
  for (int i = 0; i < 500 && keys.size() < count; ++i) {
    const auto key = "k" + std::to_string(i);
    if (n("where " + key) == answer) keys.push_back(key);
  }
  REQUIRE(keys.size() == count);
  return keys;
}

std::string expected_notes(int count) {
  std::string out;
  for (int i = 1; i <= count; ++i) out += (out.empty() ? "" : ",") + std::to_string(i);
  return out;
}

} // namespace

TEST_CASE("two node processes route tells, asks, replies and errors to the owner of each shard") {
  aether::testing::nats_server server;
  routing_node a{server.url(), "a", "route2", 2};
  routing_node b{server.url(), "b", "route2", 2};
  a.wait_serving();
  b.wait_serving();
  const auto remote = keys_where(a, "remote b", 4); // accounts on b, as a sees them
  const auto local = keys_where(a, "here", 1);      // an account on a
  for (const auto& k : remote) REQUIRE(b("where " + k) == "here");

  // An ask through a reaches the account on b, and its state stays there.
  // (the first answer may wait for b to learn of the map a used)
  CHECK(until_answer(a, "ask " + remote[0] + " deposit 5", "ok") == "ok 5 b");
  CHECK(a("ask " + remote[0] + " deposit 7") == "ok 12 b");
  CHECK(b("ask " + remote[0] + " get") == "ok 12 b");

  // ctx.sender() across nodes: a's actor tells b's, which answers by replying to its sender.
  CHECK(a("tell " + local[0] + " ping_via " + remote[1]) == "sent");
  CHECK(until_answer(a, "ask " + local[0] + " pongs", "ok b<-default/account/" + local[0]) ==
        "ok b<-default/account/" + local[0]);

  // An ask from a handler reaches the other node, and its answer comes back to the asking actor.
  CHECK(a("ask " + local[0] + " ask_via " + remote[1]) == "ok 1 b");

  // Typed errors: no wire form at send time, an unknown type on arrival, the remote actor's own error.
  CHECK(a("ask " + remote[0] + " plain") == "err no_wire_form 0");
  CHECK(a("tell " + remote[0] + " plain") == "err no_wire_form 0");
  CHECK(a("ask " + remote[0] + " unhandled") == "err unknown_message_type 0");
  CHECK(a("ask " + remote[0] + " conflict") == "err version_conflict 41");

  // Order per sender and receiver: an actor's tells, and tells from outside.
  constexpr int notes = 300;
  CHECK(a("tell " + local[0] + " send_notes " + remote[2] + ":" + std::to_string(notes)) == "sent");
  CHECK(until_answer(a, "ask " + remote[2] + " notes", "ok b " + expected_notes(notes)) ==
        "ok b " + expected_notes(notes));
  CHECK(a("tell " + remote[3] + " notes " + std::to_string(notes)) == "sent");
  CHECK(until_answer(a, "ask " + remote[3] + " notes", "ok b " + expected_notes(notes)) ==
        "ok b " + expected_notes(notes));
}
