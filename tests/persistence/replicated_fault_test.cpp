// The JetStream store on a replicated (R3) stream of a three-server cluster
// under faults: the stream leader killed (kill -9) and paused (SIGSTOP past
// the election timeout) while writers append. Every writer records what it
// saw of each write (ok, failed, unknown); afterwards the whole history is
// checked against the store: every acknowledged write present once at its
// version, no version twice, nothing reported as not stored present, and
// the writes go on after each fault.
#include "store_fixtures.hpp"
#include "support/eventually.hpp"
#include "support/race_tally.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using aether::testing::write_history;

namespace {

constexpr int writers = 3;

/// A writer appending to its own actor, one write at a time, through
/// server `index` of the cluster; it records every outcome in `history`.
class writer {
public:
  writer(const std::string& url, int index, write_history& history)
      : index_{index}, history_{history}, actor_{"w" + std::to_string(index), "acc", "fault"} {
    aether::jetstream_store_options o;
    o.replicas = 3;
    o.ack_timeout = 250ms; // short: lost acknowledgements and unknown outcomes happen
    o.max_attempts = 8;
    store_ = test::open_store(test::connect(url), o);
    REQUIRE(store_->prepare("fault"));
  }

  void start() {
    thread_ = std::thread{[this] { run(); }};
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] int acked() const { return acked_.load(); }
  [[nodiscard]] const actor_id& actor() const { return actor_; }
  [[nodiscard]] std::string last_error() const {
    std::lock_guard lock{mutex_};
    return last_error_;
  }
  /// Conflicts whose value was behind the version the writer tried.
  [[nodiscard]] std::vector<std::string> wrong_conflicts() const { return wrong_; }

private:
  void run() {
    std::uint64_t version = 0;
    for (int n = 0; !stop_.load(); ++n) {
      auto e = test::make_event("tick", std::to_string(n));
      e.id = fmt::format("w{}-{}", index_, n);
      history_.invoke(e.id, actor_.to_string(), version + 1);
      auto r = store_->append_wait(actor_, version, {e});
      if (r) {
        history_.complete(e.id, write_history::result::ok, r->last_version);
        version = r->last_version;
        acked_.fetch_add(1);
      } else if (std::lock_guard lock{mutex_}; (last_error_ = r.error().to_string()), false) {
      } else if (r.error().code() == errc::version_conflict) {
        // Only this writer writes this actor: an earlier write of its own
        // whose outcome was unknown took the version. The conflict tells
        // the current version, never one behind the taken one.
        history_.complete(e.id, write_history::result::failed, 0, r.error().to_string());
        if (r.error().value() < version + 1) {
          wrong_.push_back(fmt::format("{} after {}: {}", e.id, version, r.error().to_string()));
        }
        version = std::max(version, r.error().value());
      } else if (r.error().detail().find("is not stored") != std::string::npos &&
                 r.error().detail().find("unknown") == std::string::npos) {
        history_.complete(e.id, write_history::result::failed, 0, r.error().to_string());
      } else {
        history_.complete(e.id, write_history::result::unknown, 0, r.error().to_string());
        // Learn where the actor is before going on (the server may be away a while).
        for (;;) {
          if (auto latest = store_->latest_version_wait(actor_)) {
            version = *latest;
            break;
          }
          if (stop_.load()) return;
          std::this_thread::sleep_for(50ms); // a back-off while the cluster recovers
        }
      }
    }
  }

  int index_;
  write_history& history_;
  actor_id actor_;
  std::shared_ptr<aether::jetstream_event_store> store_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acked_{0};
  std::vector<std::string> wrong_;
  mutable std::mutex mutex_;
  std::string last_error_;
};

struct cluster_under_load {
  aether::testing::nats_cluster cluster{3};
  std::array<write_history, writers> histories; // one per writer and its actor
  std::vector<std::unique_ptr<writer>> writing;

  cluster_under_load() {
    for (int i = 0; i < writers; ++i) {
      writing.push_back(std::make_unique<writer>(cluster.server(static_cast<std::size_t>(i)).url(), i,
                                                 histories[static_cast<std::size_t>(i)]));
    }
    for (auto& w : writing) w->start();
  }
  ~cluster_under_load() {
    for (auto& w : writing) w->stop();
  }

  int acked() const {
    int n = 0;
    for (const auto& w : writing) n += w->acked();
    return n;
  }
  /// The writers not connected to server `index` acknowledge `n` more writes.
  void await_progress(std::optional<std::size_t> except, int n) {
    std::vector<int> before;
    for (const auto& w : writing) before.push_back(w->acked());
    const bool progressed = aether::testing::poll_until(
        [&] {
          int progress = 0;
          for (std::size_t i = 0; i < writing.size(); ++i) {
            if (i != except) progress += writing[i]->acked() - before[i];
          }
          return progress >= n;
        },
        60s);
    REQUIRE_MESSAGE(progressed, "writes did not go on: " << summary());
  }
  std::string summary() const {
    std::string out;
    for (std::size_t i = 0; i < writing.size(); ++i) {
      out +=
          fmt::format("writer {}: {} acknowledged, {} ok, {} failed, {} unknown, last: {}; ", i, writing[i]->acked(),
                      histories[i].count(write_history::result::ok), histories[i].count(write_history::result::failed),
                      histories[i].count(write_history::result::unknown), writing[i]->last_error());
    }
    return out;
  }
  std::size_t stream_leader() {
    std::optional<std::size_t> leader;
    const bool known =
        aether::testing::poll_until([&] { return (leader = cluster.stream_leader("fault_events")).has_value(); }, 30s);
    REQUIRE_MESSAGE(known, "no leader of fault_events; /jsz of server 0: "
                               << cluster.server(0).monitor("/jsz?accounts=true&streams=true").value_or("(none)"));
    return *leader;
  }

  /// Stops the writers and checks the whole history against the store.
  void check() {
    for (auto& w : writing) w->stop();
    aether::jetstream_store_options o;
    o.replicas = 3;
    auto reader = test::open_store(test::connect(cluster.urls()), o);
    std::vector<write_history::stored_event> stored;
    for (const auto& w : writing) {
      // Right after a fault the cluster may still be settling: a read that
      // finds it unavailable is tried again, anything else is an answer.
      auto events = reader->read_wait(w->actor());
      const bool answered = aether::testing::poll_until(
          [&] {
            return events || events.error().code() != errc::unavailable || (events = reader->read_wait(w->actor()));
          },
          60s);
      REQUIRE_MESSAGE(answered, "reading the history: " << events.error().to_string());
      REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
      for (std::size_t i = 0; i < events->size(); ++i) {
        CHECK((*events)[i].version == i + 1);
        stored.push_back({(*events)[i].id, (*events)[i].version});
      }
      const auto wrong = w->wrong_conflicts();
      CHECK_MESSAGE(wrong.empty(), fmt::format("{}", fmt::join(wrong, "; ")));
    }
    // Each writer has its own actor, whose versions are its own: one history each.
    std::vector<std::string> problems;
    for (std::size_t i = 0; i < writing.size(); ++i) {
      const auto prefix = fmt::format("w{}-", i);
      std::vector<write_history::stored_event> mine;
      for (const auto& e : stored) {
        if (e.id.starts_with(prefix)) mine.push_back(e);
      }
      for (auto& p : histories[i].check(mine)) problems.push_back(std::move(p));
    }
    CHECK_MESSAGE(problems.empty(), fmt::format("{}", fmt::join(problems, "; ")));
    // The server's own count: every stored write is one message, so a
    // version stored twice shows here even where a read by subject hides it.
    auto raw = test::connect(cluster.urls());
    std::optional<std::uint64_t> messages;
    AETHER_EVENTUALLY((messages = raw->stream_message_count("fault_events").value_or(0)) == stored.size(), 30s);
    std::size_t counts[3] = {};
    for (const auto& h : histories) {
      counts[0] += h.count(write_history::result::ok);
      counts[1] += h.count(write_history::result::failed);
      counts[2] += h.count(write_history::result::unknown);
    }
    MESSAGE(fmt::format("writes: {} ok, {} failed, {} unknown", counts[0], counts[1], counts[2]));
  }
};

} // namespace

TEST_CASE("the stream leader of an R3 stream killed under write load: every acknowledged write stored once, writes "
          "go on") {
  cluster_under_load load;
  load.await_progress(std::nullopt, 100);
  const auto leader = load.stream_leader();
  load.cluster.server(leader).kill();
  // The others elect a new leader and take writes again.
  load.await_progress(leader, 100);
  load.cluster.server(leader).restart();
  load.cluster.wait_until_ready();
  load.await_progress(std::nullopt, 100); // its writer is back too
  load.check();
}

// On nats-server 2.9.10 the paused leader's replica comes back holding other
// messages than the new leader's at some stream sequences (an earlier write
// of a version in place of the acknowledged one, or none). The stream leader
// holds every acknowledged write; reads served by that replica (a consumer, a
// direct get) did not, in about 2 of 5 runs. The store therefore reads
// histories through the stream leader on such servers, and this case checks it.
TEST_CASE("the stream leader of an R3 stream paused past the election timeout under write load: every acknowledged "
          "write stored once, writes go on") {
  cluster_under_load load;
  load.await_progress(std::nullopt, 100);
  const auto leader = load.stream_leader();
  load.cluster.server(leader).pause();
  // The others elect a new leader (the election timeout is a few seconds) and take writes again.
  load.await_progress(leader, 100);
  load.cluster.server(leader).resume();
  load.await_progress(std::nullopt, 100);
  load.check();
}
