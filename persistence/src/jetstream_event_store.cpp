#include <aether/persistence/jetstream_event_store.hpp>

#include "namespace_stream.hpp"
#include "stored_event.hpp"

#include <aether/runtime/json.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>

namespace aether {

namespace {

using clock = std::chrono::steady_clock;

// A JetStream publish acknowledgement.
struct pub_ack_error {
  std::int64_t code = 0;
  std::int64_t err_code = 0;
  std::string description;
};
AETHER_JSON_FIELDS(pub_ack_error, code, err_code, description)

struct pub_ack {
  std::optional<std::string> stream;
  std::optional<std::uint64_t> seq;
  std::optional<bool> duplicate;
  std::optional<pub_ack_error> error;
};
AETHER_JSON_FIELDS(pub_ack, stream, seq, duplicate, error)

constexpr std::int64_t wrong_last_sequence = 10071;
constexpr std::string_view last_version_header = "Aether-Last-Version";
constexpr std::string_view write_id_header = "Aether-Write-Id";
// Writes a read walks by exact subject before it opens a consumer.
constexpr int walk_limit = 16;
// At most this many writes in flight go out on the send-asap connection.
constexpr std::size_t quick_limit = 4;
// Threads that read back writes whose outcome is unknown.
constexpr int settling_threads = 2;
// How long a read's get of a write by its exact subject waits for its
// answer: as long as the connection's JetStream requests wait. (A get of an
// actor's next write in the per-actor layout waits `ack_timeout`.)
constexpr std::chrono::milliseconds direct_get_timeout{5'000};
// Actors whose last write end the store remembers; past this it forgets
// them all, and each one's next append checks its version once more.
constexpr std::size_t known_ends_limit = 65'536;

std::optional<std::uint64_t> to_number(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return v;
}

/// The number in a subject's last token: the first version of a write, or
/// the token of an acknowledgement.
std::optional<std::uint64_t> last_number(std::string_view subject) {
  const auto dot = subject.rfind('.');
  return dot == std::string_view::npos ? std::nullopt : to_number(subject.substr(dot + 1));
}

/// Whether a server of this version ("2.9.10") may keep replicas of a
/// stream that disagree after a leader pause (measured on 2.9.10). Servers
/// before 2.11 could let a new stream leader answer before it applied its
/// log; no later server was measured here, so the bound is that release.
bool replicas_may_diverge(std::string_view version) {
  const auto dot = version.find('.');
  const auto major = to_number(version.substr(0, dot));
  if (!major || dot == std::string_view::npos) return true; // unknown: assume the worst
  auto rest = version.substr(dot + 1);
  const auto minor = to_number(rest.substr(0, rest.find_first_not_of("0123456789")));
  if (!minor) return true;
  return *major < 2 || (*major == 2 && *minor < 11);
}

/// Whether replicated streams on this connection's server may have replicas
/// that disagree; logs once per process what that means and what Aether
/// does about it.
bool check_replicas(nats::connection& conn, int replicas) {
  static std::atomic<bool> warned{false};
  const auto version = conn.server_version();
  if (version && !replicas_may_diverge(*version)) return false;
  if (warned.exchange(true)) return true;
  log(log_level::warn,
      "event streams with {} replicas on nats-server {}: on servers before 2.11, once a stream leader has been "
      "paused past the election timeout under write load, its replica can hold other messages than the new "
      "leader's at the same stream sequences (measured on 2.9.10), so a read it serves can miss an acknowledged "
      "write or a version. Aether therefore reads event histories write by write through the stream leader (slower "
      "for long histories); durable bus subscribers still read through a consumer, and a later leader change to "
      "that replica would show its view. Right after a leader change a new leader may also answer before it has "
      "applied its log, so the version an append is checked against can be stale. Use replicas=1, or nats-server "
      "2.11 or later",
      replicas, version ? *version : std::string{"(version unknown)"});
  return true;
}

} // namespace

struct jetstream_event_store::impl {
  struct write {
    actor_id actor;
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::string stream;
    std::string subject;
    std::string msg_id;
    std::string payload;
    clock::time_point deadline;
    int attempts = 0;   // deadlines it has had (the first send counts one)
    int sends = 0;      // copies sent
    bool quick = false; // sent on the send-asap connection
    // Whether its last copy certainly did not reach the stream (the send
    // failed, or the server answered "no responders"), and the connection's
    // reconnects when it went out: on R1 only then is it sent again.
    bool resend = false;
    std::uint64_t reconnects = 0;
    // Per-actor layout: the stream sequence of the actor's write this one
    // follows (0: none), and whether it waits for that write's acknowledgement.
    std::uint64_t expected_sequence = 0;
    bool chained = false;
    std::shared_ptr<const append_watcher> watcher;
    std::vector<event> events; // kept only for the watcher
    append_callback done;
  };

  /// An actor's writes in flight, and the connection they all go out on:
  /// one connection keeps them in order on the way to the server.
  struct actor_lane {
    std::uint32_t in_flight = 0;
    bool quick = false;
    // Per-actor layout: writes waiting, in order, for the one before them
    // to be acknowledged, whose stream sequence they expect.
    std::deque<std::uint64_t> chained;
  };

  /// What the store knows of the end of an actor's history.
  struct actor_end {
    std::uint64_t version = 0;
    std::uint64_t sequence = 0; // of the write that ends it; 0: unknown (or none, at version 0)
  };

  /// A write stored past the place the history has got to, so far.
  struct pending_write {
    std::uint64_t last = 0;
    std::uint64_t sequence = 0;
    std::vector<event> events; // those at or after the wanted version
  };

  struct reading {
    actor_id actor;
    std::uint64_t from = 1;
    std::uint64_t start = 1; // the first write read starts here (with a hint, at `from`)
    std::uint64_t next = 1;  // the version the next write of the history starts at
    std::vector<event> events;
    std::map<std::uint64_t, pending_write> pending; // by first version
    std::vector<unread_write> undecodable;
    std::vector<unread_write> skipped;
    bool tolerant = false; // report undecodable writes instead of failing
    std::optional<error> failure;
    std::uint64_t hint = 0;             // where the consumer starts (0: the stream's start)
    std::uint64_t walked_next = 0;      // writes starting below this may have been read by the walk
    std::vector<std::uint64_t> walked;  // the stream sequences the walk read
    bool by_actor = false;              // the stream is in the per-actor layout
    std::uint64_t end_sequence = 0;     // the stream sequence of the write that ends the history so far
    std::uint64_t subject_sequence = 0; // per-actor: the stream sequence of the last write read
    nats::subscription sub;
    // Moved on by the replay callback (a nats.c thread), read by the sweep.
    std::atomic<clock::rep> deadline{0};
    std::atomic<bool> finished{false};
    std::weak_ptr<impl> owner; // learns where the history ends, counts what it skipped
    std::uint64_t id = 0;      // among the reads in flight
    unique_function<void(expected<history_report>)> done;

    void extend(std::chrono::milliseconds timeout) noexcept {
      deadline.store((clock::now() + timeout).time_since_epoch().count(), std::memory_order_relaxed);
    }
  };

  /// A `latest_version` in flight: the get of the actor's last write (and,
  /// per actor, of the write it expected), each waiting on no thread.
  struct version_query {
    actor_id actor;
    std::atomic<bool> answered{false};
    std::weak_ptr<impl> owner;
    std::uint64_t id = 0; // among the reads in flight
    version_callback done;
  };

  /// A history read or a version query: each takes a place among the
  /// `reads_in_flight`.
  using admitted = std::variant<std::shared_ptr<reading>, std::shared_ptr<version_query>>;

  std::shared_ptr<nats::connection> conn;
  std::shared_ptr<nats::connection> quick; // send-asap, for writes when few are in flight
  jetstream_store_options options;
  // Replicated streams on a server whose replicas may disagree after a
  // leader pause: every read goes through the stream leader, write by write.
  bool leader_reads_only = false;
  std::string inbox;
  nats::subscription acks;

  std::mutex mutex; // guards everything below
  std::unordered_map<std::uint64_t, write> writes;
  std::unordered_map<actor_id, actor_lane> lanes;
  // Per actor, a version that ends one of its writes and was its last
  // version when this store last saw it (read, acknowledged, or the end of
  // its own write still in flight): an append after it needs no check.
  std::unordered_map<actor_id, actor_end> known_ends;
  std::atomic<std::uint64_t> version_checks{0};
  std::atomic<std::uint64_t> skipped_writes{0};
  std::uint64_t next_token = 1;
  detail::namespace_streams streams; // guarded by itself
  // Writes waiting for their namespace's stream, in the order they came.
  std::unordered_map<std::string, std::vector<write>> waiting;
  std::unordered_map<std::uint64_t, std::shared_ptr<reading>> reads;
  std::uint64_t next_read = 1;
  // History reads and version queries started and not answered (at most
  // `reads_in_flight`), each waiting on a request without a thread, and
  // those waiting their turn.
  std::unordered_map<std::uint64_t, admitted> reads_started;
  std::deque<admitted> reads_waiting;
  /// Work for one of the store's threads, and how it answers its caller
  /// instead when the store closes before it runs.
  struct job {
    unique_function<void()> run;
    unique_function<void()> cancel;
  };
  /// A queue of jobs and the threads that take them, in order.
  struct job_queue {
    std::deque<job> jobs;
    std::condition_variable wake;
    std::vector<std::thread> threads;
  };
  // The store's thread: stream set-up, version checks, deadlines (in `run`).
  job_queue work;
  // The steps of reads and version queries that wait on a request holding
  // a thread (looking up a namespace's stream, creating an ordered
  // consumer, finding the end of a history whose last write is a stray),
  // `options.readers` at a time: a flood of them never holds the appends.
  job_queue reading_lane;
  // Read-backs of writes whose outcome the acknowledgements did not tell.
  job_queue settling;
  bool stopping = false;
  std::atomic<bool> closing{false}; // `stopping`, read without the lock between requests
  // The connections' reconnects as the last deadline sweep saw them.
  std::atomic<std::uint64_t> main_reconnects{0};
  std::atomic<std::uint64_t> quick_reconnects{0};

  ~impl() { stop(); }

  void stop() {
    {
      std::lock_guard lock{mutex};
      if (stopping) return;
      stopping = true;
      closing.store(true);
    }
    for (auto* l : {&work, &reading_lane, &settling}) l->wake.notify_all();
    // Each thread finishes the request it waits on (reads stop after it) and
    // leaves. The last reference may be dropped by a callback on one of them:
    // it cannot wait for itself, and it holds the state until it returns.
    for (auto* l : {&work, &reading_lane, &settling}) {
      for (auto& t : l->threads) {
        if (t.get_id() == std::this_thread::get_id()) {
          t.detach();
        } else if (t.joinable()) {
          t.join();
        }
      }
    }
    acks.unsubscribe();
    // What is still queued is answered without running: reads and version
    // checks `shutting_down` (nothing was sent), read-backs `unavailable`.
    for (;;) {
      std::deque<job> left;
      {
        std::lock_guard lock{mutex};
        for (auto* l : {&work, &reading_lane, &settling}) {
          for (auto& j : l->jobs) left.push_back(std::move(j));
          l->jobs.clear();
        }
      }
      if (left.empty()) break;
      for (auto& j : left) j.cancel();
    }
    std::unordered_map<std::string, std::vector<write>> unsent;
    {
      std::lock_guard lock{mutex};
      unsent.swap(waiting);
    }
    for (auto& [ns, list] : unsent) {
      for (auto& w : list) w.done(error{errc::shutting_down, "the store closed before the write was sent"});
    }
    std::unordered_map<std::uint64_t, write> left;
    std::unordered_map<std::uint64_t, std::shared_ptr<reading>> unread;
    {
      std::lock_guard lock{mutex};
      left.swap(writes);
      unread.swap(reads);
    }
    for (auto& [token, w] : left) {
      w.done(error{errc::unavailable, fmt::format("the store closed before {} version {} was acknowledged",
                                                  w.actor.to_string(), w.first)});
    }
    for (auto& [token, r] : unread) {
      r->sub.unsubscribe();
      finish(*r, error{errc::shutting_down, "the store closed during a replay"});
    }
    // Reads and version queries waiting on a get: its answer, when it
    // comes, finds them answered and is dropped.
    std::unordered_map<std::uint64_t, admitted> started;
    std::deque<admitted> not_started;
    {
      std::lock_guard lock{mutex};
      started.swap(reads_started);
      not_started.swap(reads_waiting);
    }
    for (auto& [id, a] : started) answer_closed(a, closed_error());
    for (auto& a : not_started)
      answer_closed(a, error{errc::shutting_down, "the store closed before the read started"});
  }

  static void answer_closed(const admitted& a, const error& e) {
    if (const auto* r = std::get_if<std::shared_ptr<reading>>(&a)) {
      finish(**r, e);
    } else {
      finish(*std::get<std::shared_ptr<version_query>>(a), e);
    }
  }

  /// Starts `a` once fewer than `reads_in_flight` reads are in flight; until
  /// then it waits behind those queued before it.
  void admit(admitted a) {
    bool queued = false;
    {
      std::lock_guard lock{mutex};
      if (!stopping) {
        reads_waiting.push_back(a);
        queued = true;
      }
    }
    if (!queued) {
      answer_closed(a, error{errc::shutting_down, "the store is closed"});
      return;
    }
    pump();
  }

  /// A read answered: its place goes to the next one waiting.
  void read_ended(std::uint64_t id) {
    {
      std::lock_guard lock{mutex};
      reads_started.erase(id);
    }
    pump();
  }

  /// Starts waiting reads while there is room. A read that ends at once
  /// (no stream) starts the next one from this loop, not from a deeper call.
  void pump() {
    static thread_local const impl* pumping = nullptr;
    if (pumping == this) return;
    const auto* outer = pumping;
    pumping = this;
    for (;;) {
      admitted a;
      {
        std::lock_guard lock{mutex};
        if (stopping || reads_waiting.empty() ||
            reads_started.size() >= static_cast<std::size_t>(options.reads_in_flight)) {
          break;
        }
        a = std::move(reads_waiting.front());
        reads_waiting.pop_front();
        const auto id = next_read++;
        std::visit([id](const auto& call) { call->id = id; }, a);
        reads_started.emplace(id, a);
      }
      if (const auto* r = std::get_if<std::shared_ptr<reading>>(&a)) {
        begin(*r);
      } else {
        begin(std::get<std::shared_ptr<version_query>>(a));
      }
    }
    pumping = outer;
  }

  /// A read's first step: the namespace's stream, known already or looked
  /// up on a reader thread, then the walk.
  void begin(const std::shared_ptr<reading>& r) {
    if (streams.known(r->actor.ns())) {
      walk(r, r->start);
      return;
    }
    enqueue(
        reading_lane, [this, r] { walk(r, r->start); },
        [r] {
          finish(*r, error{errc::shutting_down, "the store closed before the read started"});
        });
  }

  /// A version query's first step: the namespace's stream, known already
  /// or looked up on a reader thread, then the get of the actor's last write.
  void begin(const std::shared_ptr<version_query>& q) {
    if (streams.known(q->actor.ns())) {
      get_last(q);
      return;
    }
    enqueue(
        reading_lane, [this, q] { get_last(q); },
        [q] {
          finish(*q, error{errc::shutting_down, "the store closed before the read started"});
        });
  }

  /// Answers a version query once (a late answer after close is dropped).
  static void finish(version_query& q, expected<std::uint64_t> version) {
    if (q.answered.exchange(true)) return;
    q.done(std::move(version));
  }

  /// The get of the actor's last write (through the stream leader when
  /// replicated: a direct get may be answered by a replica that lags behind
  /// a write the leader acknowledged), waiting on no thread; its answer
  /// takes the next step. None: version 0.
  void get_last(const std::shared_ptr<version_query>& q) {
    if (closing.load()) {
      finish(*q, closed_error());
      return;
    }
    auto layout = lookup_stream(q->actor.ns());
    if (!layout) {
      finish(*q, layout.error());
      return;
    }
    if (!*layout) {
      finish(*q, std::uint64_t{0}); // no stream: nothing was ever written in this namespace
      return;
    }
    const bool by_actor = **layout == detail::stream_layout::per_actor;
    const auto stream = stream_name(q->actor.ns());
    const auto filter = by_actor ? actor_subject(q->actor) : actor_filter(q->actor);
    std::weak_ptr<impl> weak = q->owner;
    auto next = [weak, q, by_actor](expected<nats::message> m) {
      auto self = weak.lock();
      if (!self || q->answered.load()) {
        finish(*q, closed_error());
        return;
      }
      if (!m) {
        finish(*q,
               m.error().code() == errc::not_found ? expected<std::uint64_t>{0} : expected<std::uint64_t>{m.error()});
        return;
      }
      self->check_last(q, by_actor, std::move(*m));
    };
    if (options.replicas > 1) {
      conn->leader_get_last_async(stream, filter, direct_get_timeout, std::move(next));
    } else {
      conn->request_async(fmt::format("$JS.API.DIRECT.GET.{}", stream),
                          fmt::format(R"({{"last_by_subj":"{}"}})", filter), direct_get_timeout,
                          [next = std::move(next), filter](expected<nats::message> m) mutable {
                            next(direct_answer(std::move(m), filter));
                          });
    }
  }

  /// Answers a version query from the actor's last write `m` when it ends
  /// the history (see `check_last_write`; per actor this may take one more
  /// get, of the write it expected, waiting on no thread); else the end is
  /// read write by write on a reader thread.
  void check_last(const std::shared_ptr<version_query>& q, bool by_actor, nats::message m) {
    const auto c = check_last_write(q->actor, by_actor, m);
    if (!c.clean) {
      end_by_reading(q, by_actor);
      return;
    }
    if (c.before == 0) {
      answer_end(*q, by_actor, m);
      return;
    }
    std::weak_ptr<impl> weak = q->owner;
    auto last = std::make_shared<const nats::message>(std::move(m));
    const auto what = fmt::format("message {} of {}", c.before, stream_name(q->actor.ns()));
    conn->request_async(fmt::format("$JS.API.DIRECT.GET.{}", stream_name(q->actor.ns())),
                        fmt::format(R"({{"seq":{}}})", c.before), direct_get_timeout,
                        [weak, q, by_actor, last, first = c.first, what](expected<nats::message> answer) {
                          auto self = weak.lock();
                          if (!self || q->answered.load()) {
                            finish(*q, closed_error());
                            return;
                          }
                          auto before = direct_answer(std::move(answer), what);
                          if (!before && before.error().code() != errc::not_found) {
                            finish(*q, before.error());
                          } else if (before && ends_before(q->actor, *before, *last, first)) {
                            answer_end(*q, by_actor, *last);
                          } else {
                            self->end_by_reading(q, by_actor); // the write it expected is gone or another
                          }
                        });
  }

  static void answer_end(version_query& q, bool by_actor, const nats::message& m) {
    auto end = end_of(q.actor, by_actor, m);
    finish(q, end ? expected<std::uint64_t>{end->version} : expected<std::uint64_t>{end.error()});
  }

  /// The end of a history whose last write is a stray, read write by write
  /// on a reader thread (`read_end`); rare: only writes stored outside the
  /// rules lead here.
  void end_by_reading(const std::shared_ptr<version_query>& q, bool by_actor) {
    enqueue(
        reading_lane,
        [this, q, by_actor] {
          error failure{errc::unavailable};
          const auto end = read_end(q->actor, by_actor, &failure);
          finish(*q, end ? expected<std::uint64_t>{end->version} : expected<std::uint64_t>{failure});
        },
        [q] { finish(*q, closed_error()); });
  }

  /// Queues `run` for `l`'s threads; once the store is closing, `cancel`
  /// runs instead (at once, or at close for what is queued by then).
  void enqueue(job_queue& l, unique_function<void()> run, unique_function<void()> cancel) {
    {
      std::lock_guard lock{mutex};
      if (!stopping) {
        l.jobs.push_back(job{std::move(run), std::move(cancel)});
        cancel = nullptr;
      }
    }
    if (cancel) {
      cancel();
    } else {
      l.wake.notify_one();
    }
  }

  /// Runs `fn` on the store's thread (stream creation, version checks).
  void post(unique_function<void()> fn, unique_function<void()> cancel) {
    enqueue(work, std::move(fn), std::move(cancel));
  }

  /// Takes `l`'s jobs one at a time until the store closes (a reader or
  /// settling thread).
  void serve(job_queue& l) {
    for (;;) {
      job j;
      {
        std::unique_lock lock{mutex};
        l.wake.wait(lock, [&] { return stopping || !l.jobs.empty(); });
        if (stopping) return;
        j = std::move(l.jobs.front());
        l.jobs.pop_front();
      }
      j.run();
    }
  }

  void run() {
    auto next_check = clock::now();
    for (;;) {
      job task;
      {
        std::unique_lock lock{mutex};
        work.wake.wait_until(lock, next_check, [this] { return stopping || !work.jobs.empty(); });
        if (stopping) return;
        if (!work.jobs.empty()) {
          task = std::move(work.jobs.front());
          work.jobs.pop_front();
        }
      }
      if (task.run) task.run();
      if (clock::now() >= next_check) {
        check_deadlines();
        next_check = clock::now() + std::chrono::milliseconds{100};
      }
    }
  }

  std::optional<detail::stream_layout> wanted_layout() const {
    switch (options.layout) {
    case event_layout::per_write:
      return detail::stream_layout::per_write;
    case event_layout::per_actor:
      return detail::stream_layout::per_actor;
    case event_layout::automatic:
      break;
    }
    return std::nullopt;
  }

  expected<detail::stream_layout> ensure_stream(std::string_view ns) {
    return streams.ensure(*conn, ns, options.replicas, wanted_layout());
  }

  /// The layout of the namespace's stream without creating it (nullopt: no stream).
  expected<std::optional<detail::stream_layout>> lookup_stream(std::string_view ns) {
    auto l = streams.lookup(*conn, ns);
    if (l && *l) {
      if (auto ok = detail::namespace_streams::check_wanted(ns, **l, wanted_layout()); !ok) return ok.error();
    }
    return l;
  }

  bool per_actor(std::string_view ns) const {
    return streams.known(ns) == std::optional<detail::stream_layout>{detail::stream_layout::per_actor};
  }

  /// Launches an append (or checks its version first) once its namespace's
  /// stream is known; until then it waits behind the ones already waiting,
  /// and the first one sets the stream up. Its layout decides how the
  /// actor's pipelined writes go out (chained per actor), so no write is
  /// launched before it is known. Waiting writes are launched in order
  /// before later ones are.
  void submit(write w) {
    const std::string ns{w.actor.ns()};
    // Known stays known: checked before the lock, the waiting list under it.
    const bool known = streams.known(ns).has_value();
    bool queued = false;
    bool setup = false;
    bool closed = false;
    {
      std::lock_guard lock{mutex};
      if (stopping) {
        closed = true;
      } else if (!known || waiting.contains(ns)) {
        auto& list = waiting[ns];
        setup = list.empty();
        list.push_back(std::move(w));
        queued = true;
      }
    }
    if (closed) {
      w.done(error{errc::shutting_down, "the store is closed"});
      return;
    }
    if (!queued) {
      const auto expected_version = w.first - 1;
      if (!launch(w, false)) check_and_launch(std::move(w), expected_version);
      return;
    }
    if (!setup) return;
    post(
        [this, ns] {
          const auto ready = ensure_stream(ns);
          for (;;) {
            std::vector<write> batch;
            {
              std::lock_guard lock{mutex};
              auto it = waiting.find(ns);
              if (it == waiting.end()) return;
              if (it->second.empty()) {
                waiting.erase(it); // from now on appends of `ns` are launched directly
                return;
              }
              batch.swap(it->second);
            }
            for (auto& queued_write : batch) {
              if (!ready) {
                queued_write.done(ready.error());
                continue;
              }
              const auto expected_version = queued_write.first - 1;
              if (!launch(queued_write, false)) check_and_launch(std::move(queued_write), expected_version);
            }
          }
        },
        [this, ns] {
          std::vector<write> unsent;
          {
            std::lock_guard lock{mutex};
            if (auto it = waiting.find(ns); it != waiting.end()) {
              unsent.swap(it->second);
              waiting.erase(it);
            }
          }
          for (auto& u : unsent) u.done(error{errc::shutting_down, "the store closed before the write was sent"});
        });
  }

  /// The first message on `subject` after stream sequence `after`, by a
  /// direct get (`next_by_subj`); nullopt when there is none.
  expected<std::optional<nats::message>> next_on_subject(std::string_view stream, std::string_view subject,
                                                         std::uint64_t after) {
    return next_on_subject(stream, subject, after, options.ack_timeout);
  }
  expected<std::optional<nats::message>> next_on_subject(std::string_view stream, std::string_view subject,
                                                         std::uint64_t after, std::chrono::milliseconds timeout) {
    auto m = conn->request(fmt::format("$JS.API.DIRECT.GET.{}", stream),
                           fmt::format(R"({{"seq":{},"next_by_subj":"{}"}})", after + 1, subject), timeout);
    if (!m) return m.error();
    if (!m->header("Nats-Sequence")) {
      const auto status = m->header("Status");
      if (!status || *status == "404") return std::optional<nats::message>{};
      return error{errc::unavailable, fmt::format("reading {} after sequence {}: status {}", subject, after, *status)};
    }
    return std::optional<nats::message>{std::move(*m)};
  }

  void send(std::uint64_t token) {
    std::string subject;
    std::string payload;
    std::string msg_id;
    std::string last;
    std::string expect;
    bool quick_send = false;
    {
      std::lock_guard lock{mutex};
      auto it = writes.find(token);
      if (it == writes.end()) return;
      quick_send = it->second.quick;
      auto& w = it->second;
      ++w.attempts;
      ++w.sends;
      w.resend = false;
      // The reconnects seen by the last sweep: one since then makes the
      // count differ at the deadline, and the write is sent again.
      w.reconnects = (w.quick && quick ? quick_reconnects : main_reconnects).load(std::memory_order_relaxed);
      w.deadline = clock::now() + options.ack_timeout;
      if (w.subject.empty()) {
        w.subject = per_actor(w.actor.ns()) ? jetstream_event_store::actor_subject(w.actor)
                                            : jetstream_event_store::subject(w.actor, w.first);
      }
      subject = w.subject;
      payload = w.payload;
      msg_id = w.msg_id;
      last = std::to_string(w.last);
      expect = per_actor(w.actor.ns()) ? std::to_string(w.expected_sequence) : std::string{"0"};
    }
    const nats::header headers[] = {{"Nats-Expected-Last-Subject-Sequence", expect},
                                    {write_id_header, msg_id},
                                    {last_version_header, last},
                                    {detail::origin_header, options.origin}};
    const std::span<const nats::header> sent{headers, options.origin.empty() ? 3u : 4u};
    // A failed send (disconnected) is retried at the deadline like a lost ack.
    // The acknowledgement comes to `inbox` on `conn` whichever sends it.
    auto& via = quick_send && quick ? *quick : *conn;
    auto r = via.publish(subject, payload, sent, fmt::format("{}.{}", inbox, token));
    if (r) return;
    log(log_level::debug, "sending {}: {}", subject, r.error().to_string());
    std::lock_guard lock{mutex};
    if (auto it = writes.find(token); it != writes.end()) it->second.resend = true;
  }

  /// Whether a write past its deadline is sent again. On R1 a copy sent on a
  /// connection that stayed up reaches the stream, however late the server
  /// answers (a publish is lost only with its TCP connection): another copy
  /// would only add load to a server that is behind, so it waits on. It is
  /// sent again when the last copy certainly did not arrive (its send failed,
  /// or nothing took it: "no responders") or the connection reconnected
  /// since. Replicated streams are always sent again: a copy forwarded to a
  /// stream leader can be lost in a leader change.
  struct link_state {
    bool connected = false;
    std::uint64_t reconnects = 0;
  };
  static link_state state_of(const nats::connection* c) {
    return c == nullptr ? link_state{} : link_state{c->connected(), c->counts().reconnects};
  }
  bool needs_resend(const write& w, const link_state& main, const link_state& fast) const {
    if (options.replicas > 1 || w.resend) return true;
    const auto& via = w.quick && quick ? fast : main;
    return !via.connected || via.reconnects != w.reconnects;
  }

  /// Puts a write in flight and sends it, if `checked` or the store knows
  /// the version it follows to end the actor's history (false otherwise,
  /// leaving `w` as it was). Its own end is known from then on, so the
  /// actor's pipelined appends follow without a check.
  bool launch(write& w, bool checked) {
    // Launched once the namespace's stream is known (submit,
    // check_and_launch): its layout decides whether the write is chained.
    const auto layout = streams.known(w.actor.ns());
    if (!layout) return false;
    const bool sequenced = *layout == detail::stream_layout::per_actor;
    std::uint64_t token = 0;
    bool chain = false;
    {
      std::lock_guard lock{mutex};
      if (!stopping) {
        auto known = known_ends.find(w.actor);
        const auto after = w.first - 1;
        const auto lane_it = lanes.find(w.actor);
        const bool behind = lane_it != lanes.end() && lane_it->second.in_flight > 0;
        if (!checked && after != 0) {
          if (known == known_ends.end() || known->second.version != after) return false;
          // Per-actor: the sequence it follows is known, or comes with the
          // acknowledgement of the write in flight before it.
          if (sequenced && known->second.sequence == 0 && !behind) return false;
          if (!checked && !behind) w.expected_sequence = known->second.sequence;
        }
        if (after == 0 && !checked) w.expected_sequence = 0;
        // A first write goes out at once: its expectation (an empty subject)
        // needs nothing from the writes in flight.
        chain = sequenced && behind && (after != 0 || checked);
        if (known != known_ends.end()) {
          known->second = actor_end{w.last, 0};
        } else {
          if (known_ends.size() >= known_ends_limit) known_ends.clear();
          known_ends.emplace(w.actor, actor_end{w.last, 0});
        }
        token = next_token++;
        // Send-asap only while few writes are in flight, and an actor's writes
        // keep the connection of the ones still in flight.
        auto& lane = lanes[w.actor];
        if (lane.in_flight++ == 0) lane.quick = quick && writes.size() < quick_limit;
        w.quick = lane.quick;
        w.chained = chain;
        w.deadline = chain ? clock::time_point::max() : clock::now() + options.ack_timeout;
        if (chain) lane.chained.push_back(token);
        writes.emplace(token, std::move(w));
      }
    }
    if (token == 0) {
      w.done(error{errc::shutting_down, "the store is closed"});
      return true;
    }
    if (!chain) send(token);
    return true;
  }

  /// Checks the actor's last version on the store's thread (one read, through
  /// the stream leader when replicated), then launches the write if it is
  /// `expected_version`: a version inside an earlier write or past the last
  /// one is refused, not stored beside the history. A check queued behind
  /// one that launched the write this one follows (a writer pipelining
  /// appends before the store knew the actor) needs no read: the write is
  /// launched behind that one, as if the store had known it all along.
  void check_and_launch(write queued, std::uint64_t expected_version) {
    auto held = std::make_shared<write>(std::move(queued));
    post(
        [this, held, expected_version] {
          auto& w = *held;
          error failure{errc::unavailable};
          if (auto ready = ensure_stream(w.actor.ns()); !ready) {
            w.done(ready.error());
            return;
          }
          if (launch(w, false)) return;
          version_checks.fetch_add(1, std::memory_order_relaxed);
          const auto current = latest(w.actor, &failure);
          if (!current) {
            w.done(error{failure.code(),
                         fmt::format("checking the version of {}: {}", w.actor.to_string(), failure.detail())});
          } else if (current->version != expected_version) {
            learn_end(w.actor, *current);
            w.done(error{
                errc::version_conflict,
                fmt::format("{} is at version {}, not {}", w.actor.to_string(), current->version, expected_version),
                current->version});
          } else {
            w.expected_sequence = current->sequence;
            launch(w, true);
          }
        },
        [held] {
          // Not sent: it is not stored.
          auto& w = *held;
          w.done(error{errc::shutting_down,
                       fmt::format("the store closed before {} version {} was sent", w.actor.to_string(), w.first)});
        });
  }

  /// After an actor's write is answered: when stored at `sequence` ending
  /// at version `last`, the next chained write goes out expecting it if it
  /// follows that version; the chained writes that do not, or all of them
  /// when the write did not store, are checked again, in order, each against
  /// the actor's last version.
  void release_chain(const actor_id& actor, std::optional<std::uint64_t> sequence, std::uint64_t last = 0) {
    std::optional<std::uint64_t> next;
    std::vector<std::pair<write, std::uint64_t>> recheck;
    {
      std::lock_guard lock{mutex};
      auto lane = lanes.find(actor);
      if (lane == lanes.end() || lane->second.chained.empty()) return;
      if (sequence) {
        while (!next) {
          auto l = lanes.find(actor);
          if (l == lanes.end() || l->second.chained.empty()) break;
          const auto token = l->second.chained.front();
          l->second.chained.pop_front();
          auto it = writes.find(token);
          if (it == writes.end()) continue;
          if (it->second.first != last + 1) {
            auto w = take_write(it);
            const auto expected_version = w.first - 1;
            recheck.emplace_back(std::move(w), expected_version);
            continue;
          }
          it->second.chained = false;
          it->second.expected_sequence = *sequence;
          it->second.deadline = clock::now() + options.ack_timeout;
          next = token;
        }
      } else {
        auto tokens = std::move(lane->second.chained);
        for (auto token : tokens) {
          auto it = writes.find(token);
          if (it == writes.end()) continue;
          auto w = take_write(it);
          const auto expected_version = w.first - 1;
          recheck.emplace_back(std::move(w), expected_version);
        }
      }
    }
    if (next) send(*next);
    for (auto& [w, v] : recheck) {
      w.chained = false;
      check_and_launch(std::move(w), v);
    }
  }

  /// Records that `end` ends a write of `actor` and was its last.
  void learn_end(const actor_id& actor, actor_end end) {
    std::lock_guard lock{mutex};
    if (known_ends.size() >= known_ends_limit && !known_ends.contains(actor)) known_ends.clear();
    known_ends[actor] = end;
  }

  /// Forgets what the store knew of `actor`'s last version (after a write
  /// of it failed or lost): its next append checks.
  void forget_end(const actor_id& actor) {
    std::lock_guard lock{mutex};
    known_ends.erase(actor);
  }

  /// Takes a write out of flight (under the lock).
  write take_write(std::unordered_map<std::uint64_t, write>::iterator it) {
    write w = std::move(it->second);
    writes.erase(it);
    if (auto l = lanes.find(w.actor); l != lanes.end() && --l->second.in_flight == 0) lanes.erase(l);
    return w;
  }

  void on_ack(const nats::message_view& m) {
    const auto token = last_number(m.subject());
    if (!token) return;
    if (m.data().empty()) { // "no responders": no stream yet or a leader election; the deadline resends
      std::lock_guard lock{mutex};
      if (auto it = writes.find(*token); it != writes.end()) it->second.resend = true;
      return;
    }
    write w;
    {
      std::lock_guard lock{mutex};
      auto it = writes.find(*token);
      if (it == writes.end()) return; // answered already
      w = take_write(it);
    }
    auto ack = json::decode<pub_ack>(m.data());
    if (!ack) {
      fail(w, error{errc::io_error, fmt::format("an unreadable acknowledgement: {}", ack.error().detail())});
    } else if (!ack->error && ack->seq && *ack->seq > 0) {
      succeed(w, *ack->seq);
    } else if (ack->error && ack->error->err_code == wrong_last_sequence) { // an error ack carries "seq":0 too
      settle_later(std::move(w), true);
    } else {
      const auto what = ack->error ? ack->error->description : std::string{"no sequence"};
      const auto code = what.find("size") != std::string::npos ? errc::payload_too_large : errc::io_error;
      fail(w, error{code, fmt::format("storing {} version {}: {}", w.actor.to_string(), w.first, what)});
    }
  }

  /// Answers a write that did not store: what the store knew of its
  /// actor's last version may have counted on it.
  void fail(write& w, error e) {
    forget_end(w.actor);
    w.done(std::move(e));
    release_chain(w.actor, std::nullopt);
  }

  /// Answers a write another won: the writes chained after it are checked.
  void conflict(write& w, error e) {
    w.done(std::move(e));
    release_chain(w.actor, std::nullopt);
  }

  /// Tells whoever watches appends, then the appender; the actor's next
  /// chained write goes out.
  void succeed(write& w, std::uint64_t sequence) {
    {
      std::lock_guard lock{mutex};
      if (auto it = known_ends.find(w.actor); it != known_ends.end() && it->second.version == w.last) {
        it->second.sequence = sequence;
      }
    }
    release_chain(w.actor, sequence, w.last);
    if (w.watcher) {
      for (auto& e : w.events) e.sequence = sequence;
      (*w.watcher)(w.events);
    }
    w.done(append_result{w.first, w.last, sequence});
  }

  /// The actor's last version and the stream sequence of the write that
  /// ends it, read from the stream (through the leader when replicated).
  std::optional<actor_end> latest(const actor_id& actor, error* failure) {
    auto layout = lookup_stream(actor.ns());
    if (!layout) {
      if (failure) *failure = layout.error();
      return std::nullopt;
    }
    if (!*layout) return actor_end{};
    const bool by_actor = **layout == detail::stream_layout::per_actor;
    // A direct get may be answered by a replica that lags behind a write the
    // leader acknowledged; replicated streams are read through the leader.
    const auto stream = stream_name(actor.ns());
    const auto filter = by_actor ? actor_subject(actor) : actor_filter(actor);
    auto m = options.replicas > 1 ? conn->leader_get_last(stream, filter) : conn->direct_get_last(stream, filter);
    if (!m) {
      if (m.error().code() == errc::not_found) return actor_end{};
      if (failure) *failure = m.error();
      return std::nullopt;
    }
    // A last write stored outside the rules (a stray) may not end the
    // history a read returns: then the history is read to find its end.
    if (!follows_cleanly(actor, by_actor, *m)) return read_end(actor, by_actor, failure);
    auto end = end_of(actor, by_actor, *m);
    if (!end) {
      if (failure) *failure = end.error();
      return std::nullopt;
    }
    return *end;
  }

  /// The version an actor's last write `m`, which ends its history, ends
  /// at, and its stream sequence.
  static expected<actor_end> end_of(const actor_id& actor, bool by_actor, const nats::message& m) {
    std::optional<std::uint64_t> v;
    if (auto h = m.header(last_version_header)) v = to_number(*h);
    if (!v && by_actor) {
      if (auto batch = detail::decode_batch_own_versions(actor, m.sequence, m.data)) v = batch->back().version;
    }
    if (!v && !by_actor) v = last_number(m.subject);
    if (!v) {
      return error{errc::replay_failed, fmt::format("{}: the last write (stream sequence {}) names no version",
                                                    actor.to_string(), m.sequence)};
    }
    return actor_end{*v, m.sequence};
  }

  /// Whether an actor's last stored write `m` ends the history a read
  /// returns, as far as one more get can tell: the server checked it against
  /// the write before it (it carries `Nats-Expected-Last-Subject-Sequence`,
  /// as every write of Aether's and of a writer following the documented
  /// rules does), and, per actor, its first version follows the last
  /// version of the write it expected (0: it is version 1). A write stored
  /// without the check (a writer with plain NATS), or one that skips ahead
  /// or repeats a version, does not.
  bool follows_cleanly(const actor_id& actor, bool by_actor, const nats::message& m) {
    const auto c = check_last_write(actor, by_actor, m);
    if (!c.clean || c.before == 0) return c.clean;
    auto before = conn->direct_get(stream_name(actor.ns()), c.before);
    return before && ends_before(actor, *before, m, c.first);
  }

  /// What `m` alone shows for `follows_cleanly`: it does not (`clean`
  /// false), it does (`before` 0), or it does if the write at stream
  /// sequence `before` ends where `m` starts, at version `first` (`ends_before`).
  struct last_write_check {
    bool clean = false;
    std::uint64_t before = 0;
    std::uint64_t first = 0;
  };
  static last_write_check check_last_write(const actor_id& actor, bool by_actor, const nats::message& m) {
    const auto expected_header = m.header("Nats-Expected-Last-Subject-Sequence");
    const auto expected = expected_header ? to_number(*expected_header) : std::nullopt;
    if (!expected) return {};
    if (!by_actor) return {true}; // the server found its subject empty: its version was free
    auto batch = detail::decode_batch_own_versions(actor, m.sequence, m.data);
    if (!batch) return {};
    const auto first = batch->front().version;
    if (*expected == 0) return {first == 1};
    return {true, *expected, first};
  }

  /// Whether `before`, the write the actor's last write `m` expected, is on
  /// the same subject and ends at version `first` - 1.
  static bool ends_before(const actor_id& actor, const nats::message& before, const nats::message& m,
                          std::uint64_t first) {
    if (before.subject != m.subject) return false;
    std::optional<std::uint64_t> last;
    if (auto h = before.header(last_version_header)) last = to_number(*h);
    if (!last) {
      if (auto b = detail::decode_batch_own_versions(actor, before.sequence, before.data)) last = b->back().version;
    }
    return last && first == *last + 1;
  }

  /// The end of the actor's history as a read decides it (the first stored
  /// write of a version wins; writes that do not decode are taken to follow
  /// the history, as a reporting read takes them), read write by write on
  /// the store's thread; with the stream sequence the actor's next write
  /// expects (per actor: the subject's last write, whatever its version).
  /// What it leaves out is reported as a read reports it.
  std::optional<actor_end> read_end(const actor_id& actor, bool by_actor, error* failure) {
    reading r;
    r.actor = actor;
    r.tolerant = true;
    r.by_actor = by_actor;
    r.done = [](expected<history_report>) {};
    const auto stream = stream_name(actor.ns());
    auto fail_with = [&](const error& e) -> std::optional<actor_end> {
      if (failure) *failure = e;
      return std::nullopt;
    };
    if (by_actor) {
      const auto subj = actor_subject(actor);
      for (std::uint64_t after = 0;;) {
        if (closing.load()) return fail_with(closed_error());
        auto m = next_on_subject(stream, subj, after);
        if (!m) return fail_with(m.error());
        if (!*m) break;
        const auto& msg = **m;
        take_actor(
            r, [&] { return msg.header(last_version_header); }, msg.data, msg.sequence);
        after = msg.sequence;
      }
    } else {
      // By exact subject, as a read of a short history goes: a write whose
      // place no write before it ends at is never visited.
      for (;;) {
        if (closing.load()) return fail_with(closed_error());
        const auto version = r.next;
        auto m = write_at(actor, version);
        if (!m) {
          if (m.error().code() == errc::not_found) break;
          return fail_with(m.error());
        }
        take(
            r, m->subject, [&] { return m->header(last_version_header); }, true, m->data, m->sequence);
        if (r.next == version) break; // a write that does not decode and whose end is unknown
      }
    }
    std::uint64_t sequence = by_actor ? r.subject_sequence : r.end_sequence;
    report_skipped(r);
    return actor_end{r.next - 1, sequence};
  }

  /// Settles `w` on a settling thread (see `settle`); a store closing
  /// first answers it `unavailable`, outcome unknown.
  void settle_later(write queued, bool server_said_taken) {
    auto held = std::make_shared<write>(std::move(queued));
    enqueue(
        settling, [this, held, server_said_taken] { settle(std::move(*held), server_said_taken); },
        [this, held] {
          fail(*held, error{errc::unavailable,
                            fmt::format("{} version {}: the store closed before its outcome was read back; it may "
                                        "still be stored",
                                        held->actor.to_string(), held->first)});
        });
  }

  /// Runs `attempt` (given a timeout) until it answers anything but a
  /// timeout or a lost connection, up to `max(3, max_attempts)` tries, each
  /// waiting twice as long as the one before, from `ack_timeout` (2+4+8 s by
  /// default): a server too busy to acknowledge a write in time is usually
  /// too busy to answer one read in that time too, and the outcome is
  /// worth the wait. A closing store stops after the try in progress.
  template <class Attempt>
  auto patiently(Attempt&& attempt) -> decltype(attempt(std::chrono::milliseconds{})) {
    const int tries = std::max(3, options.max_attempts);
    auto timeout = options.ack_timeout;
    for (int i = 1;; ++i, timeout *= 2) {
      auto r = attempt(timeout);
      if (r || i >= tries || closing.load()) return r;
      const auto code = r.error().code();
      if (code != errc::timeout && code != errc::unavailable) return r;
    }
  }

  /// Decides a write's outcome by reading its subject back from the stream
  /// leader: ours (stored), someone else's (conflict), or nothing; patiently
  /// (see `patiently`), on a settling thread.
  void settle(write w, bool server_said_taken) {
    // The copies sent on the send-asap connection are processed before a
    // flush of it returns, so none of them is still on its way to the server
    // when the read-back below (on the main connection) finds nothing.
    if (w.quick && quick && !server_said_taken) {
      if (auto f = patiently([&](std::chrono::milliseconds t) { return quick->flush(t); }); !f) {
        fail(w,
             error{errc::unavailable, fmt::format("{} version {}: the outcome is unknown ({}); it may still be stored",
                                                  w.actor.to_string(), w.first, f.error().detail())});
        return;
      }
    }
    // Per-write: the subject's one message. Per-actor: the first write
    // stored on the actor's subject after the one this write expected, the
    // only one the server let follow it.
    auto stored = patiently([&](std::chrono::milliseconds timeout) -> expected<nats::message> {
      if (!per_actor(w.actor.ns())) return conn->leader_get_last(w.stream, w.subject);
      auto next = next_on_subject(w.stream, w.subject, w.expected_sequence, timeout);
      if (!next) return next.error();
      if (!*next) return error{errc::not_found, "nothing stored after the expected write"};
      return std::move(**next);
    });
    if (stored) {
      if (stored->header(write_id_header) == std::optional<std::string_view>{w.msg_id}) {
        succeed(w, stored->sequence);
        return;
      }
      // The current version is at least the end of the write that took
      // ours: never report less, even if the read below is answered by a
      // leader that has not applied everything yet.
      std::uint64_t current = w.first;
      if (auto v = stored->header(last_version_header); v && to_number(*v)) current = *to_number(*v);
      error failure{errc::unavailable};
      const auto now = latest(w.actor, &failure);
      actor_end end{current, 0};
      if (now && now->version >= current) end = *now;
      current = end.version;
      // The write that took ours ends at `current` or before a later one
      // that does: the loser's retry after it needs no check.
      learn_end(w.actor, end);
      conflict(w, error{errc::version_conflict,
                        fmt::format("{} version {} was written by another writer; the actor is at version {}",
                                    w.actor.to_string(), w.first, current),
                        current});
      return;
    }
    if (stored.error().code() != errc::not_found) {
      fail(w, error{errc::unavailable, fmt::format("{} version {}: the outcome is unknown ({}); it may still be stored",
                                                   w.actor.to_string(), w.first, stored.error().detail())});
      return;
    }
    if (per_actor(w.actor.ns()) && options.replicas > 1) {
      // The direct get may have been answered by a replica behind the leader.
      fail(w, error{errc::unavailable,
                    fmt::format("{} version {}: not found after the write it expected, on a replica that may lag; the "
                                "outcome is unknown, it may be stored",
                                w.actor.to_string(), w.first)});
      return;
    }
    if (server_said_taken) {
      // Taken, yet not there: the other write was removed since (or, per
      // actor, the write this one expected is no longer the actor's last).
      // Still a conflict.
      error failure{errc::unavailable};
      const auto now = latest(w.actor, &failure);
      const auto current = now ? now->version : w.first;
      fail(w, error{errc::version_conflict,
                    fmt::format("{} version {} was taken; the actor is at version {}", w.actor.to_string(), w.first,
                                current),
                    current});
      return;
    }
    if (options.replicas > 1) {
      // On a replicated stream a copy may still reach the stream leader after
      // this read (through a route, across a leader change): seen stored after
      // "not stored" was read back when the leader was paused and resumed.
      fail(w, error{errc::unavailable,
                    fmt::format("{} version {} was not acknowledged after {} sends and is not stored yet; the outcome "
                                "is unknown, it may still be stored",
                                w.actor.to_string(), w.first, w.sends)});
      return;
    }
    fail(w, error{errc::unavailable, fmt::format("{} version {} was not acknowledged after {} sends and is not stored",
                                                 w.actor.to_string(), w.first, w.sends)});
  }

  void check_deadlines() {
    const auto now = clock::now();
    std::vector<std::uint64_t> resend;
    std::vector<std::uint64_t> due; // past a deadline: sent again, or waited on (see `needs_resend`)
    std::vector<write> expired;
    std::vector<std::shared_ptr<reading>> stalled;
    std::vector<nats::subscription> ended; // unsubscribed outside the lock
    {
      std::lock_guard lock{mutex};
      for (auto it = writes.begin(); it != writes.end();) {
        if (it->second.deadline > now) {
          ++it;
        } else if (it->second.attempts < options.max_attempts) {
          due.push_back(it->first);
          ++it;
        } else {
          auto next = std::next(it);
          expired.push_back(take_write(it));
          it = next;
        }
      }
      for (auto it = reads.begin(); it != reads.end();) {
        if (it->second->finished.load()) {
          ended.push_back(std::move(it->second->sub));
          it = reads.erase(it);
        } else if (it->second->deadline.load(std::memory_order_relaxed) <= now.time_since_epoch().count()) {
          ended.push_back(std::move(it->second->sub));
          stalled.push_back(it->second);
          it = reads.erase(it);
        } else {
          ++it;
        }
      }
    }
    const auto main_link = state_of(conn.get());
    const auto fast_link = state_of(quick.get());
    main_reconnects.store(main_link.reconnects, std::memory_order_relaxed);
    quick_reconnects.store(fast_link.reconnects, std::memory_order_relaxed);
    for (auto token : due) {
      bool again = false;
      {
        std::lock_guard lock{mutex};
        auto it = writes.find(token);
        if (it == writes.end()) continue;
        again = needs_resend(it->second, main_link, fast_link);
        if (!again) {
          ++it->second.attempts;
          it->second.deadline = now + options.ack_timeout;
        }
      }
      if (again) resend.push_back(token);
    }
    for (auto token : resend) send(token);
    for (auto& w : expired) settle_later(std::move(w), false);
    for (auto& r : stalled) {
      finish(*r, error{errc::unavailable, fmt::format("replaying {} stalled", r->actor.to_string())});
    }
  }

  static void finish(reading& r, expected<void> outcome) {
    if (r.finished.exchange(true)) return;
    if (!outcome) {
      r.done(outcome.error());
      return;
    }
    if (r.failure) {
      r.done(*r.failure);
      return;
    }
    // Writes still waiting for their place start past a version no write
    // starts at: beside the history, never in it.
    for (auto& [first, w] : r.pending) skip(r, first, w.sequence, "it starts after a version no write ends at");
    r.pending.clear();
    const auto p = r.owner.lock();
    if (p) p->report_skipped(r);
    // The read went to the end: the last write it took ends the history.
    // Per actor, the next write expects the subject's last write, which is
    // the history's end unless a write was left out after it.
    if (p && r.next > 1) p->learn_end(r.actor, actor_end{r.next - 1, r.by_actor ? r.subject_sequence : 0});
    r.done(history_report{std::move(r.events), std::move(r.undecodable), std::move(r.skipped)});
  }

  /// Counts and logs the writes a read left out of the history (pending
  /// ones first: they start past a version no write ends at).
  void report_skipped(reading& r) {
    for (auto& [first, w] : r.pending) skip(r, first, w.sequence, "it starts after a version no write ends at");
    r.pending.clear();
    if (r.skipped.empty()) return;
    skipped_writes.fetch_add(r.skipped.size(), std::memory_order_relaxed);
    for (const auto& s : r.skipped) {
      log(log_level::warn, "{}: skipped the write at stream sequence {} claiming version {}: {}", r.actor.to_string(),
          s.sequence, s.version, s.reason);
    }
  }

  /// Leaves a stored write out of the history, saying why.
  static void skip(reading& r, std::uint64_t first, std::uint64_t sequence, std::string_view why) {
    r.skipped.push_back(unread_write{first, sequence, std::string{why}});
  }

  /// A write that does not decode: the end of a strict read; a tolerant
  /// one reports it and goes on after it if its last version is known.
  static bool undecodable(reading& r, std::uint64_t first, std::optional<std::uint64_t> last, std::uint64_t sequence,
                          const error& e) {
    if (!r.tolerant) {
      r.failure = e;
      return false;
    }
    r.undecodable.push_back(unread_write{first, sequence, e.detail()});
    if (last && *last >= first) place(r, first, *last, sequence, {});
    return true;
  }

  /// Puts a write in the history if it starts where the history has got
  /// to; keeps it for later if it starts further on (a pipelining writer's
  /// resent write can be stored after a later one); leaves it out if it
  /// starts at or inside a version already taken by a write stored before
  /// it. The first stored write at each place wins.
  static void place(reading& r, std::uint64_t first, std::uint64_t last, std::uint64_t sequence,
                    std::vector<event> events) {
    if (first < r.next) {
      skip(r, first, sequence, fmt::format("versions up to {} were written before it", r.next - 1));
      return;
    }
    if (first > r.next) {
      if (!r.pending.try_emplace(first, pending_write{last, sequence, std::move(events)}).second) {
        skip(r, first, sequence, "another write of that version was stored before it");
      }
      return;
    }
    auto take_events = [&r](std::vector<event>& batch) {
      if (r.events.empty()) r.events.reserve(batch.size());
      for (auto& e : batch) {
        if (e.version >= r.from) r.events.push_back(std::move(e));
      }
    };
    take_events(events);
    r.next = last + 1;
    r.end_sequence = sequence;
    while (!r.pending.empty()) {
      auto it = r.pending.begin();
      if (it->first > r.next) break;
      if (it->first < r.next) {
        skip(r, it->first, it->second.sequence, fmt::format("versions up to {} were written before it", r.next - 1));
      } else {
        take_events(it->second.events);
        r.next = it->second.last + 1;
        r.end_sequence = it->second.sequence;
      }
      r.pending.erase(it);
    }
  }

  /// Takes one stored write during a read; false to stop. `last_header`
  /// reads the write's `Aether-Last-Version`; a consumer's message is asked
  /// only when the write may lie wholly before the wanted version (nats.c
  /// parses all of a message's headers into a table on first use), else its
  /// last version is its batch's.
  template <class LastHeader>
  static bool take(reading& r, std::string_view subject, LastHeader&& last_header, bool header_always,
                   std::string_view data, std::uint64_t sequence) {
    const auto first = last_number(subject);
    if (first && *first < r.walked_next && std::find(r.walked.begin(), r.walked.end(), sequence) != r.walked.end()) {
      return true; // read already, by subject
    }
    if (!first) {
      return undecodable(
          r, 0, std::nullopt, sequence,
          error{errc::replay_failed, fmt::format("{}: message {} has the subject {}, which names no version",
                                                 r.actor.to_string(), sequence, subject)});
    }
    if (*first < r.start) return true; // before the read's start (a consumer from a hint)
    if (*first < r.next) {             // at or inside a place already taken: not even decoded
      skip(r, *first, sequence, fmt::format("versions up to {} were written before it", r.next - 1));
      return true;
    }
    std::optional<std::uint64_t> last;
    if (header_always || *first < r.from) {
      const std::optional<std::string_view> header = last_header();
      last = header ? to_number(*header) : first;
      if (!last || *last < *first) {
        return undecodable(r, *first, std::nullopt, sequence,
                           error{errc::replay_failed,
                                 fmt::format("{} version {} (stream sequence {}) has no valid last version",
                                             r.actor.to_string(), *first, sequence),
                                 *first});
      }
      if (*last < r.from) { // before what was asked for: not decoded
        place(r, *first, *last, sequence, {});
        return true;
      }
    }
    auto batch = detail::decode_batch(r.actor, *first, sequence, data);
    if (!batch) {
      if (!last) {
        if (auto header = last_header()) last = to_number(*header);
      }
      return undecodable(r, *first, last, sequence, batch.error());
    }
    if (last && batch->back().version != *last) {
      return undecodable(r, *first, last, sequence,
                         error{errc::replay_failed,
                               fmt::format("{} version {} (stream sequence {}) holds {} events, not {}",
                                           r.actor.to_string(), *first, sequence, batch->size(), *last - *first + 1),
                               *first});
    }
    const auto end = batch->back().version;
    place(r, *first, end, sequence, std::move(*batch));
    return true;
  }

  /// The stream sequence of a message a consumer delivered, from its
  /// acknowledgement subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream
  /// seq>.<consumer seq>.<time>.<pending>`, or with a domain and account
  /// hash after `$JS.ACK`): no allocation, unlike nats.c's metadata parse.
  static std::optional<std::uint64_t> delivered_sequence(const nats::message_view& m) {
    std::string_view tokens[12];
    std::size_t n = 0;
    auto rest = m.reply();
    while (n < 12) {
      const auto dot = rest.find('.');
      tokens[n++] = rest.substr(0, dot);
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
    if (n == 9 && tokens[0] == "$JS" && tokens[1] == "ACK") return to_number(tokens[5]);
    if (n >= 11 && tokens[0] == "$JS" && tokens[1] == "ACK") return to_number(tokens[7]);
    auto parsed = m.sequence_and_pending();
    return parsed ? std::optional<std::uint64_t>{parsed->first} : std::nullopt;
  }

  /// The write that starts at `version`, read by its exact subject: the
  /// first stored there by a direct get; through the stream leader when
  /// replicated (a direct get may be served by a replica that lags), which
  /// reads a subject's last message: Aether's writers never store two.
  expected<nats::message> write_at(const actor_id& actor, std::uint64_t version) {
    const auto stream = stream_name(actor.ns());
    const auto subj = subject(actor, version);
    return options.replicas > 1 ? conn->leader_get_last(stream, subj) : conn->direct_get_first(stream, subj);
  }

  static error closed_error() { return error{errc::shutting_down, "the store closed during the read"}; }

  /// Walks the writes from `start` (a version that starts a write) by exact
  /// subject, each get waiting on no thread, and past `walk_limit` of them
  /// goes on with an ordered consumer. Short histories and snapshot tails
  /// need no consumer, whose creation costs more the more writes the
  /// namespace's stream holds. The stream must be known (or looked up on a
  /// reader thread).

  void walk(const std::shared_ptr<reading>& r, std::uint64_t start) {
    auto layout = lookup_stream(r->actor.ns());
    if (!layout || !*layout) {
      // No stream: nothing was ever written in this namespace.
      finish(*r, layout ? expected<void>{} : expected<void>{layout.error()});
      return;
    }
    if (**layout == detail::stream_layout::per_actor) {
      r->by_actor = true;
      // Replicated streams are read by the consumer only (a direct get may
      // be served by a lagging replica).
      if (options.replicas > 1) {
        consume_later(r, r->hint > 0 ? r->hint : 1);
      } else {
        walk_actor(r, r->hint > 0 ? r->hint - 1 : 0, 0);
      }
      return;
    }
    walk_write(r, start, 0);
  }

  /// The answer to a direct get as the synchronous gets give it: the
  /// message, `not_found` when there is none, or the error.
  static expected<nats::message> direct_answer(expected<nats::message> m, std::string_view what) {
    if (!m) {
      // "No responders": no server serves the stream, which says nothing of its messages.
      if (m.error().code() == errc::not_found) return error{errc::unavailable, m.error().detail()};
      return m.error();
    }
    if (!m->header("Nats-Sequence")) {
      const auto status = m->header("Status");
      if (!status || *status == "404") return error{errc::not_found, fmt::format("{}: no message", what)};
      return error{errc::unavailable, fmt::format("{}: status {}", what, *status)};
    }
    return m;
  }

  /// Per-write layout, the `i`th write of the walk: the one that starts at
  /// `version`, by exact subject (through the stream leader when
  /// replicated). Each get waits without a thread; its answer takes the
  /// next step. Past `walk_limit` writes the rest is read by an ordered
  /// consumer, except when every read goes through the leader.
  void walk_write(const std::shared_ptr<reading>& r, std::uint64_t version, int i) {
    if (closing.load()) {
      finish(*r, closed_error());
      return;
    }
    if (!leader_reads_only && i >= walk_limit) {
      // The rest through a consumer. It starts where the read was told to
      // (not after the last walked write: a pipelining writer's writes may
      // sit in the stream out of version order) and skips what the walk read.
      r->walked_next = r->next;
      consume_later(r, r->hint);
      return;
    }
    std::weak_ptr<impl> weak = r->owner;
    auto next = [weak, r, version, i](expected<nats::message> m) {
      auto self = weak.lock();
      if (!self || r->finished.load()) {
        finish(*r, closed_error());
        return;
      }
      if (!m) {
        finish(*r, m.error().code() == errc::not_found ? expected<void>{} : expected<void>{m.error()});
        return;
      }
      r->walked.push_back(m->sequence);
      if (!take(
              *r, m->subject, [&] { return m->header(last_version_header); }, true, m->data, m->sequence) ||
          r->next == version) {
        finish(*r, {}); // failed, or a write that does not decode and whose end is unknown
        return;
      }
      self->walk_write(r, r->next, i + 1);
    };
    const auto stream = stream_name(r->actor.ns());
    const auto subj = subject(r->actor, version);
    if (options.replicas > 1) {
      conn->leader_get_last_async(stream, subj, direct_get_timeout, std::move(next));
    } else {
      conn->request_async(fmt::format("$JS.API.DIRECT.GET.{}", stream),
                          fmt::format(R"({{"seq":1,"next_by_subj":"{}"}})", subj), direct_get_timeout,
                          [next = std::move(next), subj](expected<nats::message> m) mutable {
                            next(direct_answer(std::move(m), subj));
                          });
    }
  }

  /// Per-actor layout (R1): the `i`th write of the walk, the actor's first
  /// after stream sequence `after`, by a direct get that waits without a
  /// thread; past `walk_limit` of them the rest through an ordered consumer.
  void walk_actor(const std::shared_ptr<reading>& r, std::uint64_t after, int i) {
    if (closing.load()) {
      finish(*r, closed_error());
      return;
    }
    if (i >= walk_limit) {
      consume_later(r, after + 1);
      return;
    }
    const auto subj = actor_subject(r->actor);
    std::weak_ptr<impl> weak = r->owner;
    conn->request_async(fmt::format("$JS.API.DIRECT.GET.{}", stream_name(r->actor.ns())),
                        fmt::format(R"({{"seq":{},"next_by_subj":"{}"}})", after + 1, subj), options.ack_timeout,
                        [weak, r, i, subj](expected<nats::message> answer) {
                          auto self = weak.lock();
                          if (!self || r->finished.load()) {
                            finish(*r, closed_error());
                            return;
                          }
                          auto m = direct_answer(std::move(answer), subj);
                          if (!m) {
                            finish(*r,
                                   m.error().code() == errc::not_found ? expected<void>{} : expected<void>{m.error()});
                            return;
                          }
                          if (!take_actor(
                                  *r, [&] { return m->header(last_version_header); }, m->data, m->sequence)) {
                            finish(*r, {});
                            return;
                          }
                          self->walk_actor(r, m->sequence, i + 1);
                        });
  }

  /// Goes on with an ordered consumer, created on a reader thread (nats.c
  /// waits for the server's answer).
  void consume_later(const std::shared_ptr<reading>& r, std::uint64_t start) {
    enqueue(
        reading_lane,
        [this, r, start] {
          if (closing.load()) {
            finish(*r, closed_error());
            return;
          }
          consume(r, start);
        },
        [r] { finish(*r, closed_error()); });
  }

  /// Takes one stored write of the per-actor layout during a read (false to
  /// stop): its versions are its events' own; a write that does not decode
  /// is taken to follow the history so far.
  template <class LastHeader>
  static bool take_actor(reading& r, LastHeader&& last_header, std::string_view data, std::uint64_t sequence) {
    // The actor's subject's last write: the next write expects it.
    r.subject_sequence = std::max(r.subject_sequence, sequence);
    std::optional<std::uint64_t> last;
    if (auto header = last_header()) last = to_number(*header);
    auto batch = detail::decode_batch_own_versions(r.actor, sequence, data);
    if (batch && last && batch->back().version != *last) {
      batch =
          error{errc::replay_failed, fmt::format("it holds events from version {} to {}, yet names {} its last version",
                                                 batch->front().version, batch->back().version, *last)};
    }
    if (!batch) {
      // Where the write stands in the history so far: what its version is taken to be.
      batch = error{errc::replay_failed,
                    fmt::format("{} version {} (stream sequence {}): {}", r.actor.to_string(), r.next, sequence,
                                batch.error().detail()),
                    r.next};
    }
    if (!batch) {
      if (last && *last >= r.next && *last < r.from) { // before what was asked for
        place(r, r.next, *last, sequence, {});
        return true;
      }
      return undecodable(r, r.next, last, sequence, batch.error());
    }
    const auto first = batch->front().version;
    if (first < r.start) return true; // before the read's start (a read from a hint)
    const auto end = batch->back().version;
    place(r, first, end, sequence, std::move(*batch));
    return true;
  }

  /// Reads the rest through an ordered consumer from stream sequence `start`.
  void consume(const std::shared_ptr<reading>& r, std::uint64_t start) {
    r->extend(options.read_timeout);
    const bool by_actor = r->by_actor;
    auto sub = conn->replay(
        stream_name(r->actor.ns()), by_actor ? actor_subject(r->actor) : actor_filter(r->actor), start,
        [r, by_actor, timeout = options.read_timeout](const nats::message_view& m) {
          r->extend(timeout);
          const auto seq = delivered_sequence(m);
          if (!seq) return false;
          if (by_actor)
            return take_actor(
                *r, [&] { return m.header(last_version_header); }, m.data(), *seq);
          return take(
              *r, m.subject(), [&] { return m.header(last_version_header); }, false, m.data(), *seq);
        },
        [r](expected<void> outcome) { finish(*r, std::move(outcome)); });
    if (!sub) {
      finish(*r, sub.error().code() == errc::not_found ? expected<void>{} : expected<void>{sub.error()});
      return;
    }
    std::lock_guard lock{mutex};
    if (r->finished.load()) return; // the subscription ends with this scope
    r->sub = std::move(*sub);
    reads.emplace(next_read++, r);
  }
};

jetstream_event_store::jetstream_event_store(std::shared_ptr<impl> p) noexcept : impl_{std::move(p)} {}

jetstream_event_store::~jetstream_event_store() { impl_->stop(); }

expected<std::shared_ptr<jetstream_event_store>> jetstream_event_store::open(std::shared_ptr<nats::connection> conn,
                                                                             jetstream_store_options options,
                                                                             std::shared_ptr<nats::connection> quick) {
  if (!conn) return error{errc::invalid_argument, "no connection"};
  if (options.readers < 1 || options.readers > 64) {
    return error{errc::invalid_argument, fmt::format("readers is {}; it must be from 1 to 64", options.readers)};
  }
  if (options.reads_in_flight < 1) {
    return error{errc::invalid_argument,
                 fmt::format("reads_in_flight is {}; it must be 1 or more", options.reads_in_flight)};
  }
  auto p = std::make_shared<impl>();
  p->conn = std::move(conn);
  p->quick = std::move(quick);
  p->options = options;
  p->inbox = p->conn->new_inbox();
  std::weak_ptr<impl> weak = p;
  auto acks = p->conn->subscribe(p->inbox + ".*", [weak](const nats::message_view& m) {
    if (auto self = weak.lock()) self->on_ack(m);
  });
  if (!acks) return acks.error();
  p->acks = std::move(*acks);
  p->main_reconnects = impl::state_of(p->conn.get()).reconnects;
  p->quick_reconnects = impl::state_of(p->quick.get()).reconnects;
  p->leader_reads_only = options.replicas > 1 && check_replicas(*p->conn, options.replicas);
  p->work.threads.emplace_back([self = p] { self->run(); });
  for (int i = 0; i < options.readers; ++i) {
    p->reading_lane.threads.emplace_back([self = p] { self->serve(self->reading_lane); });
  }
  for (int i = 0; i < settling_threads; ++i) {
    p->settling.threads.emplace_back([self = p] { self->serve(self->settling); });
  }
  return std::shared_ptr<jetstream_event_store>{new jetstream_event_store{std::move(p)}};
}

jetstream_store_stats jetstream_event_store::stats() const noexcept {
  return {impl_->version_checks.load(std::memory_order_relaxed), impl_->skipped_writes.load(std::memory_order_relaxed)};
}

std::string jetstream_event_store::stream_name(std::string_view ns) { return detail::namespace_stream_name(ns); }

std::string jetstream_event_store::subject(const actor_id& actor, std::uint64_t first_version) {
  return fmt::format("aether.{}.ev.{}.{}.{}", detail::namespace_token(actor.ns()), actor.type(), actor.key(),
                     first_version);
}

std::string jetstream_event_store::actor_subject(const actor_id& actor) {
  return fmt::format("aether.{}.ev.{}.{}", detail::namespace_token(actor.ns()), actor.type(), actor.key());
}

std::string jetstream_event_store::actor_filter(const actor_id& actor) {
  return fmt::format("aether.{}.ev.{}.{}.*", detail::namespace_token(actor.ns()), actor.type(), actor.key());
}

expected<void> jetstream_event_store::prepare(std::string_view ns) {
  if (auto ok = actor_id::validate_namespace(ns); !ok) return ok;
  if (auto l = impl_->ensure_stream(ns); !l) return l.error();
  return {};
}

expected<event_layout> jetstream_event_store::layout(std::string_view ns) {
  if (auto ok = actor_id::validate_namespace(ns); !ok) return ok.error();
  auto l = impl_->ensure_stream(ns);
  if (!l) return l.error();
  return *l == detail::stream_layout::per_actor ? event_layout::per_actor : event_layout::per_write;
}

void jetstream_event_store::append(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events,
                                   append_callback done) {
  if (auto ok = detail::prepare_append(actor, expected_version, events); !ok) {
    done(ok.error());
    return;
  }
  impl::write w;
  w.actor = actor;
  w.first = expected_version + 1;
  w.last = expected_version + events.size();
  w.stream = stream_name(actor.ns());
  w.msg_id = events.front().id; // the subject is set when sent, by the stream's layout
  w.payload = detail::encode_batch(events);
  w.done = std::move(done);
  // Headers and subject ride along; keep well inside the server's limit.
  const auto limit = impl_->conn->max_payload() - 512;
  if (static_cast<std::int64_t>(w.payload.size()) > limit) {
    w.done(error{errc::payload_too_large, fmt::format("{} events of {} take {} bytes; the server takes at most {}",
                                                      events.size(), actor.to_string(), w.payload.size(), limit)});
    return;
  }
  if ((w.watcher = watcher())) w.events = std::move(events);
  // The plain path: an append after a version this store saw end the
  // actor's history (or after 0) goes out at once. Any other is checked
  // against the actor's last version first (one read, through the stream
  // leader when replicated): a version inside an earlier write or past the
  // last one is refused, not stored beside the history.
  impl_->submit(std::move(w));
}

void jetstream_event_store::read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint,
                                 read_callback done) {
  start_read(actor, from_version, hint, false, [done = std::move(done)](expected<history_report> r) mutable {
    if (r) {
      done(std::move(r->events));
    } else {
      done(r.error());
    }
  });
}

void jetstream_event_store::read_report(const actor_id& actor, std::uint64_t from_version, report_callback done) {
  start_read(actor, from_version, 0, true, std::move(done));
}

void jetstream_event_store::start_read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint,
                                       bool tolerant, report_callback done) {
  if (actor.empty()) {
    done(error{errc::invalid_id, "the actor id is empty"});
    return;
  }
  auto r = std::make_shared<impl::reading>();
  r->actor = actor;
  r->from = std::max<std::uint64_t>(from_version, 1);
  r->tolerant = tolerant;
  r->done = std::move(done);
  r->extend(impl_->options.read_timeout);
  // With a hint, `from_version` starts a write (an actor's version + 1);
  // without one, walk from the first write and skip what comes before.
  const auto start = hint != 0 ? r->from : 1;
  r->start = r->next = start;
  r->hint = hint;
  r->owner = impl_;
  // Its place among the reads in flight goes to the next one when it ends.
  r->done = [done = std::move(r->done), raw = r.get()](expected<history_report> outcome) mutable {
    done(std::move(outcome));
    if (auto p = raw->owner.lock()) p->read_ended(raw->id);
  };
  impl_->admit(std::move(r));
}

void jetstream_event_store::latest_version(const actor_id& actor, version_callback done) {
  if (actor.empty()) {
    done(error{errc::invalid_id, "the actor id is empty"});
    return;
  }
  auto q = std::make_shared<impl::version_query>();
  q->actor = actor;
  q->owner = impl_;
  // Its place among the reads in flight goes to the next one when it ends.
  q->done = [done = std::move(done), raw = q.get()](expected<std::uint64_t> v) mutable {
    done(std::move(v));
    if (auto p = raw->owner.lock()) p->read_ended(raw->id);
  };
  impl_->admit(std::move(q));
}

} // namespace aether
