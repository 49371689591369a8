// Cluster coordination benchmarks.
//
//   aether_cluster_bench [--only assignment|election|heartbeat] [--url nats://HOST:PORT] [--trials N]
//
// - cluster_assignment (pure computation, no server): for 1..32 nodes and
//   64..4096 shards, after a node is added or removed, the spread of shards
//   per node (max - min; goal <= 1) and the shards moved over the fewest any
//   exact assignment must move (goal 1.0).
// - cluster_election (needs --url): three node processes (this program with
//   --node) on the server; the leader is killed with SIGKILL; the time until
//   every surviving node has applied a map of a newer term. p50 and max over
//   --trials (20).
// - cluster_heartbeat (needs --url): the messages one idle node puts on NATS
//   per second (heartbeats and control records), counted by a subscriber.
//
// JSON lines as bench_report.hpp prints them; diagnostics on stderr.
#include "bench_report.hpp"

#include <aether/aether.hpp>
#include <aether/cluster/assignment.hpp>
#include <aether/runtime/nats.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace {

using namespace std::chrono_literals;

// Assignment

void assignment() {
  for (std::uint32_t shards = 64; shards <= 4096; shards *= 2) {
    for (std::uint32_t nodes = 1; nodes <= 32; ++nodes) {
      std::vector<aether::member_id> members;
      for (std::uint32_t i = 0; i <= nodes; ++i) {
        members.push_back(aether::member_id{fmt::format("node-{}", i), 0x9e37u * (i + 1)});
      }
      const std::vector<aether::member_id> fewer(members.begin(), members.begin() + nodes - 1);
      const std::vector<aether::member_id> exact(members.begin(), members.begin() + nodes);
      const std::vector<aether::member_id> more(members.begin(), members.begin() + nodes + 1);
      auto report = [&](const char* change, const aether::shard_map& from, const std::vector<aether::member_id>& live,
                        std::uint32_t optimal) {
        const aether::shard_map to{from.epoch() + 1, 1, aether::assign_shards(from, live, shards)};
        std::uint32_t most = 0, least = shards;
        for (const auto& m : live) {
          most = std::max(most, to.count_of(m));
          least = std::min(least, to.count_of(m));
        }
        const auto moved = aether::moved_shards(from, to);
        const auto params = bench::param("nodes", static_cast<std::int64_t>(live.size())) +
                            bench::param("shards", static_cast<std::int64_t>(shards)) + bench::param("change", change);
        const auto key = fmt::format("{}_{}_{}", change, live.size(), shards);
        bench::emit("cluster_assignment", key, "aether", "max_minus_min", most - least, "count", params);
        bench::emit("cluster_assignment", key, "aether", "moves_over_optimal",
                    optimal == 0 ? 1.0 : static_cast<double>(moved) / optimal, "ratio", params);
      };
      // Add: nodes - 1 members become `nodes`; the newcomer's floor share is
      // the least any exact map must move to it.
      const aether::shard_map small{1, 1, aether::assign_shards(aether::shard_map{}, fewer, shards)};
      report("add", small, exact, shards / nodes);
      // Remove: nodes + 1 members become `nodes`; the removed one's shards must move.
      const aether::shard_map big{1, 1, aether::assign_shards(aether::shard_map{}, more, shards)};
      report("remove", big, exact, big.count_of(more.back()));
    }
  }
}

// Node processes

std::string self_path;

struct child {
  pid_t pid = -1;
  int out = -1;
  std::string buffer;
  bool alive = true;
  // What it printed last.
  std::string self;
  std::string leader;
  std::uint64_t term = 0;
  std::uint64_t map_term = 0;
  std::size_t alive_members = 0;
};

child spawn(const std::string& url, const std::string& cluster, const std::string& id) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error{"pipe"};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::setenv("AETHER_NATS_URL", url.c_str(), 1);
    ::setenv("AETHER_CLUSTER", cluster.c_str(), 1);
    ::setenv("AETHER_NODE_ID", id.c_str(), 1);
    ::execl(self_path.c_str(), self_path.c_str(), "--node", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  child c;
  c.pid = pid;
  c.out = pipe_fds[0];
  return c;
}

void stop(child& c, int sig) {
  if (!c.alive) return;
  ::kill(c.pid, sig);
  ::waitpid(c.pid, nullptr, 0);
  ::close(c.out);
  c.alive = false;
}

/// Reads what the children printed, for up to `wait`.
void pump(std::vector<child>& children, std::chrono::milliseconds wait) {
  std::vector<pollfd> fds;
  std::vector<child*> who;
  for (auto& c : children) {
    if (!c.alive) continue;
    fds.push_back(pollfd{c.out, POLLIN, 0});
    who.push_back(&c);
  }
  if (fds.empty()) return;
  if (::poll(fds.data(), fds.size(), static_cast<int>(wait.count())) <= 0) return;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if ((fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
    char chunk[65536];
    const auto n = ::read(fds[i].fd, chunk, sizeof chunk);
    if (n <= 0) continue;
    auto& c = *who[i];
    c.buffer.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = c.buffer.find('\n'); nl != std::string::npos; nl = c.buffer.find('\n')) {
      std::istringstream line{c.buffer.substr(0, nl)};
      c.buffer.erase(0, nl + 1);
      std::string kind;
      line >> kind;
      if (kind == "view") {
        std::size_t alive = 0;
        line >> c.self >> c.term >> c.leader >> c.map_term >> alive;
        c.alive_members = alive;
      }
    }
  }
}

/// The node mode: prints "view <self> <term> <leader> <map term> <alive members>" on every change.
int run_node() {
  auto cfg = aether::node_config::from_env();
  if (!cfg) return 3;
  cfg->threads = 1;
  cfg->system.shard_count = 2;
  cfg->handle_signals = true;
  try {
    aether::node node{*cfg};
    std::mutex m;
    auto print = [&m](const aether::cluster_snapshot& s) {
      std::lock_guard lock{m};
      std::printf("view %s %llu %s %llu %zu\n", s.self.to_string().c_str(), static_cast<unsigned long long>(s.term),
                  s.leader.empty() ? "none" : s.leader.to_string().c_str(),
                  static_cast<unsigned long long>(s.map->term()), s.alive_members().size());
      std::fflush(stdout);
    };
    auto watch = node.cluster().watch(print);
    print(*node.cluster().snapshot());
    return node.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "node: %s\n", e.what());
    return 3;
  }
}

template <class F>
bool wait_for(std::vector<child>& children, F done, std::chrono::milliseconds limit) {
  const auto deadline = bench::bench_clock::now() + limit;
  while (!done()) {
    if (bench::bench_clock::now() > deadline) return false;
    pump(children, 5ms);
  }
  return true;
}

void election(const std::string& url, int trials) {
  std::vector<double> ms;
  for (int t = 0; t < trials; ++t) {
    const auto cluster = fmt::format("bench_election_{}_{}", ::getpid(), t);
    std::vector<child> nodes;
    for (int i = 0; i < 3; ++i) nodes.push_back(spawn(url, cluster, fmt::format("n{}", i)));
    const bool settled = wait_for(
        nodes,
        [&] {
          for (auto& c : nodes) {
            if (c.alive_members != 3 || c.leader == "none" || c.leader != nodes[0].leader || c.map_term != c.term) {
              return false;
            }
          }
          return true;
        },
        30s);
    if (!settled) {
      bench::note("election trial {}: the three nodes did not settle", t);
      for (auto& c : nodes) stop(c, SIGKILL);
      continue;
    }
    const auto old_term = nodes[0].term;
    auto leader = std::find_if(nodes.begin(), nodes.end(), [&](const child& c) { return c.self == c.leader; });
    const auto start = bench::bench_clock::now();
    stop(*leader, SIGKILL);
    const bool moved = wait_for(
        nodes,
        [&] {
          for (auto& c : nodes) {
            if (c.alive && c.map_term <= old_term) return false;
          }
          return true;
        },
        30s);
    if (moved) {
      ms.push_back(bench::seconds_since(start) * 1000.0);
    } else {
      bench::note("election trial {}: no map of a new term within 30 s", t);
    }
    for (auto& c : nodes) stop(c, SIGTERM);
  }
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  const auto params = bench::param("trials", static_cast<std::int64_t>(ms.size())) + bench::param("nodes", 3);
  bench::emit("cluster_election", "kill_leader", "aether", "p50_ms", ms[(ms.size() - 1) / 2], "ms", params);
  bench::emit("cluster_election", "kill_leader", "aether", "max_ms", ms.back(), "ms", params);
}

void heartbeat_load(const std::string& url) {
  const auto cluster = fmt::format("bench_heartbeat_{}", ::getpid());
  std::vector<child> nodes;
  nodes.push_back(spawn(url, cluster, "idle"));
  if (!wait_for(
          nodes, [&] { return nodes[0].alive_members == 1 && nodes[0].map_term > 0; }, 30s)) {
    bench::note("heartbeat: the node did not start");
    stop(nodes[0], SIGKILL);
    return;
  }
  auto conn = aether::nats::connection::connect(aether::nats::connect_options{.url = url});
  if (!conn) {
    bench::note("heartbeat: {}", conn.error().to_string());
    stop(nodes[0], SIGKILL);
    return;
  }
  std::atomic<std::uint64_t> count{0};
  // Everything of this cluster: heartbeats, control records, and the
  // stream's and consumers' traffic on the JetStream API is not counted.
  auto sub = (*conn)->subscribe(fmt::format("aether_cluster.{}.>", cluster),
                                [&count](const aether::nats::message_view&) { ++count; });
  if (!sub) return;
  pump(nodes, 500ms);
  const auto from = count.load();
  const auto start = bench::bench_clock::now();
  const auto window = 5s;
  while (bench::bench_clock::now() - start < window) pump(nodes, 50ms);
  const auto rate = static_cast<double>(count.load() - from) / bench::seconds_since(start);
  bench::emit("cluster_heartbeat", "idle_node", "aether", "msgs_per_s_per_node", rate, "msgs/s",
              bench::param("nodes", 1) + bench::param("heartbeat_ms", 100));
  stop(nodes[0], SIGTERM);
}

} // namespace

int main(int argc, char** argv) {
  self_path = argv[0];
  std::string only, url;
  int trials = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--node") return run_node();
    if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--url" && i + 1 < argc) {
      url = argv[++i];
    } else if (arg == "--trials" && i + 1 < argc) {
      trials = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--scale" && i + 1 < argc) {
      trials = std::max(3, static_cast<int>(20 * std::atof(argv[++i])));
    } else {
      std::fprintf(stderr, "usage: %s [--only assignment|election|heartbeat] [--url nats://HOST:PORT] [--trials N]\n",
                   argv[0]);
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (only.empty() || only == "assignment") assignment();
  if ((only.empty() || only == "election" || only == "heartbeat") && url.empty()) {
    if (!only.empty()) {
      std::fprintf(stderr, "%s: --only %s needs --url\n", argv[0], only.c_str());
      return 2;
    }
    bench::note("election and heartbeat skipped: no --url");
    return 0;
  }
  if (only.empty() || only == "election") election(url, trials);
  if (only.empty() || only == "heartbeat") heartbeat_load(url);
  return 0;
}
