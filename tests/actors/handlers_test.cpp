#include "test_actors.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace std::chrono_literals;
using aether::actor_id;

namespace {

struct withdraw {
  int amount;
};
struct big_message {
  std::string a, b, c; // larger than the inline buffer
  int n;
};
struct set_name {
  std::string name;
};

class account : public aether::actor {
public:
  account() {
    on(&account::handle_withdraw);
    on(&account::handle_big);
    on([this](const set_name& r, aether::context& ctx) {
      name_ = r.name;
      ctx.reply(std::string{ctx.self().key()});
    });
    on([this](const test::get&) { return balance_; });
  }

private:
  aether::expected<int> handle_withdraw(const withdraw& w) {
    if (w.amount > balance_) return aether::error{aether::errc::invalid_argument, "insufficient funds"};
    balance_ -= w.amount;
    return balance_;
  }
  int handle_big(const big_message& m, aether::context&) { return static_cast<int>(m.a.size()) + m.n; }

  int balance_ = 100;
  std::string name_;
};

} // namespace

TEST_CASE("handlers are found by message type, from lambdas and member functions") {
  test::manual_fixture f;
  f.system.register_actor<account>("account");
  const actor_id acc{"account", "a1"};
  CHECK(*f.ask<int>(acc, withdraw{30}) == 70);
  CHECK(*f.ask<int>(acc, big_message{"xxxx", "", "", 3}) == 7);
  CHECK(*f.ask<std::string>(acc, set_name{"alice"}) == "a1");
  CHECK(*f.ask<int>(acc, test::get{}) == 70);
}

TEST_CASE("a handler returning an error answers the asker with it") {
  test::manual_fixture f;
  f.system.register_actor<account>("account");
  auto r = f.ask<int>(actor_id{"account", "a1"}, withdraw{500});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::invalid_argument);
  CHECK(r.error().detail() == "insufficient funds");
}

TEST_CASE("a message without a handler gets unknown_message_type, a tell becomes a dead letter") {
  aether::system_config cfg = test::manual_fixture::small_config();
  int dead = 0;
  cfg.on_dead_letter = [&](const aether::dead_letter& d) {
    CHECK(d.reason == aether::errc::unknown_message_type);
    ++dead;
  };
  test::manual_fixture f{cfg};
  f.system.register_actor<account>("account");
  auto r = f.ask<int>(actor_id{"account", "a1"}, test::boom{"?"});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::unknown_message_type);
  REQUIRE(f.system.tell(actor_id{"account", "a1"}, test::boom{"?"}));
  f.exec.run();
  CHECK(dead == 1);
  CHECK(f.system.metrics().dead_letters == 1);
}

TEST_CASE("a reply of another type than asked for is unexpected_reply") {
  test::manual_fixture f;
  f.system.register_actor<account>("account");
  auto r = f.ask<std::string>(actor_id{"account", "a1"}, test::get{});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::unexpected_reply);
}

TEST_CASE("messages to an unregistered actor type fail with unknown_actor_type") {
  test::manual_fixture f;
  auto r = f.ask<int>(actor_id{"ghost", "g1"}, test::get{});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::unknown_actor_type);
  CHECK(f.system.tell(actor_id{"ghost", "g1"}, test::get{}));
  f.exec.run();
  CHECK(f.system.metrics().dead_letters == 1);
}

struct named {
  static constexpr std::string_view type_name = "bank.deposit";
};

TEST_CASE("message names come from type_name when a type declares one") {
  CHECK(aether::message{named{}}.type_name() == "bank.deposit");
  CHECK(aether::message{test::add{1}}.type_name() == "test::add");
}
