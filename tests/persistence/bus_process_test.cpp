// The event bus between node processes on a real nats-server: live delivery,
// and a durable subscriber whose process is stopped, or killed, and started
// again.
#include "bus_fixtures.hpp"
#include "store_fixtures.hpp"
#include "support/child_process.hpp"
#include "support/eventually.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <map>
#include <set>
#include <sstream>

using namespace std::chrono_literals;
using aether::testing::child_process;

namespace {

struct delivery {
  std::string actor;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
};

child_process subscriber(const std::string& url, const std::string& durable = "", int hold_after = 0) {
  std::vector<std::string> args{AETHER_BUS_NODE, url, "subscribe", "bus"};
  if (!durable.empty()) {
    args.push_back(durable);
    args.push_back(std::to_string(hold_after));
  }
  return child_process{std::move(args)};
}

void wait_ready(child_process& p) {
  const auto l = p.line(std::chrono::steady_clock::now() + 30s);
  REQUIRE_MESSAGE(l, "the subscriber did not start");
  REQUIRE(*l == "ready");
}

/// Publishes `count` persisted and `count` published events from a node
/// process; returns what its own subscriber got.
int publish(const std::string& url, int count, int first, const std::string& ns = "bus") {
  child_process p{{AETHER_BUS_NODE, url, "publish", ns, std::to_string(count), std::to_string(first)}};
  const auto l = p.line(std::chrono::steady_clock::now() + 60s);
  REQUIRE_MESSAGE(l, "the publisher did not finish");
  const int status = p.wait();
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(l->starts_with("own "));
  return std::stoi(l->substr(4));
}

/// One "E <actor> <version> <sequence>" line, or nothing for another line.
std::optional<delivery> parse(const std::string& line) {
  const auto w = aether::testing::words(line);
  if (w.size() != 5 || w[0] != "E") return std::nullopt;
  return delivery{w[1], std::stoull(w[2]), std::stoull(w[3])};
}

/// Reads deliveries until `count` arrived; REQUIREs that they do in time.
std::vector<delivery> read(child_process& p, std::size_t count, std::chrono::seconds timeout = 60s) {
  std::vector<delivery> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count) {
    auto l = p.line(deadline);
    REQUIRE_MESSAGE(l, "got " << out.size() << " of " << count << " deliveries");
    if (auto d = parse(*l)) out.push_back(*d);
  }
  return out;
}

/// The versions each actor got, in delivery order.
std::map<std::string, std::vector<std::uint64_t>> by_actor(const std::vector<delivery>& ds) {
  std::map<std::string, std::vector<std::uint64_t>> out;
  for (const auto& d : ds) out[d.actor].push_back(d.version);
  return out;
}

std::vector<std::uint64_t> versions(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> out;
  for (auto v = from; v <= to; ++v) out.push_back(v);
  return out;
}

void stop(child_process& p) { CHECK(p.terminate() == 0); }

} // namespace

TEST_CASE("events from one node process reach a subscriber in another, once each and in order") {
  aether::testing::nats_server server;
  auto sub = subscriber(server.url());
  wait_ready(sub);
  // The publishing node's own subscriber gets them all (that it gets none
  // twice is checked in the conformance suite, where a marker can follow the
  // events back from the server).
  CHECK(publish(server.url(), 100, 1) == 200);
  const auto got = read(sub, 200);
  const auto actors = by_actor(got);
  REQUIRE(actors.size() == 2);
  CHECK(actors.at("account/acc") == versions(1, 100));
  CHECK(actors.at("notice/n") == versions(1, 100));
  // Nothing comes twice: the next two deliveries are the next two events.
  publish(server.url(), 1, 101);
  const auto next = by_actor(read(sub, 2));
  CHECK(next.at("account/acc") == versions(101, 101));
  CHECK(next.at("notice/n") == versions(101, 101));
  stop(sub);
}

TEST_CASE("across node processes, every namespace pattern gets exactly the namespaces NATS's rules match") {
  aether::testing::nats_server server;
  const auto& patterns = test::matrix_patterns();
  const std::vector<std::string> namespaces{"acme",          "acme.billing",   "acme_billing", "acme.billing.eu",
                                            "acme._billing", "globex.billing", "a.b.c.d.e.f",  "x.y"};
  std::vector<std::string> args{AETHER_BUS_NODE, server.url(), "watch"};
  args.insert(args.end(), patterns.begin(), patterns.end());
  child_process watcher{std::move(args)};
  wait_ready(watcher);
  constexpr int per_namespace = 2; // persisted and published events each
  std::size_t expected = 0;
  for (const auto& pattern : patterns) {
    for (const auto& ns : namespaces) expected += test::reference_match(pattern, ns) ? 2 * per_namespace : 0;
  }
  std::string list;
  for (const auto& ns : namespaces) list += (list.empty() ? "" : ",") + ns;
  // One publishing node for all namespaces, each one's events in turn.
  CHECK(publish(server.url(), per_namespace, 1, list) == static_cast<int>(2 * per_namespace * namespaces.size()));
  // "<pattern index> <ns>" -> what arrived, in order.
  std::map<std::pair<std::size_t, std::string>, std::vector<std::string>> got;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  const auto take = [&](const std::string& line) {
    const auto w = aether::testing::words(line);
    if (w.size() != 5 || w[0] != "M") return;
    const auto index = std::stoul(w[1]);
    REQUIRE(index < patterns.size());
    CHECK_MESSAGE(test::reference_match(patterns[index], w[2]), patterns[index] << " got an event of " << w[2]);
    got[{index, w[2]}].push_back(w[3] + " " + w[4]);
  };
  for (std::size_t n = 0; n < expected; ++n) {
    const auto l = watcher.line(deadline);
    REQUIRE_MESSAGE(l, "got " << n << " of " << expected << " deliveries");
    take(*l);
  }
  CHECK(watcher.terminate() == 0);
  if (const auto rest = watcher.rest(std::chrono::steady_clock::now() + 10s)) {
    for (const auto& l : *rest) take(l); // anything more is a leak or a duplicate
  }
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    for (const auto& ns : namespaces) {
      INFO("pattern '", patterns[i], "', namespace '", ns, "'");
      const auto it = got.find({i, ns});
      if (!test::reference_match(patterns[i], ns)) {
        CHECK(it == got.end());
        continue;
      }
      REQUIRE(it != got.end());
      std::map<std::string, std::vector<std::string>> by_actor;
      for (const auto& d : it->second) by_actor[d.substr(0, d.find(' '))].push_back(d.substr(d.find(' ') + 1));
      CHECK(by_actor["account/acc"] == std::vector<std::string>{"1", "2"});
      CHECK(by_actor["notice/n"] == std::vector<std::string>{"1", "2"});
      CHECK(by_actor.size() == 2);
    }
  }
}

TEST_CASE("a durable subscriber stopped and started again gets what it missed, in order, and nothing twice") {
  aether::testing::nats_server server;
  {
    auto sub = subscriber(server.url(), "ledger");
    wait_ready(sub);
    publish(server.url(), 50, 1);
    const auto got = by_actor(read(sub, 100));
    CHECK(got.at("account/acc") == versions(1, 50));
    CHECK(got.at("notice/n") == versions(1, 50));
    stop(sub);
  }
  publish(server.url(), 50, 51); // while nobody listens
  auto sub = subscriber(server.url(), "ledger");
  wait_ready(sub);
  const auto got = read(sub, 100);
  const auto actors = by_actor(got);
  CHECK(actors.at("account/acc") == versions(51, 100));
  CHECK(actors.at("notice/n") == versions(51, 100));
  for (std::size_t i = 1; i < got.size(); ++i) CHECK(got[i - 1].sequence < got[i].sequence);
  // What comes next is new: nothing of the first run comes again.
  publish(server.url(), 1, 101);
  const auto next = by_actor(read(sub, 2));
  CHECK(next.at("account/acc") == versions(101, 101));
  CHECK(next.at("notice/n") == versions(101, 101));
  stop(sub);
}

TEST_CASE("a durable subscriber killed mid-stream loses nothing and gets nothing acknowledged again") {
  aether::testing::nats_server server;
  publish(server.url(), 150, 1); // 300 events in the stream
  constexpr std::size_t held = 60;
  std::vector<delivery> before;
  std::uint64_t floor = 0;
  auto conn = test::connect(server.url());
  {
    // It handles 60 events, then its handler is stuck: the kill lands mid-stream by construction.
    auto sub = subscriber(server.url(), "ledger", static_cast<int>(held));
    wait_ready(sub);
    before = read(sub, held);
    // The server records acknowledgements as the handlers return, not only
    // when a subscription ends: the floor reaches what was handled.
    AETHER_EVENTUALLY(conn->consumer("bus_events", "ledger") &&
                          conn->consumer("bus_events", "ledger")->ack_floor == before.back().sequence,
                      30s);
    sub.kill();
    const auto rest = sub.rest(std::chrono::steady_clock::now() + 30s); // what it printed before it died
    REQUIRE(rest);
    for (const auto& l : *rest) {
      if (auto d = parse(l)) before.push_back(*d);
    }
    CHECK(before.size() == held); // the held event was never handled
    const auto state = conn->consumer("bus_events", "ledger");
    REQUIRE(state);
    floor = state->ack_floor;
  }
  // The floor at the kill: above zero, not beyond what was handled, and mid-stream.
  const auto handled = before.back().sequence;
  REQUIRE(floor > 0);
  CHECK(floor <= handled);
  CHECK(floor + 64 >= handled); // at most the subscription's buffer unacknowledged
  CHECK(floor < 300);
  auto sub = subscriber(server.url(), "ledger");
  wait_ready(sub);
  const auto after = read(sub, 300 - static_cast<std::size_t>(floor));
  // It starts right after the acknowledged ones, and goes on in stream order to the end.
  CHECK(after.front().sequence == floor + 1);
  for (std::size_t i = 1; i < after.size(); ++i) CHECK(after[i].sequence == after[i - 1].sequence + 1);
  CHECK(after.back().sequence == 300);
  // Together the two runs saw every event, and the second repeated only
  // what the first handled without the server recording it.
  std::set<std::uint64_t> seen;
  for (const auto& d : before) seen.insert(d.sequence);
  for (const auto& d : after) seen.insert(d.sequence);
  CHECK(seen.size() == 300);
  const auto actors = by_actor(after);
  CHECK(actors.at("account/acc").back() == 150);
  CHECK(actors.at("notice/n").back() == 150);
  stop(sub);
}

TEST_CASE("a durable subscriber whose node freezes with its connection open keeps its name until the connection "
          "ends, and the next one goes on in order with nothing lost") {
  // The server pings every second and drops a client after two missed
  // answers. Yet while it still delivers to a frozen client (the kernel
  // takes the bytes), it counts that as activity and does not ping: the
  // name stays held, and no second subscriber ever gets it meanwhile.
  aether::testing::nats_server server{{.extra_config = "ping_interval: \"1s\"\nping_max: 2\n"}};
  publish(server.url(), 150, 1); // 300 events in the stream
  auto conn = test::connect(server.url());
  auto frozen = subscriber(server.url(), "ledger", 60);
  wait_ready(frozen);
  const auto before = read(frozen, 60);
  AETHER_EVENTUALLY(conn->consumer("bus_events", "ledger") &&
                        conn->consumer("bus_events", "ledger")->ack_floor == before.back().sequence,
                    30s);
  frozen.signal(SIGSTOP); // the node vanishes without closing its connection
  // Others asking for the name meanwhile are refused, every time.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto candidate = subscriber(server.url(), "ledger");
    CHECK(candidate.line(std::chrono::steady_clock::now() + 60s) == std::nullopt); // no "ready": it exits
    const auto status = candidate.wait(std::chrono::steady_clock::now() + 30s);
    REQUIRE(status);
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 1); // in_use, printed on its stderr
  }
  // Its connection ends (here the process dies; a partition ends when the
  // server's writes to it fail): the next subscriber takes over at the floor.
  frozen.kill();
  std::optional<child_process> next;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!next && std::chrono::steady_clock::now() < deadline) {
    auto candidate = subscriber(server.url(), "ledger");
    if (candidate.line(std::chrono::steady_clock::now() + 30s) == std::optional<std::string>{"ready"}) {
      next.emplace(std::move(candidate));
    } else {
      CHECK(candidate.wait(std::chrono::steady_clock::now() + 30s).has_value()); // refused once more
    }
  }
  REQUIRE_MESSAGE(next, "the durable name was never free again");
  const auto floor = before.back().sequence;
  const auto after = read(*next, 300 - static_cast<std::size_t>(floor));
  CHECK(after.front().sequence == floor + 1);
  for (std::size_t i = 1; i < after.size(); ++i) CHECK(after[i].sequence == after[i - 1].sequence + 1);
  CHECK(after.back().sequence == 300);
  stop(*next);
}
