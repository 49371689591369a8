// The placement step of the send path: what it sees, what never reaches it,
// and messages that arrive in their wire form.
#include "cluster/wire_messages.hpp"
#include "test_actors.hpp"

#include <aether/actors/placement.hpp>
#include <aether/runtime/json.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

using aether::actor_id;
using aether::errc;

namespace wire {

/// Keeps a balance; relays a deposit to another account by tell or ask.
class account : public aether::actor {
public:
  account() {
    on([this](const deposit& d) {
      cents_ += d.cents;
      return balance{cents_, {}};
    });
    on([this](const get_balance&) { return balance{cents_, {}}; });
    on([](const relay& r, aether::context& ctx) {
      const auto to = actor_id::parse(r.to).value();
      if (r.ask) {
        ctx.ask<balance>(to, deposit{1}, std::chrono::seconds{1})
            .then([](const balance&) {}, [](const aether::error&) {});
      } else {
        (void)ctx.tell(to, deposit{1});
      }
    });
    on([](const test::add&, aether::context& ctx) { ctx.reply(deposit{7}); });
  }

private:
  std::int64_t cents_ = 0;
};

} // namespace wire

namespace {

/// Puts actors whose key starts with "far" on another node and records what
/// it is handed.
class recording_placement final : public aether::placement {
public:
  bool is_local(const actor_id& target) const noexcept override { return !target.key().starts_with("far"); }
  aether::expected<void> forward(aether::outbound_message&& m) override {
    forwarded.push_back(std::move(m));
    if (refuse) return aether::error{errc::unavailable, "refused"};
    return {};
  }
  std::vector<aether::outbound_message> forwarded;
  bool refuse = false;
};

struct placement_fixture : test::manual_fixture {
  recording_placement where;
  placement_fixture() {
    system.register_actor<wire::account>("account");
    system.set_placement(&where);
  }
  ~placement_fixture() { system.set_placement(nullptr); }
};

} // namespace

TEST_CASE("without a placement every actor is local") {
  test::manual_fixture f;
  f.system.register_actor<wire::account>("account");
  REQUIRE(f.system.tell(actor_id{"account", "far-1"}, wire::deposit{5}));
  f.exec.run();
  CHECK(f.ask<wire::balance>(actor_id{"account", "far-1"}, wire::get_balance{})->cents == 5);
}

TEST_CASE("a tell to an actor elsewhere goes to the placement, never to a local mailbox") {
  placement_fixture f;
  REQUIRE(f.system.tell(actor_id{"account", "far-1"}, wire::deposit{5}));
  f.exec.run();
  REQUIRE(f.where.forwarded.size() == 1);
  const auto& m = f.where.forwarded[0];
  CHECK(m.target == actor_id{"account", "far-1"});
  CHECK(m.sender.empty());
  CHECK(!m.reply);
  CHECK(m.payload.get_if<wire::deposit>()->cents == 5);
  CHECK(f.system.active_actors() == 0);
}

TEST_CASE("an ask to an actor elsewhere hands the placement its reply slot and timeout") {
  placement_fixture f;
  auto p = f.system.ask<wire::balance>(actor_id{"account", "far-2"}, wire::get_balance{}, std::chrono::seconds{3});
  f.exec.run();
  REQUIRE(f.where.forwarded.size() == 1);
  auto& m = f.where.forwarded[0];
  REQUIRE(m.reply);
  CHECK(m.timeout == std::chrono::seconds{3});
  // The answer comes back in its wire form and is decoded as the asker's type.
  m.reply->complete(aether::message{aether::wire_message{"wire.balance", R"({"cents":42,"node":""})"}});
  f.exec.run();
  auto r = p.get();
  REQUIRE(r);
  CHECK(r->cents == 42);
}

TEST_CASE("a refused forward is the send's result") {
  placement_fixture f;
  f.where.refuse = true;
  auto sent = f.system.tell(actor_id{"account", "far-1"}, wire::deposit{5});
  REQUIRE(!sent);
  CHECK(sent.error() == errc::unavailable);
  auto asked = f.ask<wire::balance>(actor_id{"account", "far-1"}, wire::get_balance{});
  REQUIRE(!asked);
  CHECK(asked.error() == errc::unavailable);
}

TEST_CASE("tells and asks from a handler name the sending actor") {
  placement_fixture f;
  REQUIRE(f.system.tell(actor_id{"account", "near"}, wire::relay{"default/account/far-3", false}));
  REQUIRE(f.system.tell(actor_id{"account", "near"}, wire::relay{"default/account/far-4", true}));
  f.exec.run();
  REQUIRE(f.where.forwarded.size() == 2);
  CHECK(f.where.forwarded[0].sender == actor_id{"account", "near"});
  CHECK(!f.where.forwarded[0].reply);
  CHECK(f.where.forwarded[1].sender == actor_id{"account", "near"});
  CHECK(f.where.forwarded[1].reply);
  CHECK(f.where.forwarded[1].timeout == std::chrono::seconds{1});
  // The asker's answer goes to its own mailbox, never through the placement.
  f.where.forwarded[1].reply->complete(aether::message{wire::balance{1, {}}});
  f.exec.run();
  CHECK(f.where.forwarded.size() == 2);
}

TEST_CASE("a reply to a sender elsewhere goes through the placement") {
  placement_fixture f;
  REQUIRE(f.system.deliver(actor_id{"account", "near"}, actor_id{"account", "far-5"}, aether::message{test::add{1}}));
  f.exec.run();
  REQUIRE(f.where.forwarded.size() == 1);
  CHECK(f.where.forwarded[0].target == actor_id{"account", "far-5"});
  CHECK(f.where.forwarded[0].sender == actor_id{"account", "near"});
  CHECK(f.where.forwarded[0].payload.get_if<wire::deposit>()->cents == 7);
}

TEST_CASE("a message delivered in its wire form is decoded for the handler of its name") {
  placement_fixture f;
  const actor_id id{"account", "near"};
  REQUIRE(f.system.deliver(id, {}, aether::message{aether::wire_message{"wire.deposit", R"({"cents":9})"}}));
  f.exec.run();
  CHECK(f.ask<wire::balance>(id, wire::get_balance{})->cents == 9);
}

TEST_CASE("an unknown type name or an undecodable payload answers the asker and counts a dead letter") {
  placement_fixture f;
  const actor_id id{"account", "near"};
  // Keeps the answer, as the slot of an ask from another node does.
  struct kept_answer final : aether::detail::reply_slot {
    aether::message answer;
    void deliver(aether::message&& m) override { answer = std::move(m); }
  };
  auto ask_wire = [&](std::string name, std::string json) {
    auto slot = aether::make_intrusive<kept_answer>();
    REQUIRE(f.system.deliver(id, {}, aether::message{aether::wire_message{std::move(name), std::move(json)}}, slot));
    f.exec.run();
    REQUIRE(slot->done());
    return aether::detail::take_answer<wire::balance>(slot->answer);
  };
  const auto before = f.system.metrics().dead_letters;
  auto unknown = ask_wire("wire.nothing", "{}");
  REQUIRE(!unknown);
  CHECK(unknown.error() == errc::unknown_message_type);
  auto bad = ask_wire("wire.deposit", R"({"cents":"many"})");
  REQUIRE(!bad);
  CHECK(bad.error() == errc::malformed_payload);
  CHECK(f.system.metrics().dead_letters == before + 2);
}

TEST_CASE("a wire reply that does not decode as the expected type is malformed_payload") {
  aether::message m{aether::wire_message{"wire.balance", R"({"cents":true})"}};
  auto r = aether::detail::take_answer<wire::balance>(m);
  REQUIRE(!r);
  CHECK(r.error() == errc::malformed_payload);
}

TEST_CASE("only named types with declared fields have a wire form") {
  std::string out;
  CHECK(aether::encode_wire(aether::message{wire::deposit{3}}, out));
  CHECK(out == R"({"cents":3})");
  auto none = aether::encode_wire(aether::message{test::add{1}}, out);
  REQUIRE(!none);
  CHECK(none.error() == errc::no_wire_form);
  CHECK(!aether::message_type_of<test::add>()->decode);
}
