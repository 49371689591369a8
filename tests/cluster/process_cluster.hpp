#pragma once

// Node processes of one cluster (cluster_node, started through /usr/bin/env
// with their settings), whose output lines are read into what each applied,
// and the invariant checks over all of it.
#include "support/child_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace proc {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// One node process and what it printed.
struct node {
  std::string id;
  std::unique_ptr<aether::testing::child_process> process;
  bool ready = false;
  bool exited = false;
  std::string error;
  // The latest view.
  std::string self;
  std::uint64_t term = 0;
  std::string leader;
  std::uint64_t epoch = 0;
  bool serving = false;
  std::vector<std::string> alive;
  std::map<std::string, std::size_t> owned; // member -> shards, in the latest map
  // Everything applied, in order.
  std::vector<std::pair<std::uint64_t, std::string>> terms;
  std::vector<std::pair<std::uint64_t, std::vector<std::string>>> maps;

  [[nodiscard]] bool leads() const { return serving && leader == self; }
};

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in{s};
  while (std::getline(in, cur, sep)) {
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

inline std::string value_of(const std::string& word, const std::string& key) {
  return word.rfind(key + "=", 0) == 0 ? word.substr(key.size() + 1) : std::string{};
}

class cluster {
public:
  /// `env`: settings every node gets (`NAME=value`).
  cluster(std::string program, std::vector<std::string> env) : program_{std::move(program)}, env_{std::move(env)} {}

  /// Starts a node process; `prefix` runs before the program (e.g. faketime).
  node& start(const std::string& id, std::vector<std::string> extra_env = {}, std::vector<std::string> prefix = {}) {
    std::vector<std::string> args{"/usr/bin/env", "AETHER_NODE_ID=" + id};
    args.insert(args.end(), env_.begin(), env_.end());
    args.insert(args.end(), extra_env.begin(), extra_env.end());
    args.insert(args.end(), prefix.begin(), prefix.end());
    args.push_back(program_);
    auto n = std::make_unique<node>();
    n->id = id;
    n->process = std::make_unique<aether::testing::child_process>(args);
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }

  void kill(node& n) {
    n.process->signal(SIGKILL);
    n.process->wait();
    drain(n);
    n.exited = true;
  }

  /// Reads what the nodes printed until `done()` holds; fails the test at `limit`.
  template <class F>
  clock::duration until(F done, std::chrono::milliseconds limit, const char* what) {
    const auto start = clock::now();
    const auto deadline = start + limit;
    for (;;) {
      pump(5ms);
      if (done()) return clock::now() - start;
      if (clock::now() >= deadline) {
        std::string state;
        for (const auto& n : nodes_) {
          if (n->exited) continue;
          state += "\n  " + n->id + ": self=" + n->self + " term=" + std::to_string(n->term) + " leader=" + n->leader +
                   " epoch=" + std::to_string(n->epoch) + " serving=" + std::to_string(n->serving) +
                   " alive=" + std::to_string(n->alive.size()) + (n->error.empty() ? "" : " error=" + n->error);
        }
        FAIL("not within " << limit.count() << " ms: " << std::string{what} << state);
      }
    }
  }

  /// Reads the lines the running nodes print within about `wait`.
  void pump(std::chrono::milliseconds wait) {
    const auto deadline = clock::now() + wait;
    do {
      for (auto& n : nodes_) {
        if (n->exited) continue;
        // A poll of at least a millisecond per node (a shorter deadline reads nothing).
        while (auto l = n->process->line(clock::now() + 2ms)) parse(*n, *l);
      }
    } while (clock::now() < deadline);
  }

  [[nodiscard]] std::vector<node*> running() const {
    std::vector<node*> out;
    for (const auto& n : nodes_) {
      if (!n->exited && n->ready) out.push_back(n.get());
    }
    return out;
  }

  /// Every running node serves and agrees on term, leader, epoch and alive members (`count` of them).
  [[nodiscard]] bool agree(std::size_t count) const {
    const auto nodes = running();
    if (nodes.size() != count) return false;
    const auto* first = nodes.front();
    for (const auto* n : nodes) {
      if (!n->serving || n->leader == "none" || n->epoch == 0 || n->alive.size() != count) return false;
      if (n->term != first->term || n->leader != first->leader || n->epoch != first->epoch ||
          n->alive != first->alive) {
        return false;
      }
      // The latest map covers exactly the alive members.
      std::set<std::string> owners;
      for (const auto& [m, c] : n->owned) owners.insert(m);
      if (owners != std::set<std::string>(n->alive.begin(), n->alive.end())) return false;
    }
    return true;
  }

  /// The invariants over everything every node (killed ones too) applied: no
  /// term with two leaders, no node applying an older term or epoch after a
  /// newer one, one owner per shard in each epoch.
  void check_invariants() const {
    std::map<std::uint64_t, std::string> leaders;
    std::map<std::uint64_t, std::vector<std::string>> maps;
    std::size_t terms_seen = 0, maps_seen = 0;
    for (const auto& n : nodes_) {
      std::uint64_t last_term = 0;
      for (const auto& [t, l] : n->terms) {
        CHECK_MESSAGE(t >= last_term, n->id << " applied term " << t << " after " << last_term);
        last_term = t;
        if (l == "none") continue;
        ++terms_seen;
        auto [it, fresh] = leaders.emplace(t, l);
        CHECK_MESSAGE(it->second == l, "term " << t << " has two leaders: " << it->second << " and " << l);
      }
      std::uint64_t last_epoch = 0;
      for (const auto& [e, owners] : n->maps) {
        CHECK_MESSAGE(e >= last_epoch, n->id << " applied epoch " << e << " after " << last_epoch);
        last_epoch = e;
        ++maps_seen;
        auto [it, fresh] = maps.emplace(e, owners);
        CHECK_MESSAGE(it->second == owners, "epoch " << e << " has two different maps");
      }
    }
    CHECK(terms_seen > 0);
    CHECK(maps_seen > 0);
  }

  /// Every map applied anywhere, by epoch.
  [[nodiscard]] std::map<std::uint64_t, std::vector<std::string>> all_maps() const {
    std::map<std::uint64_t, std::vector<std::string>> out;
    for (const auto& n : nodes_) {
      for (const auto& [e, owners] : n->maps) out.emplace(e, owners);
    }
    return out;
  }

  [[nodiscard]] const std::vector<std::unique_ptr<node>>& nodes() const { return nodes_; }

private:
  void drain(node& n) {
    while (auto l = n.process->line(clock::now() + 200ms)) parse(n, *l);
  }

  static void parse(node& n, const std::string& l) {
    const auto w = split(l, ' ');
    if (w.empty()) return;
    if (w[0] == "ready" && w.size() == 2) {
      n.ready = true;
      n.self = w[1];
    } else if (w[0] == "error") {
      n.error = l;
    } else if (w[0] == "view" && w.size() == 7) {
      n.self = w[1];
      const auto term = std::stoull(value_of(w[2], "term"));
      const auto leader = value_of(w[3], "leader");
      if (n.terms.empty() || n.terms.back().first != term || n.terms.back().second != leader) {
        n.terms.emplace_back(term, leader);
      }
      n.term = term;
      n.leader = leader;
      n.epoch = std::stoull(value_of(w[4], "epoch"));
      n.serving = value_of(w[5], "serving") == "1";
      n.alive = split(value_of(w[6], "alive"), ',');
    } else if (w[0] == "map" && w.size() >= 4) {
      std::vector<std::string> owners(w.begin() + 4, w.end());
      n.maps.emplace_back(std::stoull(w[2]), owners);
      n.owned.clear();
      for (const auto& o : owners) {
        if (o != "-") ++n.owned[o];
      }
    }
  }

  std::string program_;
  std::vector<std::string> env_;
  std::vector<std::unique_ptr<node>> nodes_;
};

} // namespace proc
