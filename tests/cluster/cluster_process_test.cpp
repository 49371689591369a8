// The cluster with real nats-server processes and real node processes
// (cluster_node): elections after kill -9, the shard map as nodes join and
// leave, pauses, a killed stream leader on R3, a clock running ahead, churn.
#include "process_cluster.hpp"
#include "support/nats_server.hpp"

#include <aether/cluster/assignment.hpp>
#include <aether/runtime/nats.hpp>

#include <algorithm>
#include <csignal>
#include <random>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

constexpr auto heartbeat_ms = 100;
constexpr auto failure_ms = 1000;

std::vector<std::string> settings(const std::string& url, const std::string& cluster, int replicas = 1) {
  return {"AETHER_NATS_URL=" + url,
          "AETHER_CLUSTER=" + cluster,
          "AETHER_CLUSTER_SHARDS=100",
          "AETHER_JS_REPLICAS=" + std::to_string(replicas),
          "AETHER_HEARTBEAT_MS=" + std::to_string(heartbeat_ms),
          "AETHER_FAILURE_TIMEOUT_MS=" + std::to_string(failure_ms),
          "AETHER_SELF_FENCE_MS=700",
          "AETHER_ELECTION_STEP_MS=20",
          "AETHER_LOG=warn"};
}

proc::node& leader_of(proc::cluster& c) {
  for (auto* n : c.running()) {
    if (n->leads()) return *n;
  }
  FAIL("no running node leads");
  throw 0;
}

std::vector<std::size_t> sorted_counts(const proc::node& n) {
  std::vector<std::size_t> out;
  for (const auto& [m, c] : n.owned) out.push_back(c);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t moves(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += a[i] != b[i];
  return n;
}

const std::vector<std::string>& latest_map(const proc::node& n) { return n.maps.back().second; }

aether::member_id parse_member(const std::string& text) {
  const auto slash = text.find('/');
  return aether::member_id{text.substr(0, slash), std::stoull(text.substr(slash + 1), nullptr, 16)};
}

/// Every map applied is exact over its owners, and is what the sticky-exact
/// assignment makes of the map before it: no move beyond what balance needs.
void check_maps_exact_and_minimal(const proc::cluster& c, std::uint32_t shards) {
  const auto maps = c.all_maps();
  REQUIRE(!maps.empty());
  const std::vector<std::string>* previous = nullptr;
  std::uint64_t previous_epoch = 0;
  for (const auto& [epoch, owners] : maps) {
    REQUIRE(owners.size() == shards);
    std::map<std::string, std::size_t> counts;
    for (const auto& o : owners) {
      REQUIRE(o != "-");
      ++counts[o];
    }
    for (const auto& [m, n] : counts) {
      CHECK(n >= shards / counts.size());
      CHECK(n <= (shards + counts.size() - 1) / counts.size());
    }
    if (previous != nullptr) {
      std::vector<aether::member_id> prev, live;
      for (const auto& o : *previous) prev.push_back(parse_member(o));
      for (const auto& [m, n] : counts) live.push_back(parse_member(m));
      const aether::shard_map before{previous_epoch, 1, prev};
      std::vector<std::string> expected;
      for (const auto& o : aether::assign_shards(before, live, shards)) expected.push_back(o.to_string());
      CHECK_MESSAGE(expected == owners, "map " << epoch << " is not the minimal change of map " << previous_epoch);
    }
    previous = &owners;
    previous_epoch = epoch;
  }
}

} // namespace

TEST_CASE("three nodes elect one leader, after kill -9 of the leader a new one leads a higher term, the old one "
          "restarted follows") {
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "c5")};
  for (auto id : {"a", "b", "c"}) c.start(id);
  c.until([&] { return c.agree(3); }, 30s, "three nodes agree");
  auto& old = leader_of(c);
  const auto old_term = old.term;
  const auto old_self = old.self;
  c.kill(old);
  const auto took = c.until(
      [&] {
        for (auto* n : c.running()) {
          if (n->leader == old_self || n->leader == "none" || n->term <= old_term || !n->serving) return false;
        }
        return c.running().size() == 2;
      },
      20s, "a new leader");
  MESSAGE("new leader after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                              << " ms (bound: 2 x heartbeat + "
                              << "failure timeout = " << 2 * heartbeat_ms + failure_ms
                              << " ms, plus detection of the kill)");
  c.until([&] { return c.agree(2); }, 20s, "the two left agree, the old leader dead");
  auto& back = c.start(old.id);
  c.until([&] { return back.ready && c.agree(3); }, 30s, "the restarted node follows");
  CHECK(back.self != old_self);
  CHECK(back.leader != old_self);
  CHECK(back.term > old_term);
  c.check_invariants();
}

TEST_CASE("100 shards on 3 nodes are 34/33/33 on every view, a 4th node moves 25, one leaving moves only its own") {
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "c6")};
  for (auto id : {"a", "b", "c"}) c.start(id);
  c.until([&] { return c.agree(3); }, 30s, "three nodes agree");
  for (auto* n : c.running()) CHECK(sorted_counts(*n) == std::vector<std::size_t>{33, 33, 34});
  const auto three = latest_map(*c.running().front());

  auto& d = c.start("d");
  c.until([&] { return d.ready && c.agree(4); }, 30s, "four nodes agree");
  for (auto* n : c.running()) CHECK(sorted_counts(*n) == std::vector<std::size_t>{25, 25, 25, 25});
  const auto four = latest_map(d);
  CHECK(moves(three, four) == 25);

  auto& b = *c.running()[1];
  const auto b_self = b.self;
  const auto b_count = static_cast<std::size_t>(std::count(four.begin(), four.end(), b_self));
  b.process->signal(SIGTERM); // a graceful stop: it leaves
  CHECK(b.process->wait() == 0);
  b.exited = true;
  c.until([&] { return c.agree(3); }, 30s, "three nodes agree again");
  const auto after = latest_map(*c.running().front());
  CHECK(moves(four, after) == b_count);
  for (std::size_t s = 0; s < four.size(); ++s) {
    if (four[s] != b_self) CHECK(after[s] == four[s]);
  }
  for (auto* n : c.running()) CHECK(sorted_counts(*n) == std::vector<std::size_t>{33, 33, 34});
  c.check_invariants();
}

TEST_CASE("a node with another shard count refuses to start, naming both numbers") {
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "counts")};
  c.start("a");
  c.until([&] { return c.agree(1); }, 30s, "the first node serves");
  auto& b = c.start("b", {"AETHER_CLUSTER_SHARDS=64"});
  c.until([&] { return !b.error.empty(); }, 30s, "the second node refuses");
  CHECK(b.error.find("100") != std::string::npos);
  CHECK(b.error.find("64") != std::string::npos);
  CHECK(b.process->wait() != 0);
  b.exited = true;
}

TEST_CASE("invariants hold across kill -9 and SIGSTOP/SIGCONT of nodes") {
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "faults")};
  for (auto id : {"a", "b", "c", "d"}) c.start(id);
  c.until([&] { return c.agree(4); }, 30s, "four nodes agree");
  std::mt19937 rng{7};
  for (int round = 0; round < 4; ++round) {
    auto nodes = c.running();
    auto& victim = round % 2 == 0 ? leader_of(c) : *nodes[rng() % nodes.size()];
    if (round < 2) {
      // Paused past the failure timeout: declared dead, it rejoins as a new incarnation.
      victim.process->signal(SIGSTOP);
      const auto until_dead = std::chrono::steady_clock::now() + std::chrono::milliseconds{failure_ms * 3};
      while (std::chrono::steady_clock::now() < until_dead) c.pump(20ms);
      victim.process->signal(SIGCONT);
    } else {
      const auto id = victim.id;
      c.kill(victim);
      c.until([&] { return c.agree(3); }, 30s, "the others agree after a kill");
      c.start(id);
    }
    c.until([&] { return c.agree(4); }, 30s, "four nodes agree again");
  }
  c.check_invariants();
}

TEST_CASE("R3: invariants hold when the server leading the control stream is killed") {
  aether::testing::nats_cluster servers{3};
  auto conn = aether::nats::connection::connect(aether::nats::connect_options{.url = servers.urls()});
  REQUIRE(conn);
  proc::cluster c{AETHER_CLUSTER_NODE, settings(servers.urls(), "r3", 3)};
  for (auto id : {"a", "b", "c"}) c.start(id);
  c.until([&] { return c.agree(3); }, 60s, "three nodes agree");
  auto leader = (*conn)->stream_leader("aether_cluster_r3");
  REQUIRE(leader);
  std::size_t killed = servers.size();
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (servers.server(i).name() == *leader) killed = i;
  }
  REQUIRE(killed < servers.size());
  // A node paused past the failure timeout while the stream's leader dies.
  auto& paused = *c.running().back();
  paused.process->signal(SIGSTOP);
  servers.server(killed).kill();
  const auto pause_end = std::chrono::steady_clock::now() + std::chrono::milliseconds{failure_ms * 2};
  while (std::chrono::steady_clock::now() < pause_end) c.pump(20ms);
  paused.process->signal(SIGCONT);
  c.until([&] { return c.agree(3); }, 60s, "three nodes agree after the pause");
  // Meanwhile the leading node dies too: the election runs while the stream elects its new leader.
  c.kill(leader_of(c));
  c.until([&] { return c.agree(2); }, 60s, "the two nodes left agree");
  servers.server(killed).restart();
  c.start("d");
  c.until([&] { return c.agree(3); }, 60s, "three nodes agree with the server back");
  c.check_invariants();
}

TEST_CASE("a node whose wall clock runs 30 s ahead changes nothing") {
  std::string faketime_library;
  for (const char* arch : {"x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf"}) {
    const auto path = std::string{"/usr/lib/"} + arch + "/faketime/libfaketime.so.1";
    if (::access(path.c_str(), R_OK) == 0) faketime_library = path;
  }
  REQUIRE_MESSAGE(!faketime_library.empty(), "faketime is missing (tools/install_deps.sh installs it)");
  // ASan wants to come first among the libraries; the preloaded one is not instrumented anyway.
  const char* asan = std::getenv("ASAN_OPTIONS");
  const auto asan_options =
      std::string{"ASAN_OPTIONS="} + (asan != nullptr ? std::string{asan} + ":" : "") + "verify_asan_link_order=0";
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "skew")};
  c.start("a");
  c.start("b");
  // Only the wall clock runs ahead; the monotonic clock is left alone. The
  // library is preloaded directly (the faketime program would fork, and a
  // killed test would leave the node behind).
  // Under TSan: libfaketime's own unlocked state is not ours to report.
  const char* tsan = std::getenv("TSAN_OPTIONS");
  const auto tsan_options = std::string{"TSAN_OPTIONS="} + (tsan != nullptr ? std::string{tsan} + " " : "") +
                            "suppressions=" + AETHER_FAKETIME_TSAN_SUPP;
  auto& ahead = c.start("ahead", {"LD_PRELOAD=" + faketime_library, "FAKETIME=+30s", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                                  "FAKETIME_NO_CACHE=1", asan_options, tsan_options});
  c.until([&] { return ahead.ready && c.agree(3); }, 30s, "three nodes agree");
  // Nothing churns: the same view for a few failure timeouts.
  const auto term = ahead.term;
  const auto epoch = ahead.epoch;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{failure_ms * 4};
  while (std::chrono::steady_clock::now() < until) c.pump(20ms);
  CHECK(c.agree(3));
  CHECK(ahead.term == term);
  CHECK(ahead.epoch == epoch);
  // It takes part in an election like any other.
  for (auto* n : c.running()) {
    if (n != &ahead) {
      c.kill(*n);
      break;
    }
  }
  c.until([&] { return c.agree(2); }, 30s, "the two left agree");
  c.check_invariants();
}

TEST_CASE("join/leave churn: every map exact, every move minimal") {
  aether::testing::nats_server server;
  proc::cluster c{AETHER_CLUSTER_NODE, settings(server.url(), "churn")};
  for (auto id : {"n0", "n1", "n2"}) c.start(id);
  c.until([&] { return c.agree(3); }, 30s, "three nodes agree");
  std::mt19937 rng{42};
  int next = 3;
  const auto rounds = std::getenv("AETHER_CLUSTER_SOAK") ? 60 : 8;
  for (int round = 0; round < rounds; ++round) {
    auto nodes = c.running();
    if (nodes.size() <= 2 || (nodes.size() < 6 && rng() % 2 == 0)) {
      c.start("n" + std::to_string(next++));
      c.until([&] { return c.agree(nodes.size() + 1); }, 30s, "a node joined");
    } else {
      auto* n = nodes[rng() % nodes.size()];
      if (rng() % 2 == 0) {
        n->process->signal(SIGTERM);
        n->process->wait();
        n->exited = true;
      } else {
        c.kill(*n);
      }
      c.until([&] { return c.agree(nodes.size() - 1); }, 30s, "a node left");
    }
  }
  check_maps_exact_and_minimal(c, 100);
  c.check_invariants();
}
