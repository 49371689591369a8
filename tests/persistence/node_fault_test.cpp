// Fault tests with real processes: a node under load crashes (SIGKILL) and
// is started again, and its nats-server is killed and restarted. No
// acknowledged deposit may be lost, changed or stored twice, and versions
// never fork. This covers a process crash of the node and of the server:
// nats-server 2.9.10 syncs its stream files to disk about once a minute, so
// after a crash of the whole host the last minute of acknowledged writes
// may be gone.
#include "bank.hpp"
#include "store_fixtures.hpp"
#include "support/child_process.hpp"

#include <chrono>
#include <map>
#include <set>

using namespace std::chrono_literals;
using aether::testing::child_process;
using aether::testing::words;

namespace {

struct acknowledged {
  std::string account;
  std::int64_t cents = 0;
  std::int64_t balance = 0;
};

/// What the node processes reported: every acknowledged deposit by name.
class ledger {
public:
  /// Takes one line of a node: "ack <account> <deposit> <cents> <balance>"
  /// or "fail <account> <deposit> <error>".
  void take(const std::string& line) {
    const auto w = words(line);
    REQUIRE_MESSAGE(!w.empty(), "an empty line from the node");
    if (w[0] == "fail") {
      REQUIRE(w.size() >= 3);
      const auto at = line.find(w[2]) + w[2].size() + 1;
      failed_.emplace(w[2], at < line.size() ? line.substr(at) : std::string{});
      return;
    }
    REQUIRE_MESSAGE((w[0] == "ack" && w.size() == 5), "not a line of the protocol: " << line);
    acknowledged a{w[1], std::stoll(w[3]), std::stoll(w[4])};
    // Within an account the balance acknowledged only grows: an
    // acknowledged deposit is never lost to a later one.
    auto& last = balance_[a.account];
    CHECK_MESSAGE(a.balance > last, w[2] << " acknowledged balance " << a.balance << " after " << last);
    last = a.balance;
    CHECK_MESSAGE(acked_.emplace(w[2], a).second, w[2] << " acknowledged twice");
  }

  /// Reads `count` acknowledgements of a running node.
  void read(child_process& node, std::size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    const auto target = acked_.size() + count;
    while (acked_.size() < target) {
      auto l = node.line(deadline);
      REQUIRE_MESSAGE(l, "the node stopped acknowledging after " << acked_.size() << " acknowledged and "
                                                                 << failed_.size() << " refused deposits");
      take(*l);
    }
  }

  /// Reads everything a killed or stopped node printed, to the end.
  void read_rest(child_process& node) {
    auto rest = node.rest(std::chrono::steady_clock::now() + 60s);
    REQUIRE_MESSAGE(rest, "the node's output did not end");
    for (const auto& l : *rest) take(l);
  }

  [[nodiscard]] const std::map<std::string, acknowledged>& acked() const { return acked_; }
  /// Deposits answered with an error, and the error.
  [[nodiscard]] const std::map<std::string, std::string>& failed() const { return failed_; }

private:
  std::map<std::string, acknowledged> acked_;
  std::map<std::string, std::int64_t> balance_;
  std::map<std::string, std::string> failed_;
};

child_process load_node(const std::string& url, const std::string& run, int clients = 4) {
  return child_process{{AETHER_LOAD_NODE, url, std::to_string(clients), run}};
}

/// The deposits the store holds for `account`, with the balance after each, in order.
struct stored_deposit {
  std::string memo;
  std::int64_t cents = 0;
  std::int64_t balance = 0;
};
std::vector<stored_deposit> stored_deposits(aether::event_store& store, const std::string& account) {
  auto events = store.read_wait(aether::actor_id{"account", account});
  REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
  std::vector<stored_deposit> out;
  std::int64_t balance = 0;
  for (std::size_t i = 0; i < events->size(); ++i) {
    const auto& e = (*events)[i];
    CHECK(e.version == i + 1);
    REQUIRE(e.type == "bank.deposited");
    auto d = aether::json::decode<bank::deposited>(e.data);
    REQUIRE(d);
    balance += d->cents;
    out.push_back({d->memo, d->cents, balance});
  }
  return out;
}

} // namespace

TEST_CASE("a node process crashed and restarted, and its server process killed and restarted, lose no "
          "acknowledged deposit") {
  aether::testing::nats_server server;
  ledger reported;
  {
    auto node = load_node(server.url(), "a");
    reported.read(node, 200);
    node.kill(); // a crash mid-load: writes in flight, acks in the pipe
    reported.read_rest(node);
  }
  auto node = load_node(server.url(), "b");
  reported.read(node, 200);
  server.restart();         // kill -9 and start again
  reported.read(node, 200); // reconnected, and going on where it was
  CHECK(node.terminate() == 0);
  reported.read_rest(node);

  // The store holds every acknowledged deposit once, with its amount, at the
  // place whose balance was acknowledged; versions have no gap and no fork.
  auto store = test::open_store(test::connect(server.url()));
  std::set<std::string> accounts;
  for (const auto& [name, a] : reported.acked()) accounts.insert(a.account);
  REQUIRE(accounts.size() == 4);
  std::map<std::string, int> found;
  for (const auto& account : accounts) {
    auto events = store->read_wait(aether::actor_id{"account", account});
    REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
    std::int64_t balance = 0;
    for (std::size_t i = 0; i < events->size(); ++i) {
      const auto& e = (*events)[i];
      CHECK(e.version == i + 1);
      REQUIRE(e.type == "bank.deposited");
      auto d = aether::json::decode<bank::deposited>(e.data);
      REQUIRE(d);
      balance += d->cents;
      ++found[d->memo];
      auto it = reported.acked().find(d->memo);
      if (it == reported.acked().end()) continue; // in flight at a crash, or an answer lost to it
      CHECK_MESSAGE(it->second.account == account, d->memo);
      CHECK_MESSAGE(d->cents == it->second.cents, d->memo << " stored " << d->cents << " cents");
      CHECK_MESSAGE(balance == it->second.balance, d->memo << " acknowledged balance " << it->second.balance
                                                           << ", the stored history makes " << balance);
    }
  }
  for (const auto& [name, a] : reported.acked())
    CHECK_MESSAGE(found[name] == 1, name << " is stored " << found[name] << " times");
  for (const auto& [name, n] : found) CHECK_MESSAGE(n == 1, name << " is stored " << n << " times");
}

TEST_CASE("two node processes hosting the same event-sourced accounts race through the actor API: one history, every "
          "acknowledged deposit once, no refused one stored") {
  aether::testing::nats_server server;
  // Both processes deposit into load-0 and load-1 at once, each through its own activation of the accounts.
  ledger x;
  ledger y;
  {
    auto left = load_node(server.url(), "x", 2);
    auto right = load_node(server.url(), "y", 2);
    for (int round = 0; round < 6; ++round) {
      x.read(left, 25);
      y.read(right, 25);
    }
    CHECK(left.terminate() == 0);
    CHECK(right.terminate() == 0);
    x.read_rest(left);
    y.read_rest(right);
  }
  // The race was real: each process was refused some writes the other won.
  std::size_t conflicts = 0;
  for (const auto* l : {&x, &y}) {
    std::size_t mine = 0;
    for (const auto& [memo, why] : l->failed()) mine += why.find("version_conflict") != std::string::npos;
    CHECK(mine > 0);
    conflicts += mine;
  }
  auto store = test::open_store(test::connect(server.url()));
  for (const std::string account : {"load-0", "load-1"}) {
    CAPTURE(account);
    std::map<std::string, stored_deposit> held;
    for (const auto& d : stored_deposits(*store, account)) {
      CHECK_MESSAGE(held.emplace(d.memo, d).second, d.memo << " is stored twice");
    }
    for (const auto* l : {&x, &y}) {
      for (const auto& [memo, a] : l->acked()) {
        if (a.account != account) continue;
        auto it = held.find(memo);
        REQUIRE_MESSAGE(it != held.end(), memo << " was acknowledged but is not stored");
        CHECK(it->second.cents == a.cents);
        CHECK_MESSAGE(it->second.balance == a.balance, memo << " acknowledged balance " << a.balance
                                                            << ", the stored history makes " << it->second.balance);
      }
      // A deposit refused with a conflict lost the race for its version: never stored.
      for (const auto& [memo, why] : l->failed()) {
        if (why.find("version_conflict") != std::string::npos && memo.starts_with(account + "-")) {
          CHECK_MESSAGE(!held.contains(memo), memo << " was refused (" << why << ") but is stored");
        }
      }
    }
  }
  MESSAGE(conflicts << " deposits refused with a version conflict");
}

TEST_CASE("a node stopped under persistence load answers every deposit truthfully and exits cleanly") {
  aether::testing::nats_server server;
  ledger reported;
  auto node = load_node(server.url(), "t", 8);
  reported.read(node, 200);
  // SIGTERM while deposits are in flight: a graceful stop.
  CHECK(node.terminate() == 0);
  reported.read_rest(node);
  CHECK(node.partial().empty()); // every answer was printed whole
  auto store = test::open_store(test::connect(server.url()));
  std::map<std::string, stored_deposit> held;
  for (int c = 0; c < 8; ++c) {
    for (const auto& d : stored_deposits(*store, "load-" + std::to_string(c))) {
      CHECK_MESSAGE(held.emplace(d.memo, d).second, d.memo << " is stored twice");
    }
  }
  // Acknowledged: stored, with the balance that was acknowledged.
  for (const auto& [memo, a] : reported.acked()) {
    auto it = held.find(memo);
    REQUIRE_MESSAGE(it != held.end(), memo << " was acknowledged but is not stored");
    CHECK(it->second.cents == a.cents);
    CHECK(it->second.balance == a.balance);
  }
  // Refused: an answer that says the deposit was not stored, or was never
  // handled, is true; one that says the outcome is unknown may go either way.
  std::size_t unknown = 0;
  std::size_t unknown_stored = 0;
  for (const auto& [memo, why] : reported.failed()) {
    const bool never_handled = why.find("shutting_down") != std::string::npos;
    const bool not_stored = why.find("is not stored") != std::string::npos;
    if (never_handled || not_stored) {
      CHECK_MESSAGE(!held.contains(memo), memo << " was answered '" << why << "' but is stored");
    } else {
      CHECK_MESSAGE(why.find("may or may not") != std::string::npos, memo << ": " << why); // says it is unknown
      ++unknown;
      unknown_stored += held.contains(memo) ? 1 : 0;
    }
  }
  // Nothing is stored that nobody was answered about.
  for (const auto& [memo, d] : held) {
    CHECK_MESSAGE((reported.acked().contains(memo) || reported.failed().contains(memo)),
                  memo << " is stored but its sender got no answer");
  }
  MESSAGE(reported.acked().size() << " acknowledged, " << reported.failed().size() << " refused (" << unknown
                                  << " with an unknown outcome, " << unknown_stored << " of them stored)");
}
