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
      ++failed_;
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
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    const auto target = acked_.size() + count;
    while (acked_.size() < target) {
      auto l = node.line(deadline);
      REQUIRE_MESSAGE(l, "the node stopped acknowledging after " << acked_.size());
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
  [[nodiscard]] std::size_t failed() const { return failed_; }

private:
  std::map<std::string, acknowledged> acked_;
  std::map<std::string, std::int64_t> balance_;
  std::size_t failed_ = 0;
};

child_process load_node(const std::string& url, const std::string& run) {
  return child_process{{AETHER_LOAD_NODE, url, "4", run}};
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
