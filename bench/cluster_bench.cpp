// Cluster benchmarks: coordination and routing.
//
//   aether_cluster_bench [--only assignment|election|heartbeat|remote_ask|remote_tell|cluster_failover|
//                         rolling_restart|cluster_scaling] [--url nats://HOST:PORT] [--trials N] [--scale F]
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
// The routing benchmarks run routing node processes (AETHER_ROUTING=1) of
// aether_cluster_bench_node, the program beside this one:
// - remote_ask: sequential asks from node n0 to an actor on n1, p50/p99 us,
//   beside nats.c request-reply between the same two processes (send-asap,
//   the same JSON payload). Goal: p50 <= 1.5x raw.
// - remote_tell: tells from n0 to one actor on n1 until it counted them all,
//   beside nats.c publishes of the same payload to a subscriber on n1; both
//   are at most once, so each stops counting once none more arrived for 3 s
//   and reports how many were lost (a slow consumer's drops), and the CPU time
//   both node processes used per message (cpu_ns_per_msg: hardly moved by
//   other load, unlike the rate). Goal: >= 0.5x raw.
// - cluster_failover: three nodes; kill -9 of n2, then asks through n0 (200 ms
//   timeout each) to an actor of one of n2's shards until one answers; p50
//   and max over --trials (20), a fresh cluster each. Goal: p50 <= 3,000 ms.
// - rolling_restart: three nodes each asking actors of every shard (one ask
//   at a time, 5 s timeout) while each node in turn stops gracefully and
//   starts again; failed asks and the p99 ask time. Goal: 0 failed.
// - cluster_scaling: persisted commands per second (event-sourced counters,
//   8 clients per node) through 1, 2 and 3 node processes on one server. On a
//   2-core machine this shows the cost of routing, not scale.
//
// JSON lines as bench_report.hpp prints them; diagnostics on stderr.
#include "bench_report.hpp"

#include <aether/aether.hpp>
#include <aether/cluster/assignment.hpp>
#include <aether/runtime/command_line.hpp>
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

// Routing: node processes of bench/cluster_bench_node.cpp, driven by line commands.

std::string node_program;
constexpr const char* routing_benches =
    "assignment|election|heartbeat|remote_ask|remote_tell|cluster_failover|rolling_restart|cluster_scaling";

/// A routing bench node: stdin and stdout are pipes to this program.
class routing_node {
public:
  routing_node(const std::string& url, const std::string& cluster, const std::string& id, int expect, int replicas = 1)
      : id_{id} {
    int to[2];
    int from[2];
    if (::pipe(to) != 0 || ::pipe(from) != 0) throw std::runtime_error{"pipe"};
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to[0], 0);
      ::dup2(from[1], 1);
      for (int fd : {to[0], to[1], from[0], from[1]}) ::close(fd);
      ::setenv("AETHER_NATS_URL", url.c_str(), 1);
      ::setenv("AETHER_CLUSTER", cluster.c_str(), 1);
      ::setenv("AETHER_NODE_ID", id.c_str(), 1);
      ::setenv("AETHER_ROUTING", "1", 1);
      ::setenv("AETHER_EXPECT_NODES", std::to_string(expect).c_str(), 1);
      ::setenv("AETHER_JS_REPLICAS", std::to_string(replicas).c_str(), 1);
      ::setenv("AETHER_LOG", "error", 1);
      ::execl(node_program.c_str(), node_program.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to[0]);
    ::close(from[1]);
    in_ = to[1];
    out_ = from[0];
  }
  ~routing_node() { kill(); }
  routing_node(const routing_node&) = delete;
  routing_node& operator=(const routing_node&) = delete;

  /// The next line, or nothing at the deadline or the end of its output.
  std::optional<std::string> line(std::chrono::milliseconds limit = 120s) {
    const auto deadline = bench::bench_clock::now() + limit;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        auto l = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - bench::bench_clock::now());
      if (left.count() <= 0 || out_ < 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      const auto n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  /// Waits for `serving`; false if it did not come.
  bool serving() {
    auto l = line();
    if (!l || l->rfind("serving", 0) != 0) {
      bench::note("node {} did not start: {}", id_, l.value_or("(nothing)"));
      return false;
    }
    return true;
  }
  /// Sends a command; its answer is the next `line`.
  bool send(const std::string& text) {
    const auto l = text + "\n";
    return ::write(in_, l.data(), l.size()) == static_cast<ssize_t>(l.size());
  }
  /// One command and its answer, or "error ..." when none came.
  std::string command(const std::string& text, std::chrono::milliseconds limit = 300s) {
    if (!send(text)) return "error write";
    return line(limit).value_or("error no answer to " + text);
  }
  /// A graceful stop; waits for the exit.
  void quit() {
    if (pid_ < 0) return;
    (void)::write(in_, "quit\n", 5);
    ::waitpid(pid_, nullptr, 0);
    close_pipes();
  }
  /// kill -9, and reaps it.
  void kill() {
    if (pid_ < 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    close_pipes();
  }
  [[nodiscard]] const std::string& id() const { return id_; }

private:
  void close_pipes() {
    ::close(in_);
    ::close(out_);
    in_ = out_ = -1;
    pid_ = -1;
  }
  std::string id_;
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
};

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in{line};
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

/// Starts `count` nodes (n0, n1, ...) of a fresh cluster and waits until each serves.
std::vector<std::unique_ptr<routing_node>> start_nodes(const std::string& url, const std::string& cluster, int count) {
  std::vector<std::unique_ptr<routing_node>> nodes;
  for (int i = 0; i < count; ++i) {
    nodes.push_back(std::make_unique<routing_node>(url, cluster, fmt::format("n{}", i), count));
  }
  for (auto& n : nodes) {
    if (!n->serving()) return {};
  }
  return nodes;
}

/// An ask from one node process to an actor on another, beside nats.c request-reply between two processes.
void remote_ask(const std::string& url, double scale) {
  const auto count = bench::scaled(5000, scale);
  auto nodes = start_nodes(url, fmt::format("bench_ask_{}", ::getpid()), 2);
  if (nodes.empty()) return;
  const auto keys = split_words(nodes[0]->command("keys n1 1"));
  if (keys.size() != 2) return bench::note("remote_ask: no key on n1");
  const auto params = bench::param("asks", count) + bench::param("payload", "seq");
  const auto a = split_words(nodes[0]->command(fmt::format("ask {} {}", keys[1], count)));
  if (a.size() == 3 && a[0] == "lat") {
    bench::emit("remote_ask", "two_nodes", "aether", "p50_us", std::stod(a[1]), "us", params);
    bench::emit("remote_ask", "two_nodes", "aether", "p99_us", std::stod(a[2]), "us", params);
  } else {
    bench::note("remote_ask aether: {}", fmt::join(a, " "));
  }
  (void)nodes[1]->command("raw_serve");
  const auto r = split_words(nodes[0]->command(fmt::format("raw_ask n1 {}", count)));
  if (r.size() == 3 && r[0] == "lat") {
    bench::emit("remote_ask", "two_nodes", "nats.c", "p50_us", std::stod(r[1]), "us", params);
    bench::emit("remote_ask", "two_nodes", "nats.c", "p99_us", std::stod(r[2]), "us", params);
  } else {
    bench::note("remote_ask nats.c: {}", fmt::join(r, " "));
  }
  for (auto& n : nodes) n->quit();
}

/// Tells from one node process to an actor on another, beside nats.c publishes of the same payload.
void remote_tell(const std::string& url, double scale) {
  const auto count = bench::scaled(200000, scale);
  auto nodes = start_nodes(url, fmt::format("bench_tell_{}", ::getpid()), 2);
  if (nodes.empty()) return;
  const auto keys = split_words(nodes[0]->command("keys n1 1"));
  if (keys.size() != 2) return bench::note("remote_tell: no key on n1");
  const auto params = bench::param("tells", count) + bench::param("payload", "seq");
  // CPU time of both node processes per message sent: unlike the rate, it
  // hardly moves with what else the machine runs.
  const auto cpu_us = [&] {
    double sum = 0;
    for (auto& n : nodes) {
      const auto w = split_words(n->command("cpu"));
      if (w.size() != 2 || w[0] != "cpu") return -1.0;
      sum += std::stod(w[1]);
    }
    return sum;
  };
  const auto emit_cpu = [&](const char* impl, double before, double after) {
    if (before >= 0 && after >= 0)
      bench::emit("remote_tell", "two_nodes", impl, "cpu_ns_per_msg", (after - before) * 1000 / count, "ns", params);
  };
  (void)nodes[0]->command(fmt::format("ask {} 10", keys[1])); // activates it
  auto before = cpu_us();
  const auto a = split_words(nodes[0]->command(fmt::format("tell {} {}", keys[1], count)));
  if (a.size() == 3 && a[0] == "rate") {
    bench::emit("remote_tell", "two_nodes", "aether", "msgs_per_s", std::stod(a[1]), "msgs/s", params);
    bench::emit("remote_tell", "two_nodes", "aether", "lost", std::stod(a[2]), "count", params);
    emit_cpu("aether", before, cpu_us());
  } else {
    bench::note("remote_tell aether: {}", fmt::join(a, " "));
  }
  (void)nodes[1]->command("raw_serve");
  before = cpu_us();
  const auto r = split_words(nodes[0]->command(fmt::format("raw_tell n1 {}", count)));
  if (r.size() == 3 && r[0] == "rate") {
    bench::emit("remote_tell", "two_nodes", "nats.c", "msgs_per_s", std::stod(r[1]), "msgs/s", params);
    bench::emit("remote_tell", "two_nodes", "nats.c", "lost", std::stod(r[2]), "count", params);
    emit_cpu("nats.c", before, cpu_us());
  } else {
    bench::note("remote_tell nats.c: {}", fmt::join(r, " "));
  }
  for (auto& n : nodes) n->quit();
}

/// kill -9 of a node until the first answered ask to an actor of one of its
/// shards, asked through a surviving node (each ask with a 200 ms timeout).
void cluster_failover(const std::string& url, int trials) {
  std::vector<double> ms;
  for (int t = 0; t < trials; ++t) {
    auto nodes = start_nodes(url, fmt::format("bench_failover_{}_{}", ::getpid(), t), 3);
    if (nodes.empty()) continue;
    const auto keys = split_words(nodes[0]->command("keys n2 1"));
    if (keys.size() != 2 || nodes[0]->command(fmt::format("ask {} 10", keys[1])).rfind("lat", 0) != 0) {
      bench::note("failover trial {}: no answer from n2 before the kill", t);
      continue;
    }
    nodes[2]->kill();
    const auto p = split_words(nodes[0]->command(fmt::format("probe {} 200", keys[1])));
    if (p.size() == 2 && p[0] == "probe_ms") {
      ms.push_back(std::stod(p[1]));
    } else {
      bench::note("failover trial {}: {}", t, fmt::join(p, " "));
    }
    for (auto& n : nodes) n->quit();
  }
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  const auto params = bench::param("trials", static_cast<std::int64_t>(ms.size())) + bench::param("nodes", 3);
  bench::emit("cluster_failover", "kill_node", "aether", "p50_ms", ms[(ms.size() - 1) / 2], "ms", params);
  bench::emit("cluster_failover", "kill_node", "aether", "max_ms", ms.back(), "ms", params);
}

/// Each of three nodes in turn stops gracefully and starts again, while an
/// asker on every node asks actors of all shards (timeout 5 s, one at a time).
void rolling_restart(const std::string& url) {
  const auto cluster = fmt::format("bench_rolling_{}", ::getpid());
  auto nodes = start_nodes(url, cluster, 3);
  if (nodes.empty()) return;
  std::int64_t asks = 0, failed = 0;
  std::vector<double> ms;
  auto collect = [&](routing_node& n) {
    const auto w = split_words(n.command("steady_stop"));
    if (w.size() != 4 || w[0] != "steady") return bench::note("rolling restart: {}", fmt::join(w, " "));
    asks += std::stoll(w[1]);
    failed += std::stoll(w[2]);
    std::istringstream list{w[3]};
    for (std::string v; std::getline(list, v, ',');) ms.push_back(std::stod(v));
  };
  for (auto& n : nodes) (void)n->command("steady_start 64");
  std::this_thread::sleep_for(1s);
  for (int i = 0; i < 3; ++i) {
    collect(*nodes[static_cast<std::size_t>(i)]);
    nodes[static_cast<std::size_t>(i)]->quit();
    nodes[static_cast<std::size_t>(i)] = std::make_unique<routing_node>(url, cluster, fmt::format("n{}", i), 3);
    if (!nodes[static_cast<std::size_t>(i)]->serving()) return;
    (void)nodes[static_cast<std::size_t>(i)]->command("steady_start 64");
    std::this_thread::sleep_for(1s);
  }
  for (auto& n : nodes) {
    collect(*n);
    n->quit();
  }
  std::sort(ms.begin(), ms.end());
  const auto p99 = ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<std::size_t>(0.99 * ms.size()))];
  const auto params = bench::param("asks", asks) + bench::param("nodes", 3) + bench::param("timeout_ms", 5000);
  bench::emit("rolling_restart", "three_nodes", "aether", "failed_asks", static_cast<double>(failed), "count", params);
  bench::emit("rolling_restart", "three_nodes", "aether", "p99_ask_ms", p99, "ms", params);
}

/// Persisted commands per second through 1, 2 and 3 node processes, each
/// with 8 clients asking event-sourced counters of all shards.
void cluster_scaling(const std::string& url, double scale) {
  const auto window_ms = bench::scaled(4000, scale);
  for (int count = 1; count <= 3; ++count) {
    auto nodes = start_nodes(url, fmt::format("bench_scaling_{}_{}", ::getpid(), count), count);
    if (nodes.empty()) continue;
    // Activate the counters first, so the window measures commands, not replays.
    for (auto& n : nodes) (void)n->command("persist 256 8 300");
    // All nodes at once: send to each, then read each.
    for (auto& n : nodes) n->send(fmt::format("persist 256 8 {}", window_ms));
    std::int64_t done = 0, failed = 0;
    for (auto& n : nodes) {
      const auto w = split_words(n->line().value_or("error"));
      if (w.size() != 3 || w[0] != "persisted") {
        bench::note("scaling: {}", fmt::join(w, " "));
        continue;
      }
      done += std::stoll(w[1]);
      failed += std::stoll(w[2]);
    }
    const auto params = bench::param("nodes", count) + bench::param("clients_per_node", 8) +
                        bench::param("failed", failed) + bench::param("cores", bench::hardware_threads());
    bench::emit("cluster_scaling", fmt::format("nodes_{}", count), "aether", "commands_per_s",
                static_cast<double>(done) * 1000.0 / static_cast<double>(window_ms), "cmds/s", params);
    for (auto& n : nodes) n->quit();
  }
}

} // namespace

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"aether_cluster_bench",
           "Usage: aether_cluster_bench [--only assignment|election|heartbeat|remote_ask|remote_tell|\n"
           "                              cluster_failover|rolling_restart|cluster_scaling]\n"
           "                            [--url nats://HOST:PORT] [--trials N] [--scale F]\n"
           "Cluster benchmarks (assignment needs no server; the others need --url and run node processes);\n"
           "results as JSON lines on stdout (bench/run.sh cluster runs them).",
           "  0  the benchmarks ran\n  2  bad arguments\n  3  a node process (--node) could not start\n"})) {
    return *answered;
  }
  self_path = argv[0];
  node_program = std::string{argv[0]}.substr(0, std::string{argv[0]}.rfind('/') + 1) + "aether_cluster_bench_node";
  std::string only, url;
  int trials = 20;
  double scale = 1;
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
      scale = std::atof(argv[++i]);
      trials = std::max(3, static_cast<int>(20 * scale));
    } else {
      std::fprintf(stderr, "usage: %s [--only %s] [--url nats://HOST:PORT] [--trials N] [--scale F]\n", argv[0],
                   routing_benches);
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (only.empty() || only == "assignment") assignment();
  if ((only.empty() || only != "assignment") && url.empty()) {
    if (!only.empty()) {
      std::fprintf(stderr, "%s: --only %s needs --url\n", argv[0], only.c_str());
      return 2;
    }
    bench::note("the benchmarks with node processes are skipped: no --url");
    return 0;
  }
  if (only.empty() || only == "election") election(url, trials);
  if (only.empty() || only == "heartbeat") heartbeat_load(url);
  if (only.empty() || only == "remote_ask") remote_ask(url, scale);
  if (only.empty() || only == "remote_tell") remote_tell(url, scale);
  if (only.empty() || only == "cluster_failover") cluster_failover(url, trials);
  if (only.empty() || only == "rolling_restart") rolling_restart(url);
  if (only.empty() || only == "cluster_scaling") cluster_scaling(url, scale);
  return 0;
}
