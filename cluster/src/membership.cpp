#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/control_records.hpp>
#include <aether/cluster/failure_detector.hpp>
#include <aether/cluster/leader_election.hpp>
#include <aether/cluster/map_publisher.hpp>
#include <aether/cluster/membership.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>

namespace aether {

std::uint64_t random_incarnation() {
  static std::mutex mutex;
  static std::mt19937_64 engine{[] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }()};
  std::lock_guard lock{mutex};
  for (;;) {
    if (const auto v = engine(); v != 0) return v;
  }
}

std::vector<member_id> cluster_snapshot::alive_members() const {
  std::vector<member_id> out;
  for (const auto& m : members) {
    if (m.status == member_status::alive) out.push_back(m.id);
  }
  return out;
}

bool cluster::wait_until(const std::function<bool(const cluster_snapshot&)>& ready, std::chrono::milliseconds timeout) {
  // Shared with the watch, whose last callback may still run as it ends.
  struct signal {
    std::mutex m;
    std::condition_variable cv;
  };
  auto changed = std::make_shared<signal>();
  auto w = watch([changed](const cluster_snapshot&) {
    { std::lock_guard lock{changed->m}; }
    changed->cv.notify_all();
  });
  std::unique_lock lock{changed->m};
  return changed->cv.wait_for(lock, timeout, [&] { return ready(*snapshot()); });
}

struct membership::core : std::enable_shared_from_this<membership::core> {
  enum class phase { idle, running, stopping, stopped };

  core(executor& e, std::size_t l, std::shared_ptr<control_log> lg, std::shared_ptr<heartbeat_transport> hb,
       cluster_config c, incarnation_source inc)
      : ex{e},
        lane{l},
        control{std::move(lg)},
        heartbeats{std::move(hb)},
        config{std::move(c)},
        incarnations{inc ? std::move(inc) : incarnation_source{&random_incarnation}},
        detector{config.failure_timeout},
        election{config.election_step} {
    self = member_id{config.node_id, incarnations()};
    own.insert(self.incarnation);
    auto s = std::make_shared<cluster_snapshot>();
    s->cluster = config.name;
    s->self = self;
    s->map = state.map();
    published = std::move(s);
  }

  executor& ex;
  std::size_t lane;
  std::shared_ptr<control_log> control;
  std::shared_ptr<heartbeat_transport> heartbeats;
  cluster_config config;
  incarnation_source incarnations;

  // On the lane only.
  cluster_state state;
  failure_detector detector;
  leader_election election;
  map_publisher publisher;
  member_id self;
  std::set<std::uint64_t> own; // every incarnation this process used
  phase stage = phase::idle;
  bool caught_up = false;
  bool fenced = false;
  bool log_lost = false; // the follow of the control log ended: this node cannot know the cluster
  bool config_written = false;
  bool join_written = false;
  executor::time_point last_echo{};
  std::uint64_t heartbeat_sequence = 0;
  std::set<std::pair<member_id, std::uint64_t>> deaths_written;
  std::unique_ptr<control_log_follow> following;
  std::unique_ptr<heartbeat_subscription> hearing;
  std::optional<executor::timer_id> tick_timer;
  std::optional<executor::timer_id> deadline_timer;
  unique_function<void(expected<void>)> start_done;
  unique_function<void()> stop_done;

  // Any thread.
  mutable std::mutex published_mutex;
  std::shared_ptr<const cluster_snapshot> published;
  std::uint64_t next_watch = 1;
  std::map<std::uint64_t, std::shared_ptr<std::function<void(const cluster_snapshot&)>>> watchers;

  template <class F>
  void post(F&& f) {
    ex.post(lane, [weak = weak_from_this(), fn = std::forward<F>(f)]() mutable {
      if (auto self_ptr = weak.lock()) fn(*self_ptr);
    });
  }

  // Starting

  void begin(unique_function<void(expected<void>)> done) {
    if (stage != phase::idle) {
      done(error{errc::invalid_argument, "the membership was started already"});
      return;
    }
    if (auto v = config.validate(); !v) {
      done(v.error());
      return;
    }
    stage = phase::running;
    start_done = std::move(done);
    last_echo = ex.now();
    auto weak = weak_from_this();
    auto sub = heartbeats->subscribe([this, weak](const heartbeat& hb) {
      if (auto alive = weak.lock()) post([hb](core& c) { c.on_heartbeat(hb); });
    });
    if (!sub) {
      fail_start(sub.error());
      return;
    }
    hearing = std::move(*sub);
    control_log_follower f;
    f.on_record = [this, weak](control_record r) {
      if (auto alive = weak.lock()) post([r = std::move(r)](core& c) { c.on_record(r); });
    };
    f.on_caught_up = [this, weak] {
      if (auto alive = weak.lock()) post([](core& c) { c.on_caught_up(); });
    };
    f.on_error = [this, weak](error e) {
      if (auto alive = weak.lock()) post([e = std::move(e)](core& c) { c.on_log_error(e); });
    };
    auto follow = control->follow(std::move(f));
    if (!follow) {
      fail_start(follow.error());
      return;
    }
    following = std::move(*follow);
    tick_timer = ex.start_timer(lane, config.heartbeat_interval, config.heartbeat_interval, [weak] {
      if (auto c = weak.lock()) c->tick();
    });
    deadline_timer = ex.start_timer(lane, config.join_timeout, {}, [weak] {
      if (auto c = weak.lock()) {
        c->deadline_timer.reset();
        if (c->start_done) {
          c->fail_start(
              error{errc::unavailable, fmt::format("{} did not join cluster {} within {} ms", c->self.to_string(),
                                                   c->config.name, c->config.join_timeout.count())});
        }
      }
    });
    tick();
  }

  void fail_start(error e) {
    log(log_level::error, "cluster {}: {}", config.name, e.to_string());
    auto done = std::move(start_done);
    start_done = nullptr;
    halt();
    if (done) done(std::move(e));
  }

  /// Stops everything at once (no leave record).
  void halt() {
    if (tick_timer) ex.cancel_timer(lane, *tick_timer);
    if (deadline_timer) ex.cancel_timer(lane, *deadline_timer);
    tick_timer.reset();
    deadline_timer.reset();
    following.reset();
    hearing.reset();
    stage = phase::stopped;
    publish_snapshot();
  }

  // Stopping

  void end(unique_function<void()> done) {
    if (stage == phase::stopped || stage == phase::idle) {
      stage = phase::stopped;
      done();
      return;
    }
    if (stage == phase::stopping) { // a second stop: answered with the first
      auto first = std::move(stop_done);
      stop_done = [first = std::move(first), done = std::move(done)]() mutable {
        if (first) first();
        done();
      };
      return;
    }
    stage = phase::stopping;
    stop_done = std::move(done);
    if (start_done) {
      auto d = std::move(start_done);
      start_done = nullptr;
      d(error{errc::shutting_down, "the node stops"});
    }
    if (!state.alive(self)) {
      finish_stop();
      return;
    }
    log(log_level::info, "cluster {}: {} leaves", config.name, self.to_string());
    write(control_records::leave(self), [](core&) {});
    if (deadline_timer) ex.cancel_timer(lane, *deadline_timer);
    deadline_timer = ex.start_timer(lane, config.leave_timeout, {}, [weak = weak_from_this()] {
      if (auto c = weak.lock()) {
        c->deadline_timer.reset();
        log(log_level::warn, "cluster {}: the leave of {} was not seen within {} ms", c->config.name,
            c->self.to_string(), c->config.leave_timeout.count());
        c->finish_stop();
      }
    });
    publish_snapshot();
  }

  void finish_stop() {
    if (stage == phase::stopped) return;
    halt();
    if (auto done = std::move(stop_done)) {
      stop_done = nullptr;
      done();
    }
  }

  // Events

  void on_caught_up() {
    if (stage != phase::running) return;
    caught_up = true;
    log(log_level::debug, "cluster {}: read the control log up to {}", config.name, state.last_sequence());
    act();
    publish_snapshot();
  }

  void on_log_error(const error& e) {
    log(log_level::error, "cluster {}: following the control log failed: {}", config.name, e.to_string());
    if (start_done) {
      fail_start(e);
      return;
    }
    // Without the log this node cannot know the cluster: it stops serving for good.
    log_lost = true;
    fenced = true;
    publish_snapshot();
  }

  void on_heartbeat(const heartbeat& hb) {
    if (stage != phase::running && stage != phase::stopping) return;
    const auto now = ex.now();
    if (hb.from == self) {
      last_echo = now;
      if (fenced && !log_lost) {
        fenced = false;
        // Whatever it did not hear while stalled proves nothing.
        detector.restart(now);
        log(log_level::info, "cluster {}: {} hears its heartbeat again and serves", config.name, self.to_string());
        publish_snapshot();
      }
      return;
    }
    detector.heard(hb.from, now);
  }

  void tick() {
    if (stage != phase::running && stage != phase::stopping) return;
    heartbeat hb;
    hb.from = self;
    hb.sequence = ++heartbeat_sequence;
    hb.term = state.term();
    hb.epoch = state.map()->epoch();
    if (auto r = heartbeats->publish(hb); !r) {
      log(log_level::debug, "cluster {}: heartbeat not sent: {}", config.name, r.error().to_string());
    }
    const auto now = ex.now();
    if (!fenced && now - last_echo > config.self_fence_timeout) {
      fenced = true;
      log(log_level::warn, "cluster {}: {} has not heard its own heartbeat for {} ms: it stops serving", config.name,
          self.to_string(), std::chrono::duration_cast<std::chrono::milliseconds>(now - last_echo).count());
    }
    act();
    publish_snapshot();
  }

  void on_record(const control_record& r) {
    if (stage == phase::stopped || stage == phase::idle) return;
    const auto change = state.apply(r);
    const auto now = ex.now();
    switch (change.what) {
    case state_change::kind::none:
      log(log_level::debug, "cluster {}: record {} ignored: {}", config.name, r.subject, change.detail);
      break;
    case state_change::kind::config:
      log(log_level::info, "cluster {}: created with {} shards", config.name, state.shard_count());
      break;
    case state_change::kind::joined:
      log(log_level::info, "cluster {}: {} joined", config.name, change.member.to_string());
      detector.watch(change.member, now);
      if (!change.replaced.empty()) {
        log(log_level::info, "cluster {}: {} is replaced by its new incarnation", config.name,
            change.replaced.to_string());
        detector.forget(change.replaced);
        if (change.replaced == self && !own.contains(change.member.incarnation)) {
          log(log_level::error, "cluster {}: another process joined as node {}: this one stops serving", config.name,
              self.node);
          halt();
          return;
        }
      }
      break;
    case state_change::kind::left:
    case state_change::kind::died:
      log(log_level::info, "cluster {}: {} {}", config.name, change.member.to_string(),
          change.what == state_change::kind::left ? "left" : "is dead");
      detector.forget(change.member);
      if (change.member == self) {
        if (stage == phase::stopping || change.what == state_change::kind::left) {
          finish_stop();
          return;
        }
        rejoin();
      }
      break;
    case state_change::kind::new_term:
      log(log_level::info, "cluster {}: term {}, leader {}", config.name, state.term(),
          change.member.empty() ? std::string{"none"} : change.member.to_string());
      // A new leader gets the whole failure timeout from now.
      if (!change.member.empty()) detector.heard(change.member, now);
      break;
    case state_change::kind::new_map: {
      const auto& m = *state.map();
      log(log_level::info, "cluster {}: map {} of term {}: {} of {} shards on {}", config.name, m.epoch(), m.term(),
          m.count_of(self), m.shard_count(), self.to_string());
      break;
    }
    }
    if (caught_up) act();
    publish_snapshot();
  }

  /// Declared dead while running: stop serving, and join again as a new incarnation.
  void rejoin() {
    const auto old = self;
    self = member_id{config.node_id, incarnations()};
    own.insert(self.incarnation);
    join_written = false;
    last_echo = ex.now();
    log(log_level::warn, "cluster {}: {} was declared dead; it joins again as {}", config.name, old.to_string(),
        self.to_string());
  }

  // Decisions

  /// Creates the cluster or joins it, as far as the log allows now.
  void join() {
    if (state.shard_count() == 0) {
      if (!config_written) {
        config_written = true;
        write(control_records::config(config.shards), [](core& c) { c.config_written = false; });
      }
      return;
    }
    if (state.shard_count() != config.shards) {
      fail_start(error{errc::invalid_argument, fmt::format("cluster {} has {} shards; this node is configured with {}",
                                                           config.name, state.shard_count(), config.shards)});
      return;
    }
    if (!state.status_of(self) && !join_written) {
      join_written = true;
      write(control_records::join(self), [](core& c) { c.join_written = false; });
    }
  }

  void act() {
    if (stage != phase::running || !caught_up) return;
    // A member that does not hear itself would only be declared dead again.
    if (!fenced) join();
    if (stage != phase::running) return;
    if (start_done && state.alive(self) && state.map()->epoch() > 0) {
      auto done = std::move(start_done);
      start_done = nullptr;
      if (deadline_timer) ex.cancel_timer(lane, *deadline_timer);
      deadline_timer.reset();
      publish_snapshot(); // the node reads it as soon as it started
      done({});
    }
    if (fenced || !state.alive(self)) return;
    const auto now = ex.now();
    if (auto w = election.poll(state, detector, self, now)) {
      log(log_level::debug, "cluster {}: {} claims {}", config.name, self.to_string(), w->subject);
      write(std::move(*w), [](core& c) { c.election.claim_failed(); });
    }
    if (state.leader() != self) return;
    for (const auto& m : detector.suspects(now)) {
      if (m == self || !state.alive(m)) continue;
      const auto key = std::pair{m, state.term()};
      if (deaths_written.contains(key)) continue;
      deaths_written.insert(key);
      log(log_level::info, "cluster {}: {} has been silent for {} ms: declaring it dead", config.name, m.to_string(),
          config.failure_timeout.count());
      write(control_records::death(m, state.term()), [key](core& c) { c.deaths_written.erase(key); });
    }
    if (auto w = publisher.poll(state, self)) write(std::move(*w), [](core& c) { c.publisher.write_failed(); });
  }

  /// Appends a record; `failed` runs on the lane when it was not stored by us.
  template <class F>
  void write(control_write w, F failed) {
    control->append(std::move(w.subject), std::move(w.data),
                    [weak = weak_from_this(), failed = std::move(failed)](expected<std::uint64_t> r) mutable {
                      if (r) return;
                      if (auto c = weak.lock()) {
                        c->post([failed = std::move(failed), e = r.error()](core& k) mutable {
                          if (e.code() != errc::version_conflict) {
                            log(log_level::debug, "cluster {}: a control write failed: {}", k.config.name,
                                e.to_string());
                          }
                          failed(k);
                        });
                      }
                    });
  }

  // The view

  void publish_snapshot() {
    auto s = std::make_shared<cluster_snapshot>();
    s->cluster = config.name;
    s->self = self;
    s->members = state.members();
    s->leader = state.leader();
    s->term = state.term();
    s->map = state.map();
    s->shard_count = state.shard_count();
    s->serving = stage == phase::running && caught_up && !fenced && state.alive(self);
    if (s->serving) s->owned_shards = s->map->shards_of(self);
    std::vector<std::shared_ptr<std::function<void(const cluster_snapshot&)>>> to_call;
    {
      std::lock_guard lock{published_mutex};
      const auto& p = *published;
      if (p.self == s->self && p.members == s->members && p.leader == s->leader && p.term == s->term &&
          p.map == s->map && p.shard_count == s->shard_count && p.serving == s->serving &&
          p.owned_shards == s->owned_shards) {
        return;
      }
      published = s;
      for (const auto& [id, w] : watchers) to_call.push_back(w);
    }
    for (const auto& w : to_call) {
      try {
        (*w)(*s);
      } catch (const std::exception& e) {
        log(log_level::error, "cluster {}: a watcher threw: {}", config.name, e.what());
      }
    }
  }
};

membership::membership(executor& ex, std::size_t lane, std::shared_ptr<control_log> log,
                       std::shared_ptr<heartbeat_transport> heartbeats, cluster_config config,
                       incarnation_source incarnations)
    : core_{std::make_shared<core>(ex, lane, std::move(log), std::move(heartbeats), std::move(config),
                                   std::move(incarnations))} {}

membership::~membership() = default;

void membership::start(unique_function<void(expected<void>)> done) {
  core_->post([done = std::move(done)](core& c) mutable { c.begin(std::move(done)); });
}

void membership::stop(unique_function<void()> done) {
  core_->post([done = std::move(done)](core& c) mutable { c.end(std::move(done)); });
}

std::shared_ptr<const cluster_snapshot> membership::snapshot() const {
  std::lock_guard lock{core_->published_mutex};
  return core_->published;
}

cluster_watch membership::watch(std::function<void(const cluster_snapshot&)> on_change) {
  std::lock_guard lock{core_->published_mutex};
  const auto id = core_->next_watch++;
  core_->watchers.emplace(id, std::make_shared<std::function<void(const cluster_snapshot&)>>(std::move(on_change)));
  return cluster_watch{[weak = std::weak_ptr{core_}, id] {
    if (auto c = weak.lock()) {
      std::lock_guard guard{c->published_mutex};
      c->watchers.erase(id);
    }
  }};
}

} // namespace aether
