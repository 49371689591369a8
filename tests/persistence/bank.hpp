#pragma once

// A bank account as an event-sourced actor, shared by the persistence tests.

#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/runtime/json.hpp>

#include <cstdint>
#include <string>

namespace bank {

struct account_state {
  std::int64_t cents = 0;
  std::int64_t deposits = 0;
};
AETHER_JSON_FIELDS(account_state, cents, deposits)

struct deposited {
  static constexpr std::string_view type_name = "bank.deposited";
  static constexpr std::uint32_t schema_version = 2;
  std::int64_t cents = 0;
  std::string memo;
};
AETHER_JSON_FIELDS(deposited, cents, memo)

/// The first version of `deposited`, still found in old histories.
struct deposited_v1 {
  static constexpr std::string_view type_name = "bank.deposited";
  static constexpr std::uint32_t schema_version = 1;
  std::int64_t amount = 0;
};
AETHER_JSON_FIELDS(deposited_v1, amount)

struct withdrawn {
  static constexpr std::string_view type_name = "bank.withdrawn";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(withdrawn, cents)

struct deposit {
  std::int64_t cents;
  std::string memo{}; // names the deposit in its event, e.g. for a test to find it
};
struct withdraw {
  std::int64_t cents;
};
struct balance {};
struct current_version {};

class account : public aether::event_sourced_actor<account_state> {
public:
  account() {
    apply([](account_state& s, const deposited& e) {
      s.cents += e.cents;
      ++s.deposits;
    });
    apply([](account_state& s, const withdrawn& e) { s.cents -= e.cents; });
    upcast<deposited_v1>([](deposited_v1 old) { return deposited{old.amount, "from v1"}; });

    on([this](const deposit& d, aether::context& ctx) {
      if (d.cents <= 0) {
        ctx.reply(aether::error{aether::errc::invalid_argument, "deposits are positive"});
        return;
      }
      persist_then(
          ctx, [](const account_state& s) { return s.cents; }, deposited{d.cents, d.memo});
    });
    on([this](const withdraw& w, aether::context& ctx) {
      if (w.cents > state().cents) {
        ctx.reply(aether::error{aether::errc::invalid_argument, "insufficient funds"});
        return;
      }
      persist_then(
          ctx, [](const account_state& s) { return s.cents; }, withdrawn{w.cents});
    });
    on([this](const balance&) { return state().cents; });
    on([this](const current_version&) { return version(); });
  }
};

/// A stored event, as another writer or an older release would have written it.
inline aether::event stored(std::string type, std::string data, std::uint32_t schema_version = 1) {
  aether::event e;
  e.type = std::move(type);
  e.data = std::move(data);
  e.schema_version = schema_version;
  return e;
}

} // namespace bank
