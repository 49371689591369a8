// The bank workload, in the style of Jepsen's bank test: three routing node
// processes on one nats-server (R1) and on a three-server cluster (R3); the
// clients of every node send deposits and transfers to a few hundred
// event-sourced accounts while a nemesis kills a node (kill -9), pauses one
// past the failure timeout (SIGSTOP, SIGCONT), restarts every node in turn,
// and kills the nats-server leading the accounts' stream. Every operation
// is recorded as ok, failed or unknown; at the end every account's stream is
// read through the store and checked whole (tests/cluster/bank_checker.hpp).
//
// AETHER_SOAK=N runs each phase N times as long.
#include "cluster/bank_checker.hpp"
#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/nats_server.hpp"
#include "support/scale.hpp"

#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/json.hpp>
#include <aether/runtime/nats.hpp>

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using aether::testing::child_process;

namespace {

struct deposited {
  static constexpr std::string_view type_name = "bk.deposited";
  std::string op;
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposited, op, cents)

/// A temporary directory for the nodes' history files, removed at the end.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "aether-bank.XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// The workload's size: accounts, clients per node, and how many answers each phase waits for.
struct workload {
  std::size_t accounts = static_cast<std::size_t>(aether::testing::sanitized ? 100 : 200);
  std::size_t clients = aether::testing::sanitized ? 2 : 3;
  std::size_t phase_ops = static_cast<std::size_t>(aether::testing::scaled(300));
  int replicas = 1;
};

/// One node of the bank: its process, restarted as new runs, each with a history file.
class bank_node {
public:
  bank_node(std::string id, std::string urls, const temp_dir& dir, const workload& w)
      : id_{std::move(id)}, urls_{std::move(urls)}, dir_{dir.path}, w_{w} {}

  /// Starts a new run (a new incarnation); `wait_serving` waits for it.
  void start() {
    const auto tag = fmt::format("{}{}", id_, runs_);
    files_.push_back((dir_ / (tag + ".log")).string());
    process_ = std::make_unique<child_process>(std::vector<std::string>{
        "/usr/bin/env", "AETHER_NATS_URL=" + urls_, "AETHER_CLUSTER=bank", "AETHER_NODE_ID=" + id_, "AETHER_ROUTING=1",
        "AETHER_CLUSTER_SHARDS=32", "AETHER_EXPECT_NODES=3", "AETHER_JS_REPLICAS=" + std::to_string(w_.replicas),
        "AETHER_SNAPSHOT_EVERY=20", "AETHER_LOG=error", AETHER_BANK_NODE, files_.back(), tag,
        std::to_string(w_.clients), std::to_string(w_.accounts), std::to_string(1000 * runs_ + id_.back())});
    ++runs_;
  }
  void wait_serving() {
    auto l = process_->line(clock_type::now() + 60s);
    REQUIRE_MESSAGE(l.has_value(), id_ << " did not start");
    REQUIRE_MESSAGE(l->rfind("serving " + id_, 0) == 0, id_ << ": " << *l);
  }
  /// kill -9: a crash with operations in flight.
  void kill() { process_->kill(); }
  void pause() { process_->signal(SIGSTOP); }
  void resume() { process_->signal(SIGCONT); }
  /// A graceful stop: its clients finish their operation, the node leaves.
  void quit() {
    process_->write("quit\n");
    const auto status = process_->wait(clock_type::now() + 60s);
    REQUIRE_MESSAGE(status.has_value(), id_ << " did not stop");
    CHECK_MESSAGE((WIFEXITED(*status) && WEXITSTATUS(*status) == 0), id_ << " exited with status " << *status);
    process_.reset();
  }
  /// One command and its answer line.
  std::string command(const std::string& text) {
    process_->write(text + "\n");
    auto l = process_->line(clock_type::now() + 60s);
    REQUIRE_MESSAGE(l.has_value(), id_ << " did not answer " << text);
    return *l;
  }
  /// Every account's balance and version as this node's actors answer them.
  std::map<std::string, std::pair<std::int64_t, std::uint64_t>> balances(std::vector<std::string>& errors) {
    process_->write("balances\n");
    std::map<std::string, std::pair<std::int64_t, std::uint64_t>> out;
    const auto deadline = clock_type::now() + 300s;
    for (;;) {
      auto l = process_->line(deadline);
      REQUIRE_MESSAGE(l.has_value(), id_ << " did not list the balances");
      if (*l == "end") return out;
      const auto w = aether::testing::words(*l);
      REQUIRE_MESSAGE((w.size() == 4 && w[0] == "balance"), id_ << ": " << *l);
      if (w[2] == "err") {
        errors.push_back(fmt::format("{} could not read {}: {}", id_, w[1], w[3]));
      } else {
        out[w[1]] = {std::stoll(w[2]), std::stoull(w[3])};
      }
    }
  }

  [[nodiscard]] const std::vector<std::string>& files() const { return files_; }
  [[nodiscard]] const std::string& id() const { return id_; }

private:
  std::string id_;
  std::string urls_;
  std::filesystem::path dir_;
  workload w_;
  int runs_ = 0;
  std::vector<std::string> files_;
  std::unique_ptr<child_process> process_;
};

/// The operations of every history file.
std::map<std::string, bank_check::operation> read_histories(const std::vector<bank_node*>& nodes) {
  std::map<std::string, bank_check::operation> ops;
  for (const auto* n : nodes) {
    for (const auto& file : n->files()) {
      std::ifstream in{file};
      std::string line;
      // A line cut short by a kill -9 is not of the protocol and is skipped.
      while (std::getline(in, line)) (void)bank_check::take_line(line, ops);
    }
  }
  return ops;
}

/// Counts acknowledged operations in the history files as they grow, reading
/// only what was added since the last count.
class progress {
public:
  std::size_t acknowledged(const std::vector<bank_node*>& nodes) {
    for (const auto* n : nodes) {
      for (const auto& file : n->files()) {
        auto& [offset, count] = files_[file];
        std::ifstream in{file};
        in.seekg(static_cast<std::streamoff>(offset));
        std::string line;
        // Only whole lines: a line still being written is read next time.
        while (std::getline(in, line) && !in.eof()) {
          offset += line.size() + 1;
          count += line.rfind("ok ", 0) == 0 ? 1 : 0;
        }
      }
    }
    std::size_t total = 0;
    for (const auto& [file, f] : files_) total += f.second;
    return total;
  }

private:
  std::map<std::string, std::pair<std::size_t, std::size_t>> files_;
};

/// Waits until `count` more operations were acknowledged: the load goes on
/// between faults (a liveness bound, generous for sanitizers).
void await_progress(const std::vector<bank_node*>& nodes, std::size_t count, const char* phase) {
  progress p;
  const auto target = p.acknowledged(nodes) + count;
  const bool moved = aether::testing::poll_until([&] { return p.acknowledged(nodes) >= target; }, 90s, 100ms);
  REQUIRE_MESSAGE(moved, "fewer than " << count << " operations acknowledged within 90 s " << phase);
}

/// The stream's message count, as the server leading it reports it.
std::optional<std::uint64_t> stream_messages(const aether::testing::nats_server& server, std::string_view stream) {
  const auto jsz = server.monitor("/jsz?accounts=true&streams=true");
  if (!jsz) return std::nullopt;
  const auto at = jsz->find(fmt::format("\"name\": \"{}\"", stream));
  if (at == std::string::npos) return std::nullopt;
  const auto key = jsz->find("\"messages\":", at);
  if (key == std::string::npos) return std::nullopt;
  return std::strtoull(jsz->c_str() + key + 11, nullptr, 10);
}

/// Reads every account's stream through the store and checks the whole history.
void check_bank(const std::string& urls, const workload& w, const std::vector<bank_node*>& nodes,
                const aether::testing::nats_server& stream_leader, const std::string& nemesis) {
  // Every node's clients stop; then each node reads every account's balance through its own routes.
  for (auto* n : nodes) CHECK(n->command("stop").rfind("stopped ", 0) == 0);
  std::vector<std::string> read_errors;
  std::vector<std::map<std::string, std::pair<std::int64_t, std::uint64_t>>> seen;
  for (auto* n : nodes) seen.push_back(n->balances(read_errors));
  for (auto* n : nodes) n->quit();
  for (const auto& e : read_errors) CHECK_MESSAGE(false, e);
  // All three nodes reach the same activation of each account.
  for (std::size_t i = 1; i < seen.size(); ++i) {
    for (const auto& [account, b] : seen[0]) {
      auto it = seen[i].find(account);
      if (it == seen[i].end()) continue;
      CHECK_MESSAGE(it->second == b, account << ": " << nodes[0]->id() << " read " << b.first << " at version "
                                             << b.second << ", " << nodes[i]->id() << " read " << it->second.first
                                             << " at version " << it->second.second);
    }
  }

  aether::nats::connect_options o;
  o.url = urls;
  auto conn = aether::nats::connection::connect(o);
  REQUIRE_MESSAGE(conn, (conn ? "" : conn.error().to_string()));
  aether::jetstream_store_options so;
  so.replicas = w.replicas;
  auto store = aether::jetstream_event_store::open(*conn, so);
  REQUIRE_MESSAGE(store, (store ? "" : store.error().to_string()));

  std::map<std::string, bank_check::account_view> accounts;
  for (std::size_t i = 0; i < w.accounts; ++i) {
    const auto key = "acct-" + std::to_string(i);
    auto events = (*store)->read_wait(aether::actor_id{"account", key});
    REQUIRE_MESSAGE(events, key << ": " << (events ? "" : events.error().to_string()));
    auto& view = accounts[key];
    for (const auto& e : *events) {
      auto d = aether::json::decode<deposited>(e.data); // withdrawn has the same fields
      REQUIRE_MESSAGE(d, key << " version " << e.version << ": " << e.data);
      REQUIRE_MESSAGE((e.type == "bk.deposited" || e.type == "bk.withdrawn"), e.type);
      view.events.push_back({e.version, e.type == "bk.withdrawn", d->op, d->cents});
    }
    if (auto it = seen[0].find(key); it != seen[0].end()) {
      view.balance = it->second.first;
      view.version = it->second.second;
    }
  }
  std::vector<bank_check::operation> history;
  std::map<std::string, std::size_t> unknown_by_error;
  std::map<std::string, std::size_t> failed_by_error;
  for (auto& [id, op] : read_histories(nodes)) {
    const auto cause = op.detail.substr(0, op.detail.find(' '));
    if (op.result == bank_check::outcome::unknown) ++unknown_by_error[cause];
    if (op.result == bank_check::outcome::failed) ++failed_by_error[cause];
    if (!op.result) ++unknown_by_error["(no answer: node killed)"];
    history.push_back(std::move(op));
  }
  const auto report = bank_check::check(history, accounts);
  std::string causes;
  for (const auto& [why, n] : failed_by_error) causes += fmt::format(" failed {} {};", why, n);
  for (const auto& [why, n] : unknown_by_error) causes += fmt::format(" unknown {} {};", why, n);
  MESSAGE("bank: " << report.summary() << ";" << causes << " nemesis: " << nemesis);
  for (std::size_t i = 0; i < report.problems.size() && i < 30; ++i) CHECK_MESSAGE(false, report.problems[i]);
  CHECK_MESSAGE(report.problems.size() <= 30, report.problems.size() << " problems in all");

  // No write is stored twice under one version: the stream holds as many
  // messages as the accounts' histories have events (one event per write).
  std::optional<std::uint64_t> messages;
  REQUIRE(aether::testing::poll_until([&] { return (messages = stream_messages(stream_leader, "default_events")); },
                                      10s, 100ms));
  CHECK_MESSAGE(*messages == report.stored_events,
                "the stream holds " << *messages << " messages, the accounts " << report.stored_events << " events");

  // The workload did work: deposits and whole transfers were acknowledged.
  const auto ok = [&](bank_check::op_kind k) {
    auto it = report.counts.find(k);
    if (it == report.counts.end()) return std::size_t{0};
    auto found = it->second.find(bank_check::outcome::ok);
    return found == it->second.end() ? std::size_t{0} : found->second;
  };
  CHECK(ok(bank_check::op_kind::deposit) > w.phase_ops);
  CHECK(ok(bank_check::op_kind::transfer_in) > 0);
}

/// The nemesis schedule, with the load going on between faults; `kill_stream_leader`
/// kills the nats-server leading the accounts' stream and starts it again.
template <class KillStreamLeader>
std::string run_nemesis(std::vector<bank_node*> nodes, const workload& w, KillStreamLeader kill_stream_leader) {
  std::vector<std::string> events;
  for (auto* n : nodes) n->start();
  for (auto* n : nodes) n->wait_serving();
  await_progress(nodes, w.phase_ops, "at the start");

  for (int round = 0; round < aether::testing::soak_factor(); ++round) {
    // kill -9 of a node: its shards get new owners; it comes back as a new incarnation.
    nodes[1]->kill();
    events.push_back("kill -9 " + nodes[1]->id());
    await_progress({nodes[0], nodes[2]}, w.phase_ops / 3, "after a node was killed");
    nodes[1]->start();
    nodes[1]->wait_serving();
    await_progress(nodes, w.phase_ops, "after the killed node came back");

    // A pause past the failure timeout (1 s): the node is declared dead and
    // is a stale owner when it wakes.
    nodes[2]->pause();
    std::this_thread::sleep_for(2500ms);
    nodes[2]->resume();
    events.push_back("SIGSTOP/SIGCONT " + nodes[2]->id() + " for 2.5 s");
    await_progress(nodes, w.phase_ops, "after a paused node woke");

    // A rolling restart: each node stops gracefully and starts again.
    for (auto* n : nodes) {
      n->quit();
      n->start();
      n->wait_serving();
    }
    events.push_back("rolling restart");
    await_progress(nodes, w.phase_ops, "after the rolling restart");

    events.push_back(kill_stream_leader());
    await_progress(nodes, w.phase_ops, "after the stream leader's server was killed");
  }
  std::string out;
  for (const auto& e : events) out += (out.empty() ? "" : ", ") + e;
  return out;
}

} // namespace

TEST_CASE("bank on one nats-server: three routing nodes under kill -9, pause, rolling restart and a server "
          "kill lose no acknowledged operation and store none twice") {
  aether::testing::nats_server server;
  temp_dir dir;
  workload w;
  bank_node a{"a", server.url(), dir, w};
  bank_node b{"b", server.url(), dir, w};
  bank_node c{"c", server.url(), dir, w};
  const auto nemesis = run_nemesis({&a, &b, &c}, w, [&] {
    server.restart(); // kill -9 and start again
    return std::string{"kill -9 and restart of the nats-server"};
  });
  check_bank(server.url(), w, {&a, &b, &c}, server, nemesis);
}

TEST_CASE("bank on a three-server R3 cluster: three routing nodes under kill -9, pause, rolling restart and a "
          "kill of the stream leader's server lose no acknowledged operation and store none twice") {
  aether::testing::nats_cluster cluster{3};
  temp_dir dir;
  workload w;
  w.replicas = 3;
  bank_node a{"a", cluster.urls(), dir, w};
  bank_node b{"b", cluster.urls(), dir, w};
  bank_node c{"c", cluster.urls(), dir, w};
  const auto nemesis = run_nemesis({&a, &b, &c}, w, [&] {
    std::optional<std::size_t> leader;
    AETHER_EVENTUALLY((leader = cluster.stream_leader("default_events")), 10s);
    cluster.server(*leader).kill();
    std::this_thread::sleep_for(2s); // writes go on meanwhile, through the other two
    cluster.server(*leader).restart();
    return fmt::format("kill -9 and restart of aether-{} (leading default_events)", *leader);
  });
  std::optional<std::size_t> leader;
  AETHER_EVENTUALLY((leader = cluster.stream_leader("default_events")), 10s);
  check_bank(cluster.urls(), w, {&a, &b, &c}, cluster.server(*leader), nemesis);
}
