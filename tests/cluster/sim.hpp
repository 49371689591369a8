#pragma once

// Several cluster members in one process, on one manual executor and clock:
// each member runs on its own `pausable_executor`, which a test can freeze as
// SIGSTOP would (its timers and deliveries wait, the clock goes on).
#include <aether/cluster/membership.hpp>
#include <aether/cluster/memory_control_log.hpp>
#include <aether/cluster/memory_heartbeat_transport.hpp>
#include <aether/runtime/manual_executor.hpp>

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace sim {

using namespace std::chrono_literals;

/// Forwards to a manual executor; while paused, posts and timer firings wait
/// (a periodic timer fires once on resume, as a late timer of a stopped process would).
class pausable_executor final : public aether::executor {
public:
  explicit pausable_executor(aether::manual_executor& inner) : inner_{inner} {}

  [[nodiscard]] std::size_t lane_count() const noexcept override { return inner_.lane_count(); }
  void post(std::size_t lane, task fn) override {
    if (paused_) {
      held_.push_back(std::move(fn));
    } else {
      inner_.post(lane, std::move(fn));
    }
  }
  timer_id start_timer(std::size_t lane, duration delay, duration period, task fn) override {
    auto shared = std::make_shared<task>(std::move(fn));
    auto id = std::make_shared<timer_id>(0);
    *id = inner_.start_timer(lane, delay, period, [this, shared, id] {
      if (paused_) {
        late_[*id] = shared;
      } else {
        (*shared)();
      }
    });
    return *id;
  }
  void cancel_timer(std::size_t lane, timer_id id) override {
    late_.erase(id);
    inner_.cancel_timer(lane, id);
  }
  [[nodiscard]] time_point now() const noexcept override { return inner_.now(); }

  void pause() { paused_ = true; }
  void resume() {
    paused_ = false;
    auto late = std::move(late_);
    late_.clear();
    for (auto& [id, fn] : late) (*fn)();
    auto held = std::move(held_);
    held_.clear();
    for (auto& fn : held) inner_.post(0, std::move(fn));
  }
  [[nodiscard]] bool paused() const noexcept { return paused_; }

private:
  aether::manual_executor& inner_;
  bool paused_ = false;
  std::vector<task> held_;
  std::map<timer_id, std::shared_ptr<task>> late_;
};

/// What one member applied, in order: for the invariant checks.
struct history {
  std::vector<std::pair<std::uint64_t, aether::member_id>> terms; // (term, leader)
  std::vector<std::shared_ptr<const aether::shard_map>> maps;     // in the order applied
};

struct node {
  std::string id;
  std::unique_ptr<pausable_executor> ex;
  std::unique_ptr<aether::membership> m;
  aether::cluster_watch watch;
  history seen;
  bool started = false;
  bool start_failed = false;
  std::string start_error;

  [[nodiscard]] std::shared_ptr<const aether::cluster_snapshot> view() const { return m->snapshot(); }
};

/// A cluster of members on one clock.
class world {
public:
  explicit world(std::uint32_t shards = 100) : shards_{shards} {}
  ~world() {
    for (auto& n : nodes_) {
      if (n->ex->paused()) n->ex->resume();
      n->m->stop([] {});
    }
    clock.run();
  }

  aether::cluster_config config(const std::string& id) const {
    aether::cluster_config c;
    c.name = "sim";
    c.node_id = id;
    c.shards = shards_;
    c.heartbeat_interval = 100ms;
    c.self_fence_timeout = 800ms;
    c.failure_timeout = 1000ms;
    c.election_step = 25ms;
    return c;
  }

  /// Starts a member (a new process: a new incarnation even for a known id).
  node& start(const std::string& id, std::optional<std::uint32_t> shards = std::nullopt) {
    auto n = std::make_unique<node>();
    n->id = id;
    n->ex = std::make_unique<pausable_executor>(clock);
    auto cfg = config(id);
    if (shards) cfg.shards = *shards;
    n->m =
        std::make_unique<aether::membership>(*n->ex, 0, log, heartbeats, cfg, [this] { return ++next_incarnation_; });
    auto* raw = n.get();
    n->watch = n->m->watch([raw](const aether::cluster_snapshot& s) {
      if (raw->seen.terms.empty() || raw->seen.terms.back().first != s.term ||
          raw->seen.terms.back().second != s.leader) {
        raw->seen.terms.emplace_back(s.term, s.leader);
      }
      if (raw->seen.maps.empty() || raw->seen.maps.back() != s.map) raw->seen.maps.push_back(s.map);
    });
    n->m->start([raw](aether::expected<void> r) {
      raw->started = r.has_value();
      raw->start_failed = !r;
      if (!r) raw->start_error = r.error().to_string();
    });
    nodes_.push_back(std::move(n));
    clock.run();
    return *nodes_.back();
  }

  /// Like kill -9: the member stops for good, with no leave record.
  void crash(node& n) {
    n.ex->pause();
    crashed_.insert(&n);
  }

  void advance(std::chrono::milliseconds total, std::chrono::milliseconds step = 10ms) {
    for (auto t = 0ms; t < total; t += step) clock.advance(step);
  }

  /// Advances until `done` holds, at most `limit`; returns the time it took.
  template <class F>
  std::chrono::milliseconds until(F done, std::chrono::milliseconds limit = 10s) {
    auto t = 0ms;
    clock.run();
    while (!done()) {
      REQUIRE_MESSAGE(t < limit, "the condition did not hold within " << limit.count() << " ms");
      clock.advance(5ms);
      t += 5ms;
    }
    return t;
  }

  [[nodiscard]] std::vector<node*> live() const {
    std::vector<node*> out;
    for (auto& n : nodes_) {
      if (!crashed_.contains(n.get()) && n->started) out.push_back(n.get());
    }
    return out;
  }

  /// Every live member serves and reports the same members, leader, term and map.
  [[nodiscard]] bool converged() const {
    auto nodes = live();
    if (nodes.empty()) return false;
    const auto first = nodes.front()->view();
    for (auto* n : nodes) {
      const auto v = n->view();
      if (!v->serving || v->leader.empty() || v->map->epoch() == 0) return false;
      if (v->members != first->members || v->leader != first->leader || v->term != first->term ||
          *v->map != *first->map) {
        return false;
      }
      // The map covers exactly the alive members.
      const auto alive = v->alive_members();
      for (const auto& o : v->map->owners()) {
        if (std::find(alive.begin(), alive.end(), o) == alive.end()) return false;
      }
      for (const auto& a : alive) {
        if (v->map->count_of(a) == 0 && v->map->shard_count() >= alive.size()) return false;
      }
    }
    return true;
  }

  /// No term with two leaders, terms and epochs only grow on each member, and
  /// every member applied the same map for an epoch.
  void check_invariants() const {
    std::map<std::uint64_t, aether::member_id> leaders;
    std::map<std::uint64_t, std::vector<aether::member_id>> maps;
    for (const auto& n : nodes_) {
      std::uint64_t last_term = 0;
      for (const auto& [term, leader] : n->seen.terms) {
        CHECK(term >= last_term);
        last_term = term;
        if (leader.empty()) continue;
        auto [it, fresh] = leaders.emplace(term, leader);
        CHECK_MESSAGE(it->second == leader, "term " << term << " has two leaders");
      }
      std::uint64_t last_epoch = 0;
      for (const auto& m : n->seen.maps) {
        CHECK_MESSAGE(m->epoch() >= last_epoch, n->id << " applied epoch " << m->epoch() << " after " << last_epoch);
        last_epoch = m->epoch();
        if (m->epoch() == 0) continue;
        auto [it, fresh] = maps.emplace(m->epoch(), m->owners());
        CHECK_MESSAGE(it->second == m->owners(), "epoch " << m->epoch() << " has two maps");
      }
    }
  }

  aether::manual_executor clock;
  std::shared_ptr<aether::memory_control_log> log = std::make_shared<aether::memory_control_log>();
  std::shared_ptr<aether::memory_heartbeat_transport> heartbeats =
      std::make_shared<aether::memory_heartbeat_transport>();
  std::vector<std::unique_ptr<node>> nodes_;

private:
  std::uint32_t shards_;
  std::uint64_t next_incarnation_ = 0x100;
  std::set<const node*> crashed_;
};

} // namespace sim
