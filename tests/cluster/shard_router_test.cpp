// The router between one node's actor system and other nodes' inboxes, on a
// real nats-server; the test plays the other nodes and sets the maps.
#include "remote_envelope.hpp"
#include "shard_router.hpp"
#include "subjects.hpp"
#include "support/eventually.hpp"
#include "support/nats_server.hpp"
#include "wire_messages.hpp"

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using aether::member_id;
using aether::remote_envelope;
using aether::remote_kind;

namespace sr {

using wire::balance;
using wire::deposit;

class account : public aether::actor {
public:
  account() {
    on([this](const deposit& d) {
      cents_ += d.cents;
      return balance{cents_, {}};
    });
  }

private:
  std::int64_t cents_ = 0;
};

/// Shows the order it was told deposits in: each one's cents as a digit.
class journal : public aether::actor {
public:
  journal() {
    on([this](const deposit& d) {
      digits_ = digits_ * 10 + d.cents;
      return balance{digits_, {}};
    });
  }

private:
  std::int64_t digits_ = 0;
};

/// Keeps its mailbox's thread busy: a deposit's cents in milliseconds.
class sleeper : public aether::actor {
public:
  sleeper() {
    on([](const deposit& d) { std::this_thread::sleep_for(std::chrono::milliseconds{d.cents}); });
  }
};

} // namespace sr

namespace {

constexpr std::uint32_t shards = 16;
const std::string cluster_name = "rtest";

/// Another node, played by the test: what arrives at its inbox.
class fake_node {
public:
  fake_node(aether::nats::connection& conn, member_id id) : id_{std::move(id)} {
    // The callback may still run while the node is destroyed (an
    // unsubscribe does not wait for it): it shares what it writes.
    sub_ = conn.subscribe(aether::cluster_subjects::node_inbox(cluster_name, id_.node, id_.incarnation),
                          [in = in_](const aether::nats::message_view& m) {
                            // One envelope, or a batch of tells (in order).
                            std::vector<std::string_view> parts{m.data()};
                            std::lock_guard lock{in->mutex};
                            if (aether::is_batch(m.data())) {
                              auto split = aether::split_batch(m.data());
                              if (!split) {
                                ++in->malformed;
                                return;
                              }
                              parts = std::move(*split);
                            }
                            for (auto p : parts) {
                              auto e = aether::decode_envelope(p);
                              if (!e) {
                                ++in->malformed;
                                continue;
                              }
                              in->seen.push_back(std::move(*e));
                            }
                          })
               .value();
  }
  [[nodiscard]] std::vector<remote_envelope> seen() const {
    std::lock_guard lock{in_->mutex};
    return in_->seen;
  }
  /// The fences that reached it (queries with a correlation), in order.
  [[nodiscard]] std::vector<remote_envelope> fences() const {
    std::vector<remote_envelope> out;
    for (auto& e : seen()) {
      if (e.kind == remote_kind::query && e.correlation != 0) out.push_back(std::move(e));
    }
    return out;
  }
  /// Envelopes that did not decode (never expected).
  [[nodiscard]] int malformed() const {
    std::lock_guard lock{in_->mutex};
    return in_->malformed;
  }
  const member_id id_;

private:
  struct inbox {
    std::mutex mutex;
    int malformed = 0;
    std::vector<remote_envelope> seen;
  };
  std::shared_ptr<inbox> in_ = std::make_shared<inbox>();
  aether::nats::subscription sub_;
};

struct router_fixture {
  aether::testing::nats_server server;
  std::shared_ptr<aether::nats::connection> conn;
  aether::thread_pool_executor pool{2, 5};
  aether::actor_system system{config(), pool};
  std::shared_ptr<aether::shard_router> router;
  const member_id self{"a", 1};

  explicit router_fixture(aether::shard_router::options opts = {}) {
    aether::nats::connect_options o;
    o.url = server.url();
    o.send_asap = true;
    conn = aether::nats::connection::connect(o).value();
    system.register_actor<sr::account>("account");
    system.register_actor<sr::journal>("journal");
    system.register_actor<sr::sleeper>("sleeper");
    router = std::make_shared<aether::shard_router>(system, pool, 4, conn, cluster_name, shards, opts);
  }
  ~router_fixture() {
    system.set_placement(nullptr);
    router->stop();
    aether::close_and_join(system, pool);
  }

  static aether::system_config config() {
    aether::system_config c;
    c.shard_count = 4;
    return c;
  }

  /// Applies map `epoch` with every shard owned by `owner` (empty: none);
  /// the nodes the tests play are alive, or `gone` (left, or dead) as `left` says.
  void map(std::uint64_t epoch, const member_id& owner, const std::vector<member_id>& left = {},
           aether::member_status gone = aether::member_status::left) {
    aether::cluster_snapshot s;
    s.cluster = cluster_name;
    s.self = self;
    s.shard_count = shards;
    s.serving = true;
    s.map = std::make_shared<const aether::shard_map>(epoch, 1, std::vector<member_id>(shards, owner));
    // Every node the tests play is alive.
    for (const auto& m : {self, member_id{"b", 2}, member_id{"c", 3}}) {
      const bool out = std::find(left.begin(), left.end(), m) != left.end();
      s.members.push_back(aether::member{m, out ? gone : aether::member_status::alive});
    }
    if (owner == self) {
      for (std::uint32_t i = 0; i < shards; ++i) s.owned_shards.push_back(i);
    }
    router->apply(s);
    system.set_placement(router.get());
  }

  void send_to_self(const remote_envelope& e) { REQUIRE(router->send(self, e)); }
};

remote_envelope answer_to(const remote_envelope& ask, remote_kind kind, const member_id& from) {
  remote_envelope e;
  e.kind = kind;
  e.from = from;
  e.correlation = ask.correlation;
  if (kind == remote_kind::answer) {
    e.type = "wire.balance";
    e.payload = R"({"cents":5,"node":""})";
  }
  return e;
}

} // namespace

TEST_CASE("an ask answered not_owner goes again to the owner in the newest map, and only then") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  fake_node c{*f.conn, member_id{"c", 3}};
  f.map(1, b.id_);
  auto pending = f.system.ask<sr::balance>(actor_id{"account", "x"}, sr::deposit{5}, 10s);
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  const auto first = b.seen()[0];
  CHECK(first.kind == remote_kind::ask);
  CHECK(first.epoch == 1);
  CHECK(first.shard == actor_id{"account", "x"}.shard(shards));
  CHECK(first.timeout_ms > 0);
  CHECK(first.payload == R"({"cents":5})");
  f.map(2, c.id_);
  f.send_to_self(answer_to(first, remote_kind::not_owner, b.id_));
  // Before the shard's messages go to c, a fence goes to b behind the ask
  // sent there; the ask waits until b says it passed.
  AETHER_EVENTUALLY(b.seen().size() == 2, 10s);
  const auto fence = b.seen()[1];
  CHECK(fence.kind == remote_kind::query);
  CHECK(fence.correlation != 0);
  CHECK(fence.correlation != first.correlation);
  CHECK(fence.shard == first.shard);
  CHECK(c.seen().empty());
  remote_envelope passed;
  passed.kind = remote_kind::released;
  passed.from = b.id_;
  passed.shard = fence.shard;
  passed.correlation = fence.correlation;
  f.send_to_self(passed);
  AETHER_EVENTUALLY(c.seen().size() == 1, 10s);
  CHECK(c.seen()[0].correlation == first.correlation);
  CHECK(c.seen()[0].epoch == 2);
  f.send_to_self(answer_to(c.seen()[0], remote_kind::answer, c.id_));
  auto r = pending.get();
  REQUIRE(r);
  CHECK(r->cents == 5);
  CHECK(b.seen().size() == 2); // the ask once, then the fence
}

TEST_CASE("an ask waits while no node owns its shard, then goes to the first owner") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  f.map(1, member_id{});
  auto pending = f.system.ask<sr::balance>(actor_id{"account", "y"}, sr::deposit{5}, 10s);
  f.map(2, b.id_);
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  f.send_to_self(answer_to(b.seen()[0], remote_kind::answer, b.id_));
  auto r = pending.get();
  REQUIRE(r);
  CHECK(r->cents == 5);
}

TEST_CASE("an ask that may have been delivered is never sent twice: it times out") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  f.map(1, b.id_);
  auto r = f.system.ask<sr::balance>(actor_id{"account", "z"}, sr::deposit{5}, 300ms).get();
  REQUIRE(!r);
  CHECK(r.error() == errc::timeout);
  REQUIRE(f.conn->flush(5s));
  CHECK(b.seen().size() == 1);
}

TEST_CASE("a tell waits while no node owns the shard and goes to the first owner, one without a wire form fails") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  f.map(1, member_id{});
  REQUIRE(f.system.tell(actor_id{"account", "w"}, sr::deposit{1}));
  REQUIRE(f.system.tell(actor_id{"account", "w"}, sr::deposit{2}));
  CHECK(f.router->state(actor_id{"account", "w"}.shard(shards)) == aether::shard_state::remote);
  f.map(2, b.id_);
  AETHER_EVENTUALLY(b.seen().size() == 2, 10s);
  CHECK(b.seen()[0].payload == R"({"cents":1})");
  CHECK(b.seen()[1].payload == R"({"cents":2})");
  // It goes by the map it is sent by, as the next tells will: a node that
  // has not applied that map yet keeps it rather than sending it back.
  CHECK(b.seen()[1].epoch == 2);
  struct plain {};
  auto plain_sent = f.system.tell(actor_id{"account", "w"}, plain{});
  REQUIRE(!plain_sent);
  CHECK(plain_sent.error() == errc::no_wire_form);
}

TEST_CASE("a node answers asks for shards it owns, and not_owner for the others") {
  router_fixture f;
  fake_node t{*f.conn, member_id{"t", 9}};
  remote_envelope ask;
  ask.kind = remote_kind::ask;
  ask.from = t.id_;
  ask.target = actor_id{"account", "v"};
  ask.type = "wire.deposit";
  ask.payload = R"({"cents":3})";
  ask.correlation = 77;
  ask.timeout_ms = 5000;
  f.map(1, member_id{"b", 2});
  f.send_to_self(ask);
  AETHER_EVENTUALLY(t.seen().size() == 1, 10s);
  CHECK(t.seen()[0].kind == remote_kind::not_owner);
  CHECK(t.seen()[0].correlation == 77);
  CHECK(f.system.active_actors() == 0);

  f.map(2, f.self);
  ask.correlation = 78;
  f.send_to_self(ask);
  AETHER_EVENTUALLY(t.seen().size() == 2, 10s);
  const auto answer = t.seen()[1];
  CHECK(answer.kind == remote_kind::answer);
  CHECK(answer.correlation == 78);
  CHECK(answer.type == "wire.balance");
  CHECK(answer.payload == R"({"cents":3,"node":""})");

  // An unknown type name answers the asker with a typed error.
  ask.correlation = 79;
  ask.type = "wire.withdraw";
  f.send_to_self(ask);
  AETHER_EVENTUALLY(t.seen().size() == 3, 10s);
  REQUIRE(t.seen()[2].failure);
  CHECK(t.seen()[2].failure->code() == errc::unknown_message_type);
  CHECK(t.seen()[2].from == f.self);
  CHECK(t.malformed() == 0);
}

TEST_CASE("a message the mailbox hands back travels on to the owner as it came, not as an unknown type") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  f.map(1, b.id_);
  // What a mailbox hands back when its actor's shard moved on: the message
  // as it arrived from another node, never decoded here.
  aether::outbound_message m;
  m.target = actor_id{"account", "u"};
  m.payload = aether::message{aether::wire_message{"wire.deposit", R"({"cents":4})"}};
  REQUIRE(f.router->forward(std::move(m)));
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  CHECK(b.seen()[0].kind == remote_kind::tell);
  CHECK(b.seen()[0].type == "wire.deposit");
  CHECK(b.seen()[0].payload == R"({"cents":4})");
  CHECK(f.system.metrics().dead_letters == 0);
}

TEST_CASE(
    "a tell kept while no owner is known waits behind the fence on the tells sent before it, which come back first") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  const actor_id id{"journal", "j"};
  const auto shard = id.shard(shards);
  f.map(1, b.id_);
  REQUIRE(f.system.tell(id, sr::deposit{1}));
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  const auto first = b.seen()[0];
  // b leaves before a map names the shard's next owner: the next tell has
  // no node to go to, while the first may still be at b, to come back.
  f.map(1, b.id_, {b.id_});
  REQUIRE(f.system.tell(id, sr::deposit{2}));
  // This node is the next owner. b sends back what it held for the shard
  // (the first tell, then the fence behind it), then its release.
  f.map(2, f.self, {b.id_});
  remote_envelope fence;
  AETHER_EVENTUALLY(
      [&] {
        for (const auto& e : b.seen()) {
          if (e.kind == remote_kind::query && e.correlation != 0) {
            fence = e;
            return true;
          }
        }
        return false;
      }(),
      10s);
  CHECK(fence.shard == shard);
  auto back = first;
  back.from = b.id_;
  back.hops = 1;
  f.send_to_self(back);
  f.send_to_self(fence);
  remote_envelope released;
  released.kind = remote_kind::released;
  released.from = b.id_;
  released.epoch = 1;
  released.shard = shard;
  f.send_to_self(released);
  AETHER_EVENTUALLY(f.router->state(shard) == aether::shard_state::serving, 10s);
  auto r = f.system.ask<sr::balance>(id, sr::deposit{3}, 10s).get();
  REQUIRE(r);
  CHECK(r->cents == 123);
}

TEST_CASE(
    "a tell that comes while the shard drains goes on to the new owner ahead of the release, a fence passes at once") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  fake_node t{*f.conn, member_id{"t", 9}};
  const actor_id slow{"sleeper", "s"};
  const actor_id id{"journal", "k"};
  f.map(1, f.self);
  AETHER_EVENTUALLY(f.router->state(id.shard(shards)) == aether::shard_state::serving, 10s);
  // A slow handler keeps the shards draining a while.
  REQUIRE(f.system.tell(slow, sr::deposit{500}));
  f.map(2, b.id_);
  remote_envelope e;
  e.kind = remote_kind::tell;
  e.from = t.id_;
  e.target = id;
  e.type = "wire.deposit";
  e.payload = R"({"cents":7})";
  e.epoch = 1;
  e.shard = id.shard(shards);
  f.send_to_self(e);
  // t's fence behind it passes at once, while the shard still drains: what
  // t sent before it went on to b.
  remote_envelope fence;
  fence.kind = remote_kind::query;
  fence.from = t.id_;
  fence.epoch = 1;
  fence.shard = e.shard;
  fence.correlation = 5;
  f.send_to_self(fence);
  AETHER_EVENTUALLY(!t.seen().empty(), 10s);
  CHECK(t.seen()[0].kind == remote_kind::released);
  CHECK(t.seen()[0].correlation == 5);
  AETHER_EVENTUALLY(
      [&] {
        for (const auto& x : b.seen()) {
          if (x.kind == remote_kind::released && x.shard == e.shard) return true;
        }
        return false;
      }(),
      20s);
  // In order on b's inbox: the tell, then the release of its shard.
  std::vector<remote_kind> order;
  for (const auto& x : b.seen()) {
    if (x.kind == remote_kind::tell && x.target == id) order.push_back(x.kind);
    if (x.kind == remote_kind::released && x.shard == e.shard) order.push_back(x.kind);
  }
  CHECK(order == std::vector<remote_kind>{remote_kind::tell, remote_kind::released});
}

TEST_CASE("a tell sent by a map this node has not applied yet waits here for it, not sent back by the older one") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  fake_node t{*f.conn, member_id{"t", 9}};
  const actor_id id{"journal", "n"};
  const auto shard = id.shard(shards);
  f.map(1, b.id_);
  // t has map 2 already, which gives the shard to this node.
  remote_envelope e;
  e.kind = remote_kind::tell;
  e.from = t.id_;
  e.target = id;
  e.type = "wire.deposit";
  e.payload = R"({"cents":1})";
  e.epoch = 2;
  e.shard = shard;
  f.send_to_self(e);
  REQUIRE(f.conn->flush(5s));
  std::this_thread::sleep_for(200ms); // what must not come: the tell sent on to b
  f.map(2, f.self);
  remote_envelope released;
  released.kind = remote_kind::released;
  released.from = b.id_;
  released.epoch = 2;
  released.shard = shard;
  f.send_to_self(released);
  AETHER_EVENTUALLY(f.router->state(shard) == aether::shard_state::serving, 10s);
  auto r = f.system.ask<sr::balance>(id, sr::deposit{3}, 10s).get();
  REQUIRE(r);
  CHECK(r->cents == 13);
  for (const auto& x : b.seen()) CHECK(x.kind != remote_kind::tell);
}

TEST_CASE("a tell sent on by the node this one's map names as owner waits here for the newer map") {
  router_fixture f;
  fake_node b{*f.conn, member_id{"b", 2}};
  const actor_id id{"journal", "o"};
  const auto shard = id.shard(shards);
  f.map(1, b.id_);
  // b drains the shard to this node by map 2 and sends on a tell it got
  // meanwhile, sent by map 1: sent back to b it would go round.
  remote_envelope e;
  e.kind = remote_kind::tell;
  e.from = b.id_;
  e.target = id;
  e.type = "wire.deposit";
  e.payload = R"({"cents":1})";
  e.epoch = 1;
  e.shard = shard;
  e.hops = 1;
  f.send_to_self(e);
  REQUIRE(f.conn->flush(5s));
  std::this_thread::sleep_for(200ms); // what must not come: the tell sent back to b
  f.map(2, f.self);
  remote_envelope released;
  released.kind = remote_kind::released;
  released.from = b.id_;
  released.epoch = 2;
  released.shard = shard;
  f.send_to_self(released);
  AETHER_EVENTUALLY(f.router->state(shard) == aether::shard_state::serving, 10s);
  auto r = f.system.ask<sr::balance>(id, sr::deposit{3}, 10s).get();
  REQUIRE(r);
  CHECK(r->cents == 13);
  for (const auto& x : b.seen()) CHECK(x.kind != remote_kind::tell);
}

TEST_CASE("a fence a live node does not answer in time is sent again, and the tells behind it wait for its answer") {
  aether::shard_router::options o;
  o.fence_timeout = 300ms;
  router_fixture f{o};
  fake_node b{*f.conn, member_id{"b", 2}};
  fake_node c{*f.conn, member_id{"c", 3}};
  const actor_id id{"journal", "f"};
  f.map(1, b.id_);
  REQUIRE(f.system.tell(id, sr::deposit{1}));
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  // The shard moves to c; b, alive but slow, does not answer the fence.
  f.map(2, c.id_);
  REQUIRE(f.system.tell(id, sr::deposit{2}));
  AETHER_EVENTUALLY(b.fences().size() >= 3, 10s);
  CHECK(b.fences()[0].correlation == b.fences()[2].correlation);
  CHECK(b.fences()[2].shard == id.shard(shards));
  // Well past the fence timeout, the tell still waits for the answer.
  CHECK(c.seen().empty());
  // b answers (once per fence it got): the tell goes on to c, once.
  remote_envelope passed;
  passed.kind = remote_kind::released;
  passed.from = b.id_;
  passed.shard = id.shard(shards);
  passed.correlation = b.fences()[0].correlation;
  f.send_to_self(passed);
  f.send_to_self(passed);
  AETHER_EVENTUALLY(!c.seen().empty(), 10s);
  std::this_thread::sleep_for(300ms);
  REQUIRE(c.seen().size() == 1);
  CHECK(c.seen()[0].kind == remote_kind::tell);
  CHECK(c.seen()[0].payload.find("2") != std::string::npos);
}

TEST_CASE("a fence to a node that left is given up only at its limit, one to a node declared dead at once") {
  aether::shard_router::options o;
  o.fence_timeout = 300ms;
  o.fence_limit = 5s;
  router_fixture f{o};
  fake_node b{*f.conn, member_id{"b", 2}};
  fake_node c{*f.conn, member_id{"c", 3}};
  const actor_id id{"journal", "g"};
  f.map(1, b.id_);
  REQUIRE(f.system.tell(id, sr::deposit{1}));
  AETHER_EVENTUALLY(b.seen().size() == 1, 10s);
  // Left (it still hands its shards over) and silent: the tell goes on to
  // c at the limit (5 s), not before.
  const auto start = std::chrono::steady_clock::now();
  f.map(2, c.id_, {b.id_});
  REQUIRE(f.system.tell(id, sr::deposit{2}));
  AETHER_EVENTUALLY(!c.seen().empty(), 10s);
  CHECK(std::chrono::steady_clock::now() - start >= 4900ms);
  // A fence to b that b never answers, then b is declared dead: the tell
  // behind the fence goes on at once.
  const actor_id other{"journal", "h"};
  f.map(3, b.id_);
  REQUIRE(f.system.tell(other, sr::deposit{1}));
  AETHER_EVENTUALLY(
      [&] {
        const auto seen = b.seen();
        return std::any_of(seen.begin(), seen.end(), [&](const remote_envelope& e) { return e.target == other; });
      }(),
      10s);
  const auto before = c.seen().size();
  const auto fences = b.fences().size();
  f.map(4, c.id_);
  REQUIRE(f.system.tell(other, sr::deposit{2}));
  AETHER_EVENTUALLY(b.fences().size() > fences, 10s);
  const auto dead_at = std::chrono::steady_clock::now();
  f.map(5, c.id_, {b.id_}, aether::member_status::dead);
  AETHER_EVENTUALLY(c.seen().size() > before, 10s);
  CHECK(std::chrono::steady_clock::now() - dead_at < 4900ms);
}
