// Bank accounts as event-sourced actors. On the embedded default the events
// live in memory; with AETHER_NATS_URL set they live in JetStream, and every
// run continues from what the previous runs stored.
//
//   bank_account                               in memory
//   AETHER_NATS_URL=nats://127.0.0.1:4222 bank_account   on JetStream
#include <aether/aether.hpp>
#include <aether/runtime/command_line.hpp>
#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// State and events are declared once; JSON encoding comes from the declaration.
struct account_state {
  std::int64_t cents = 0;
  std::int64_t operations = 0;
};
AETHER_JSON_FIELDS(account_state, cents, operations)

struct deposited {
  static constexpr std::string_view type_name = "bank.deposited";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposited, cents)

struct withdrawn {
  static constexpr std::string_view type_name = "bank.withdrawn";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(withdrawn, cents)

// Commands are plain structs.
struct deposit {
  std::int64_t cents;
};
struct withdraw {
  std::int64_t cents;
};
struct balance {};

class account : public aether::event_sourced_actor<account_state> {
public:
  account() {
    apply([](account_state& s, const deposited& e) {
      s.cents += e.cents;
      ++s.operations;
    });
    apply([](account_state& s, const withdrawn& e) {
      s.cents -= e.cents;
      ++s.operations;
    });
    on([this](const deposit& d, aether::context& ctx) {
      if (d.cents <= 0) return ctx.reply(aether::error{aether::errc::invalid_argument, "deposit a positive amount"});
      // The reply goes out once the event is stored and applied.
      persist_then(
          ctx, [](const account_state& s) { return s.cents; }, deposited{d.cents});
    });
    on([this](const withdraw& w, aether::context& ctx) {
      if (w.cents > state().cents)
        return ctx.reply(aether::error{aether::errc::invalid_argument, "insufficient funds"});
      persist_then(
          ctx, [](const account_state& s) { return s.cents; }, withdrawn{w.cents});
    });
    on([this](const balance&) { return state().cents; });
  }
};

namespace {
std::string money(std::int64_t cents) { return fmt::format("{}.{:02}", cents / 100, cents % 100); }
} // namespace

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"bank_account",
           "Usage: bank_account\n"
           "Bank accounts as event-sourced actors: deposits, a refused withdrawal and the\n"
           "history; in memory, or on JetStream with AETHER_NATS_URL set.",
           "  0  done\n  1  the node could not start (e.g. no NATS server answered)\n  2  an AETHER_* variable is "
           "invalid\n"})) {
    return *answered;
  }
  auto config = aether::node_config::from_env();
  if (!config) {
    std::fprintf(stderr, "bank_account: %s\n", config.error().to_string().c_str());
    return 2;
  }
  try {
    aether::node node{*config};
    node.register_event_sourced<account>("account");
    fmt::print("events are stored {}\n", node.on_nats() ? "in JetStream at " + config->nats_url : "in memory");

    // An audit trail fed by the event bus: what the accounts persist reaches it
    // once stored, here or (on NATS) from any node.
    std::mutex audit_mutex;
    std::vector<std::string> audit;
    auto audit_sub =
        node.bus().subscribe(aether::actor_id::default_namespace, {{}, "account.*"}, [&](const aether::event& e) {
          std::lock_guard lock{audit_mutex};
          audit.push_back(fmt::format("{} v{} {}", e.actor.key(), e.version, e.type));
        });
    if (!audit_sub) throw aether::startup_error{audit_sub.error()};

    const aether::actor_id alice{"account", "alice"};
    const aether::actor_id bob{"account", "bob"};
    auto run = [&](const aether::actor_id& who, auto command, std::string_view what) {
      auto r = node.ask<std::int64_t>(who, command, 5s).get();
      if (r) {
        fmt::print("{:>6} {:<18} balance {}\n", who.key(), what, money(*r));
      } else {
        fmt::print("{:>6} {:<18} refused: {}\n", who.key(), what, r.error().to_string());
      }
    };
    run(alice, balance{}, "opens with");
    run(alice, deposit{10'000}, "deposits 100.00");
    run(bob, deposit{2'550}, "deposits 25.50");
    run(alice, withdraw{3'000}, "withdraws 30.00");
    run(bob, withdraw{9'900}, "withdraws 99.00");
    run(bob, deposit{-5}, "deposits -0.05");

    // The history is the source of truth: read it back from the store.
    auto history = node.stores()->events->read_wait(alice);
    if (history) {
      fmt::print("alice's history:\n");
      for (const auto& e : *history) fmt::print("  v{} {} {}\n", e.version, e.type, e.data);
    }
    // Handlers run on the node's threads: give the last events a moment.
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard lock{audit_mutex};
        if (audit.size() >= 3) break; // one event from each of the three commands that succeeded
      }
      std::this_thread::sleep_for(10ms);
    }
    {
      std::lock_guard lock{audit_mutex};
      fmt::print("the audit trail got from the event bus:\n");
      for (const auto& line : audit) fmt::print("  {}\n", line);
    }
    node.stop();
    const auto m = node.metrics();
    fmt::print("handled {} messages; {} activations\n", m.messages, m.activations);
  } catch (const aether::startup_error& e) {
    std::fprintf(stderr, "bank_account: %s\n", e.what());
    return 1;
  }
  return 0;
}
