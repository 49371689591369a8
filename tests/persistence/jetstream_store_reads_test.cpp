// The JetStream store under many reads and version queries at once, at a
// paused or dead server and at close, and the read-back of writes whose
// acknowledgement a paused server held back.
#include "store_fixtures.hpp"
#include "support/eventually.hpp"

#include <algorithm>
#include <atomic>
#include <fmt/format.h>

#include <map>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using test::make_event;

namespace {

/// Histories of `count` actors `fast/h/{i}`, two writes each (versions 1 and
/// 2, data `{"n":i}` then `{"n":-i}`), written by a store of their own.
void write_histories(std::shared_ptr<aether::nats::connection> conn, int count) {
  auto writer = test::open_store(std::move(conn));
  for (int round = 0; round < 2; ++round) {
    std::atomic<int> left{count};
    std::atomic<int> failed{0};
    for (int i = 0; i < count; ++i) {
      writer->append(actor_id{"h", std::to_string(i), "fast"}, static_cast<std::uint64_t>(round),
                     {make_event("noted", fmt::format(R"({{"n":{}}})", round == 0 ? i : -i))},
                     [&](aether::expected<aether::append_result> r) {
                       if (!r) failed.fetch_add(1);
                       left.fetch_sub(1);
                     });
    }
    AETHER_EVENTUALLY(left.load() == 0, 60s);
    REQUIRE(failed.load() == 0);
  }
}

/// Whether `events` is actor `i`'s history as `write_histories` wrote it.
bool whole(const std::vector<aether::event>& events, int i) {
  return events.size() == 2 && events[0].version == 1 && events[1].version == 2 &&
         events[0].data == fmt::format(R"({{"n":{}}})", i) && events[1].data == fmt::format(R"({{"n":{}}})", -i);
}

/// A namespace whose stream answers no read: the store knows its stream (it
/// read from it), then the stream is gone and a silent subscriber takes its
/// direct gets, as a stream whose server is stuck would. `answer_all`
/// finally answers them "not found".
struct stuck_namespace {
  static constexpr std::string_view ns = "slow";
  std::shared_ptr<aether::nats::connection> conn;
  std::mutex mutex;
  std::vector<std::string> held; // reply subjects of the gets taken
  aether::nats::subscription sub;

  stuck_namespace(std::shared_ptr<aether::nats::connection> c, aether::jetstream_event_store& store)
      : conn{std::move(c)} {
    const actor_id a{"s", "0", std::string{ns}};
    REQUIRE(store.append_wait(a, 0, {make_event("noted")}));
    REQUIRE(store.read_wait(a)->size() == 1); // the store knows the stream and its layout
    const auto stream = aether::jetstream_event_store::stream_name(ns);
    REQUIRE(conn->delete_stream(stream));
    auto s = conn->subscribe(fmt::format("$JS.API.DIRECT.GET.{}", stream), [this](const aether::nats::message_view& m) {
      std::lock_guard lock{mutex};
      held.emplace_back(m.reply());
    });
    REQUIRE(s);
    sub = std::move(*s);
    REQUIRE(conn->flush(5s));
  }

  // Answers what is still held, so that a store closing after a failed
  // check does not wait for its requests' timeout.
  ~stuck_namespace() {
    sub.unsubscribe();
    release();
  }

  std::size_t taken() {
    std::lock_guard lock{mutex};
    return held.size();
  }

  void answer_all() { REQUIRE(release()); }

  bool release() {
    std::vector<std::string> replies;
    {
      std::lock_guard lock{mutex};
      replies.swap(held);
    }
    const aether::nats::header not_found[] = {{"Status", "404"}};
    bool ok = true;
    for (const auto& r : replies) ok = conn->publish(r, "", not_found).has_value() && ok;
    return conn->flush(5s).has_value() && ok;
  }
};

/// What a read answered.
struct answer {
  std::atomic<int> count{0};
  std::atomic<bool> ok{false};
  std::atomic<bool> right{false}; // the history as written
  std::atomic<int> code{0};
};

/// Starts one read of the stuck namespace (actors `s/x{i}`, never written)
/// per answer; `right` means the empty history they have.
void read_stuck(aether::jetstream_event_store& store, std::vector<answer>& answers) {
  for (std::size_t i = 0; i < answers.size(); ++i) {
    store.read(actor_id{"s", fmt::format("x{}", i), std::string{stuck_namespace::ns}}, 1, 0,
               [&a = answers[i]](aether::expected<std::vector<aether::event>> r) {
                 a.ok = r.has_value();
                 a.right = r && r->empty();
                 if (!r) a.code = static_cast<int>(r.error().code());
                 a.count.fetch_add(1);
               });
  }
}

} // namespace

TEST_CASE("reads run beside each other: thousands of histories read at once while a stuck read waits") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr int actors = 2000;
  write_histories(conn, actors);

  // What the reads answered, declared first: the store closes before they go.
  std::vector<answer> slow(2);
  std::vector<answer> fast(actors);
  aether::jetstream_store_options o;
  o.ack_timeout = 120s; // a stuck read's request waits this long
  auto store = test::open_store(conn, o);
  stuck_namespace stuck{conn, *store};

  // Reads of the stuck namespace are in progress first.
  read_stuck(*store, slow);
  AETHER_EVENTUALLY(stuck.taken() >= 1, 30s);

  // Then every actor is read at once, as a node activating them all would.
  for (int i = 0; i < actors; ++i) {
    store->read(actor_id{"h", std::to_string(i), "fast"}, 1, 0,
                [&a = fast[static_cast<std::size_t>(i)], i](aether::expected<std::vector<aether::event>> r) {
                  a.ok = r.has_value();
                  a.right = r && whole(*r, i);
                  if (!r) a.code = static_cast<int>(r.error().code());
                  a.count.fetch_add(1);
                });
  }
  // All of them answer while the stuck reads still wait (a store reading one
  // history at a time keeps them behind the first stuck read for its 120 s).
  AETHER_EVENTUALLY(std::all_of(fast.begin(), fast.end(), [](const answer& a) { return a.count.load() > 0; }), 60s);
  for (int i = 0; i < actors; ++i) {
    const auto& a = fast[static_cast<std::size_t>(i)];
    REQUIRE_MESSAGE(a.count.load() == 1, "actor " << i);
    REQUIRE_MESSAGE(a.right.load(), "actor " << i << " read " << (a.ok ? "a wrong history" : "an error ") << a.code);
  }
  CHECK(slow[0].count.load() == 0);
  CHECK(slow[1].count.load() == 0);

  // Answered at last, the stuck reads finish too (nothing there).
  stuck.answer_all();
  AETHER_EVENTUALLY(slow[0].count.load() == 1 && slow[1].count.load() == 1, 30s);
  CHECK(slow[0].right.load());
  CHECK(slow[1].right.load());
}

TEST_CASE("a store closing with thousands of reads queued answers each once, promptly, without running them") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr int actors = 3000;
  write_histories(conn, actors);

  constexpr int stuck_reads = 12;
  // What the reads answered, declared first: the store closes before they go.
  std::vector<answer> slow(stuck_reads);
  std::vector<answer> fast(actors);
  std::vector<answer> versions(actors);
  aether::jetstream_store_options o;
  o.ack_timeout = 3s; // a stuck read's request waits this long
  auto store = test::open_store(conn, o);
  stuck_namespace stuck{conn, *store};

  // Reads of the stuck namespace take the readers and queue behind them.
  read_stuck(*store, slow);
  AETHER_EVENTUALLY(stuck.taken() >= 1, 30s);
  for (int i = 0; i < actors; ++i) {
    const actor_id a{"h", std::to_string(i), "fast"};
    store->read(a, 1, 0, [&r = fast[static_cast<std::size_t>(i)], i](aether::expected<std::vector<aether::event>> got) {
      r.ok = got.has_value();
      r.right = got && whole(*got, i);
      if (!got) r.code = static_cast<int>(got.error().code());
      r.count.fetch_add(1);
    });
    store->latest_version(a, [&r = versions[static_cast<std::size_t>(i)]](aether::expected<std::uint64_t> got) {
      r.ok = got.has_value();
      r.right = got && *got == 2;
      if (!got) r.code = static_cast<int>(got.error().code());
      r.count.fetch_add(1);
    });
  }

  // Closing waits at most for the requests in progress (3 s each, side by
  // side); a store that ran the queued reads on close would take 3 s for
  // each stuck one (36 s) and more.
  const auto started = std::chrono::steady_clock::now();
  store.reset();
  const auto took = std::chrono::steady_clock::now() - started;
  MESSAGE("closing took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < 20s);

  // Every read was answered exactly once by the time the store closed: its
  // result, or `shutting_down`; a stuck one its request's failure.
  int closed = 0;
  for (std::size_t i = 0; i < fast.size(); ++i) {
    for (const auto* a : {&fast[i], &versions[i]}) {
      REQUIRE_MESSAGE(a->count.load() == 1, "actor " << i);
      if (a->ok) {
        REQUIRE_MESSAGE(a->right.load(), "actor " << i << ": a wrong answer");
      } else {
        REQUIRE_MESSAGE(a->code.load() == static_cast<int>(errc::shutting_down), "actor " << i << ": " << a->code);
        ++closed;
      }
    }
  }
  MESSAGE(closed << " of " << 2 * actors << " queued reads answered shutting_down");
  CHECK(closed > 0);
  for (const auto& a : slow) {
    REQUIRE(a.count.load() == 1);
    CHECK_FALSE(a.ok.load());
    CHECK((a.code.load() == static_cast<int>(errc::shutting_down) || a.code.load() == static_cast<int>(errc::timeout)));
  }
  stuck.answer_all(); // nothing waits any more; a late answer reaches nobody
}

TEST_CASE("writes whose acknowledgements a paused server held back are settled, never wrongly") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 1s; // the pause outlasts every send's deadline
  auto store = test::open_store(conn, o);

  struct outcome {
    std::string id;
    std::uint64_t version = 0; // the version it was appended at
    enum { stored, refused, unknown } kind = unknown;
  };
  constexpr int writers = 50;
  std::vector<std::vector<outcome>> history(writers);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      const actor_id a{"acct", fmt::format("p{}", w)};
      std::uint64_t version = 0;
      for (int n = 0; !stop.load(); ++n) {
        auto e = make_event("deposited", fmt::format(R"({{"n":{}}})", n));
        e.id = fmt::format("p{}-{}", w, n);
        outcome out{e.id, version + 1};
        auto r = store->append_wait(a, version, {e});
        if (r) {
          out.kind = outcome::stored;
          version = r->last_version;
        } else if (r.error().code() == errc::unavailable &&
                   r.error().detail().find("may still be stored") != std::string::npos) {
          out.kind = outcome::unknown;
          auto v = store->latest_version_wait(a);
          if (v) version = *v;
        } else {
          out.kind = outcome::refused;
          if (r.error().code() == errc::version_conflict) version = r.error().value();
        }
        history[static_cast<std::size_t>(w)].push_back(out);
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  server.pause(); // every write in flight waits past its deadlines
  std::this_thread::sleep_for(4s);
  server.resume();
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : threads) t.join();

  // Checked against what the stream holds.
  auto reader = test::open_store(test::connect(server.url()));
  int stored = 0;
  int unknown = 0;
  for (int w = 0; w < writers; ++w) {
    auto events = reader->read_wait(actor_id{"acct", fmt::format("p{}", w)});
    REQUIRE_MESSAGE(events, events.error().to_string());
    std::map<std::string, std::uint64_t> at; // id -> version
    for (const auto& e : *events) REQUIRE_MESSAGE(at.emplace(e.id, e.version).second, "stored twice: " << e.id);
    for (const auto& out : history[static_cast<std::size_t>(w)]) {
      const auto it = at.find(out.id);
      switch (out.kind) {
      case outcome::stored:
        ++stored;
        REQUIRE_MESSAGE(it != at.end(), out.id << " was reported stored and is not");
        CHECK(it->second == out.version);
        break;
      case outcome::refused:
        REQUIRE_MESSAGE(it == at.end(), out.id << " was reported not stored and is");
        break;
      case outcome::unknown:
        ++unknown;
        break;
      }
    }
  }
  MESSAGE(stored << " appends stored, " << unknown << " with an unknown outcome");
  CHECK(stored > writers);
  // The read-back waits longer than the pause: every outcome was settled.
  CHECK(unknown == 0);
}

namespace {

/// Whether `events` is the history `write_pair` wrote for key `i`.
bool pair_of(const std::vector<aether::event>& events, int i) { return whole(events, i); }

/// Versions 1 and 2 of actor `h/{i}` in `ns`, as `write_histories` writes them.
void write_pair(aether::jetstream_event_store& store, std::string_view ns, int i) {
  const actor_id a{"h", std::to_string(i), std::string{ns}};
  REQUIRE(store.append_wait(a, 0, {make_event("noted", fmt::format(R"({{"n":{}}})", i))}));
  REQUIRE(store.append_wait(a, 1, {make_event("noted", fmt::format(R"({{"n":{}}})", -i))}));
}

/// Starts a read of actor `h/{i}` in `ns` that records its answer in `a`.
void read_into(aether::jetstream_event_store& store, std::string_view ns, int i, answer& a) {
  store.read(actor_id{"h", std::to_string(i), std::string{ns}}, 1, 0,
             [&a, i](aether::expected<std::vector<aether::event>> r) {
               a.ok = r.has_value();
               a.right = r && pair_of(*r, i);
               if (!r) a.code = static_cast<int>(r.error().code());
               a.count.fetch_add(1);
             });
}

/// Starts a `latest_version` of `a` that records its answer in `into`:
/// right when it is `expected`.
void latest_into(aether::jetstream_event_store& store, const actor_id& a, std::uint64_t expected, answer& into) {
  store.latest_version(a, [&into, expected](aether::expected<std::uint64_t> v) {
    into.ok = v.has_value();
    into.right = v && *v == expected;
    if (!v) into.code = static_cast<int>(v.error().code());
    into.count.fetch_add(1);
  });
}

/// Whether every answer came.
bool all_answered(const std::vector<answer>& answers) {
  return std::all_of(answers.begin(), answers.end(), [](const answer& a) { return a.count.load() > 0; });
}

/// Two namespaces' R3 streams led by different servers, `stuck_reads`
/// actors `h/{i}` written in the one whose leader a test pauses, `h/0` in the
/// other, and a store connected to the other's leader that knows both streams.
struct two_leaders {
  static constexpr int stuck_reads = 12; // three times the store's readers
  aether::testing::nats_cluster cluster;
  const std::string ns_stuck = "paused";
  const std::string ns_fine = "fine";
  std::optional<std::size_t> leader_stuck;
  std::optional<std::size_t> leader_fine;
  std::shared_ptr<aether::jetstream_event_store> writer;
  std::shared_ptr<aether::jetstream_event_store> store;

  two_leaders() {
    const auto stream_stuck = aether::jetstream_event_store::stream_name(ns_stuck);
    const auto stream_fine = aether::jetstream_event_store::stream_name(ns_fine);
    aether::jetstream_store_options o;
    o.replicas = 3;
    auto admin = test::connect(cluster.urls());
    writer = test::open_store(admin, o);
    REQUIRE(writer->prepare(ns_stuck));
    REQUIRE(writer->prepare(ns_fine));

    // The two streams get different leaders: the fine one steps down until so.
    AETHER_EVENTUALLY((leader_stuck = cluster.stream_leader(stream_stuck)).has_value(), 30s);
    AETHER_EVENTUALLY((leader_fine = cluster.stream_leader(stream_fine)).has_value(), 30s);
    for (int tries = 0; *leader_fine == *leader_stuck; ++tries) {
      REQUIRE(tries < 20);
      const auto before = *leader_fine;
      auto r = admin->request(fmt::format("$JS.API.STREAM.LEADER.STEPDOWN.{}", stream_fine), "", 10s);
      REQUIRE_MESSAGE(r, r.error().to_string());
      AETHER_EVENTUALLY((leader_fine = cluster.stream_leader(stream_fine)).has_value() && *leader_fine != before, 30s);
      AETHER_EVENTUALLY((leader_stuck = cluster.stream_leader(stream_stuck)).has_value(), 30s);
    }
    MESSAGE("stream leaders: " << *leader_stuck << " (to be paused) and " << *leader_fine);

    for (int i = 0; i < stuck_reads; ++i) write_pair(*writer, ns_stuck, i);
    write_pair(*writer, ns_fine, 0);

    // The reading store is connected to the fine stream's leader, which stays up.
    aether::jetstream_store_options ro = o;
    ro.readers = 4;
    store = test::open_store(test::connect(cluster.server(*leader_fine).url()), ro);
    // It knows both streams and reads both.
    REQUIRE(store->read_wait(actor_id{"h", "0", ns_stuck})->size() == 2);
    REQUIRE(store->read_wait(actor_id{"h", "0", ns_fine})->size() == 2);
  }
};

} // namespace

TEST_CASE("R3: reads of a stream whose leader is paused hold up no read of a stream led elsewhere") {
  two_leaders t;
  constexpr int stuck_reads = two_leaders::stuck_reads;
  const auto& ns_stuck = t.ns_stuck;
  const auto& ns_fine = t.ns_fine;
  auto& cluster = t.cluster;
  const auto& leader_stuck = t.leader_stuck;
  // What the reads answered, declared first: the store closes before they go.
  std::vector<answer> stuck(stuck_reads);
  answer fine;
  std::atomic<int> stuck_answered_before_fine{-1};
  auto store = std::move(t.store);

  cluster.server(*leader_stuck).pause();
  for (int i = 0; i < stuck_reads; ++i) read_into(*store, ns_stuck, i, stuck[static_cast<std::size_t>(i)]);
  const auto started = std::chrono::steady_clock::now();
  store->read(actor_id{"h", "0", ns_fine}, 1, 0, [&](aether::expected<std::vector<aether::event>> r) {
    int answered = 0;
    for (const auto& a : stuck) answered += a.count.load();
    stuck_answered_before_fine = answered;
    fine.ok = r.has_value();
    fine.right = r && pair_of(*r, 0);
    if (!r) fine.code = static_cast<int>(r.error().code());
    fine.count.fetch_add(1);
  });
  AETHER_EVENTUALLY(fine.count.load() == 1, 60s);
  const auto took = std::chrono::steady_clock::now() - started;
  MESSAGE("the read of the fine stream took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                              << " ms with " << stuck_reads << " reads of the paused one waiting");
  CHECK(fine.right.load());
  // A store whose readers wait on the paused leader answers it only after
  // some of those time out (5 s each); here none has yet.
  CHECK(stuck_answered_before_fine.load() == 0);
  CHECK(took < 2500ms); // half a get's timeout

  // Past their gets' timeout (5 s) the paused reads fail; a new leader may
  // be elected meanwhile. Then the old one resumes. Each read answered the
  // history, or a typed error, never a wrong history.
  std::this_thread::sleep_for(6s);
  cluster.server(*leader_stuck).resume();
  AETHER_EVENTUALLY(std::all_of(stuck.begin(), stuck.end(), [](const answer& a) { return a.count.load() > 0; }), 60s);
  int failed = 0;
  for (int i = 0; i < stuck_reads; ++i) {
    const auto& a = stuck[static_cast<std::size_t>(i)];
    REQUIRE(a.count.load() == 1);
    if (a.ok.load()) {
      REQUIRE_MESSAGE(a.right.load(), "actor " << i << " read a wrong history");
    } else {
      ++failed;
      const auto code = a.code.load();
      REQUIRE_MESSAGE((code == static_cast<int>(errc::timeout) || code == static_cast<int>(errc::unavailable)),
                      "actor " << i << ": " << code);
    }
  }
  MESSAGE(failed << " of " << stuck_reads << " reads of the paused stream failed with timeout or unavailable");
  // After the pause (and the elections it may cause) every history reads whole again.
  aether::expected<std::vector<aether::event>> after = aether::error{errc::unavailable};
  AETHER_EVENTUALLY((after = store->read_wait(actor_id{"h", "3", ns_stuck})).has_value(), 60s);
  CHECK(pair_of(*after, 3));
}

TEST_CASE("a store closing with reads in flight answers each once, shutting_down, without waiting for them") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr int reads = 20; // more than the store's readers, all in flight at once
  std::vector<answer> slow(reads);
  aether::jetstream_store_options o;
  o.ack_timeout = 120s; // a stuck read's request waits this long
  o.readers = 2;
  auto store = test::open_store(conn, o);
  stuck_namespace stuck{conn, *store};
  read_stuck(*store, slow);
  // Each read's get waits at the server at the same time.
  AETHER_EVENTUALLY(stuck.taken() == reads, 30s);
  for (const auto& a : slow) CHECK(a.count.load() == 0);
  const auto started = std::chrono::steady_clock::now();
  store.reset();
  CHECK(std::chrono::steady_clock::now() - started < 60s); // not the requests' 120 s
  for (const auto& a : slow) {
    REQUIRE(a.count.load() == 1);
    CHECK_FALSE(a.ok.load());
    CHECK(a.code.load() == static_cast<int>(errc::shutting_down));
  }
  // The answers that come now reach nobody.
  stuck.answer_all();
  std::this_thread::sleep_for(200ms);
  for (const auto& a : slow) CHECK(a.count.load() == 1);
}

TEST_CASE("a read whose get is answered after its deadline fails timeout once, and the late answer is dropped") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr int reads = 8;
  std::vector<answer> slow(reads);
  aether::jetstream_store_options o;
  o.ack_timeout = 500ms; // a per-actor get waits this long
  auto store = test::open_store(conn, o);
  stuck_namespace stuck{conn, *store};
  read_stuck(*store, slow);
  AETHER_EVENTUALLY(std::all_of(slow.begin(), slow.end(), [](const answer& a) { return a.count.load() > 0; }), 30s);
  CHECK(stuck.taken() == reads);
  stuck.answer_all(); // "not found": a read would take it for the end of a history
  std::this_thread::sleep_for(300ms);
  for (const auto& a : slow) {
    CHECK(a.count.load() == 1);
    CHECK_FALSE(a.ok.load());
    CHECK(a.code.load() == static_cast<int>(errc::timeout));
  }
}

TEST_CASE("reads from a store whose server died answer each once with a typed error") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  auto store = test::open_store(conn);
  write_pair(*store, "fast", 0);
  REQUIRE(pair_of(*store->read_wait(actor_id{"h", "0", "fast"}), 0));
  server.kill();
  constexpr int reads = 10;
  std::vector<answer> answers(reads);
  for (auto& a : answers) read_into(*store, "fast", 0, a);
  AETHER_EVENTUALLY(std::all_of(answers.begin(), answers.end(), [](const answer& a) { return a.count.load() > 0; }),
                    60s);
  for (const auto& a : answers) {
    REQUIRE(a.count.load() == 1);
    REQUIRE_FALSE(a.ok.load());
    const auto code = a.code.load();
    CHECK((code == static_cast<int>(errc::unavailable) || code == static_cast<int>(errc::timeout)));
  }
}

TEST_CASE("a read of a stream no server serves any more fails with a typed error: never an empty history") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  auto store = test::open_store(conn);
  write_pair(*store, "gone", 0);
  REQUIRE(pair_of(*store->read_wait(actor_id{"h", "0", "gone"}), 0)); // the store knows the stream
  REQUIRE(conn->delete_stream(aether::jetstream_event_store::stream_name("gone")));
  auto r = store->read_wait(actor_id{"h", "0", "gone"});
  REQUIRE_FALSE(r.has_value());
  CHECK((r.error().code() == errc::unavailable || r.error().code() == errc::timeout));
}

TEST_CASE("R3: latest_version of a stream whose leader is paused holds up none of a stream led elsewhere") {
  two_leaders t;
  // What the queries answered, declared first: the store closes before they go.
  std::vector<answer> stuck(two_leaders::stuck_reads);
  answer fine;
  std::atomic<int> stuck_answered_before_fine{-1};
  auto store = std::move(t.store);

  t.cluster.server(*t.leader_stuck).pause();
  for (int i = 0; i < two_leaders::stuck_reads; ++i) {
    latest_into(*store, actor_id{"h", std::to_string(i), t.ns_stuck}, 2, stuck[static_cast<std::size_t>(i)]);
  }
  const auto started = std::chrono::steady_clock::now();
  store->latest_version(actor_id{"h", "0", t.ns_fine}, [&](aether::expected<std::uint64_t> v) {
    int answered = 0;
    for (const auto& a : stuck) answered += a.count.load();
    stuck_answered_before_fine = answered;
    fine.ok = v.has_value();
    fine.right = v && *v == 2;
    if (!v) fine.code = static_cast<int>(v.error().code());
    fine.count.fetch_add(1);
  });
  AETHER_EVENTUALLY(fine.count.load() == 1, 60s);
  const auto took = std::chrono::steady_clock::now() - started;
  MESSAGE("latest_version of the fine stream took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms with "
          << two_leaders::stuck_reads << " of the paused one waiting");
  CHECK_MESSAGE(fine.right.load(), "answered " << (fine.ok ? "a wrong version" : "an error ") << fine.code);
  // A store whose readers (4) wait on the paused leader answers it only
  // after some of those time out (5 s each); here none has yet.
  CHECK(stuck_answered_before_fine.load() == 0);
  CHECK(took < 2500ms); // half a get's timeout

  // Past their gets' timeout the paused ones fail, typed; then the leader
  // resumes. None answered a wrong version.
  std::this_thread::sleep_for(6s);
  t.cluster.server(*t.leader_stuck).resume();
  AETHER_EVENTUALLY(all_answered(stuck), 60s);
  int failed = 0;
  for (int i = 0; i < two_leaders::stuck_reads; ++i) {
    const auto& a = stuck[static_cast<std::size_t>(i)];
    REQUIRE(a.count.load() == 1);
    if (a.ok.load()) {
      REQUIRE_MESSAGE(a.right.load(), "actor " << i << ": a wrong version");
    } else {
      ++failed;
      const auto code = a.code.load();
      REQUIRE_MESSAGE((code == static_cast<int>(errc::timeout) || code == static_cast<int>(errc::unavailable)),
                      "actor " << i << ": " << code);
    }
  }
  MESSAGE(failed << " of " << two_leaders::stuck_reads << " queries of the paused stream failed typed");
  // After the pause (and the elections it may cause) the first answer is right.
  aether::expected<std::uint64_t> after = aether::error{errc::unavailable};
  AETHER_EVENTUALLY((after = store->latest_version_wait(actor_id{"h", "3", t.ns_stuck})).has_value(), 60s);
  CHECK(*after == 2);
}

TEST_CASE("latest_version is 0 for an actor without events and the last version of one with events") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  for (const auto layout : {aether::event_layout::per_actor, aether::event_layout::per_write}) {
    const std::string ns = layout == aether::event_layout::per_actor ? "byactor" : "bywrite";
    CAPTURE(ns);
    aether::jetstream_store_options o;
    o.layout = layout;
    auto store = test::open_store(conn, o);
    const actor_id a{"acct", "a", ns};
    CHECK(*store->latest_version_wait(a) == 0); // no stream yet
    REQUIRE(store->append_wait(a, 0, {make_event("noted")}));
    REQUIRE(store->append_wait(a, 1, {make_event("noted"), make_event("noted")}));
    REQUIRE(store->append_wait(a, 3, {make_event("noted")}));
    CHECK(*store->latest_version_wait(a) == 4);
    CHECK(*store->latest_version_wait(actor_id{"acct", "nobody", ns}) == 0);
    // A store that knows nothing of them reads the same.
    auto fresh = test::open_store(test::connect(server.url()), o);
    CHECK(*fresh->latest_version_wait(a) == 4);
    CHECK(*fresh->latest_version_wait(actor_id{"acct", "nobody", ns}) == 0);
    CHECK(test::layout_of(*fresh, ns) == layout);
  }
  auto store = test::open_store(conn);
  CHECK(store->latest_version_wait(actor_id{}).error().code() == errc::invalid_id);
}

TEST_CASE("latest_version from a store whose server died answers each once with a typed error") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  auto store = test::open_store(conn);
  write_pair(*store, "fast", 0);
  REQUIRE(*store->latest_version_wait(actor_id{"h", "0", "fast"}) == 2);
  server.kill();
  std::vector<answer> answers(10);
  for (auto& a : answers) latest_into(*store, actor_id{"h", "0", "fast"}, 2, a);
  AETHER_EVENTUALLY(all_answered(answers), 60s);
  for (const auto& a : answers) {
    REQUIRE(a.count.load() == 1);
    REQUIRE_FALSE(a.ok.load());
    const auto code = a.code.load();
    CHECK((code == static_cast<int>(errc::unavailable) || code == static_cast<int>(errc::timeout)));
  }
}

TEST_CASE("a store closing with version queries in flight answers each once, shutting_down, without waiting") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr int queries = 20; // more than the store's readers, all in flight at once
  std::vector<answer> slow(queries);
  aether::jetstream_store_options o;
  o.readers = 2;
  auto store = test::open_store(conn, o);
  stuck_namespace stuck{conn, *store};
  for (int i = 0; i < queries; ++i) {
    latest_into(*store, actor_id{"s", fmt::format("x{}", i), std::string{stuck_namespace::ns}}, 0,
                slow[static_cast<std::size_t>(i)]);
  }
  // Each query's get waits at the server at the same time.
  AETHER_EVENTUALLY(stuck.taken() == queries, 30s);
  for (const auto& a : slow) CHECK(a.count.load() == 0);
  store.reset();
  for (const auto& a : slow) {
    REQUIRE(a.count.load() == 1);
    CHECK_FALSE(a.ok.load());
    CHECK(a.code.load() == static_cast<int>(errc::shutting_down));
  }
  // The answers that come now reach nobody.
  stuck.answer_all();
  std::this_thread::sleep_for(200ms);
  for (const auto& a : slow) CHECK(a.count.load() == 1);
}

TEST_CASE("a version query whose get nobody answers fails timeout once, and the late answer is dropped") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  std::vector<answer> slow(4);
  auto store = test::open_store(conn);
  stuck_namespace stuck{conn, *store};
  for (std::size_t i = 0; i < slow.size(); ++i) {
    latest_into(*store, actor_id{"s", fmt::format("x{}", i), std::string{stuck_namespace::ns}}, 0, slow[i]);
  }
  AETHER_EVENTUALLY(all_answered(slow), 30s); // a get waits 5 s
  CHECK(stuck.taken() == slow.size());
  stuck.answer_all(); // "not found": version 0, had it come in time
  std::this_thread::sleep_for(300ms);
  for (const auto& a : slow) {
    CHECK(a.count.load() == 1);
    CHECK_FALSE(a.ok.load());
    CHECK(a.code.load() == static_cast<int>(errc::timeout));
  }
}
