// What only the JetStream store has to prove: the fence across connections
// and servers, lost acknowledgements, corrupt bytes, server restarts.
#include "store_fixtures.hpp"
#include "support/eventually.hpp"
#include "support/race_tally.hpp"
#include "support/scale.hpp"

#include <atomic>
#include <barrier>
#include <fmt/format.h>

#include <future>
#include <map>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using test::make_event;

namespace {

using aether::testing::race_tally;
using aether::testing::write_outcome;

/// Two writers, each with its own connection and store, race for one
/// version of an actor per trial (version 1 of a fresh actor, or the next
/// after 1-4 stored events); `setup` writes the histories first, `reader`
/// reads every trial back. Every trial must have one winner, a loser told
/// the winner's version, and the winner's event in the store; each writer
/// must win some trials. A writer that does not answer within the liveness
/// bound fails the test at once.
void race(aether::event_store& left, aether::event_store& right, aether::event_store& setup,
          aether::event_store& reader, const std::string& prefix, std::size_t trials) {
  const std::vector<std::string> names{"left", "right"};
  for (std::size_t t = 0; t < trials; ++t) {
    test::write_history(setup, actor_id{"race", prefix + std::to_string(t)}, test::race_history(t));
  }
  race_tally tally{2};
  std::barrier sync{2};
  std::atomic<bool> stuck{false};
  auto writer = [&](aether::event_store& store, std::size_t side) {
    for (std::size_t t = 0; t < trials && !stuck.load(); ++t) {
      const actor_id a{"race", prefix + std::to_string(t)};
      const auto history = test::race_history(t);
      sync.arrive_and_wait();
      // Shared: a late answer after a failed test must find it alive.
      auto done = std::make_shared<std::promise<aether::expected<aether::append_result>>>();
      auto answer = done->get_future();
      store.append(a, history, {make_event("claimed", test::race_data(names[side]))},
                   [done](aether::expected<aether::append_result> r) { done->set_value(std::move(r)); });
      if (answer.wait_for(60s) != std::future_status::ready) {
        stuck = true; // the other writer stops at its next trial
        sync.arrive_and_drop();
        tally.record(t, side, {});
        return;
      }
      auto r = answer.get();
      write_outcome o;
      if (r) {
        o = {write_outcome::kind::won, r->last_version, {}};
      } else if (r.error().code() == errc::version_conflict) {
        o = {write_outcome::kind::conflict, r.error().value(), r.error().to_string()};
      } else {
        o = {write_outcome::kind::failed, 0, r.error().to_string()};
      }
      tally.record(t, side, std::move(o));
    }
    sync.arrive_and_drop();
  };
  std::thread a{writer, std::ref(left), 0};
  std::thread b{writer, std::ref(right), 1};
  a.join();
  b.join();
  REQUIRE_MESSAGE(!stuck.load(),
                  "a writer did not answer within 60 s: " << fmt::format("{}", fmt::join(tally.problems(), "; ")));
  for (std::size_t t = 0; t < trials; ++t) {
    tally.expect_version(t, test::race_history(t) + 1);
    tally.stored(
        t, test::stored_writer(reader, actor_id{"race", prefix + std::to_string(t)}, test::race_history(t) + 1, names));
  }
  const auto broken = tally.problems();
  CHECK_MESSAGE(broken.empty(), fmt::format("{}", fmt::join(broken, "; ")));
  CHECK(tally.trials() == trials);
  CHECK_MESSAGE(tally.every_writer_won(), tally.summary()); // the race is real
  MESSAGE(tally.summary());
}

} // namespace

TEST_CASE("two connections racing for the same versions of an R1 stream: one winner, the loser told its version") {
  aether::testing::nats_server server;
  auto left = test::open_store(test::connect(server.url()));
  auto right = test::open_store(test::connect(server.url()));
  race(*left, *right, *left, *right, "r1-", static_cast<std::size_t>(aether::testing::scaled(200)));
}

TEST_CASE("writers on different servers of a cluster racing on an R3 stream: one winner, the loser told its "
          "version") {
  aether::testing::nats_cluster cluster{3};
  aether::jetstream_store_options o;
  o.replicas = 3;
  auto left = test::open_store(test::connect(cluster.server(0).url()), o);
  auto right = test::open_store(test::connect(cluster.server(1).url()), o);
  REQUIRE(left->prepare("default"));
  // Histories written and every trial read back through the third server.
  auto third = test::open_store(test::connect(cluster.server(2).url()), o);
  race(*left, *right, *third, *third, "r3-", static_cast<std::size_t>(aether::testing::scaled(200)));
}

TEST_CASE("the latest version read right after a write on another server of a cluster is never behind it") {
  aether::testing::nats_cluster cluster{3};
  aether::jetstream_store_options o;
  o.replicas = 3;
  std::vector<std::shared_ptr<aether::jetstream_event_store>> stores;
  for (std::size_t i = 0; i < 3; ++i) stores.push_back(test::open_store(test::connect(cluster.server(i).url()), o));
  REQUIRE(stores[0]->prepare("default"));
  const int trials = aether::testing::scaled(150);
  std::vector<std::string> behind;
  for (int t = 0; t < trials; ++t) {
    const actor_id a{"latest", "r3-" + std::to_string(t)};
    auto& writer = *stores[static_cast<std::size_t>(t) % 3];
    auto& reader = *stores[static_cast<std::size_t>(t + 1) % 3];
    auto w = writer.append_wait(a, 0, {make_event("opened"), make_event("deposited")});
    REQUIRE_MESSAGE(w, (w ? "" : w.error().to_string()));
    auto latest = reader.latest_version_wait(a);
    REQUIRE_MESSAGE(latest, (latest ? "" : latest.error().to_string()));
    if (*latest != 2) behind.push_back(fmt::format("{}: {}", a.to_string(), *latest));
  }
  CHECK_MESSAGE(behind.empty(), fmt::format("{}", fmt::join(behind, "; ")));
}

TEST_CASE("on an R3 stream an append behind or past the current version is refused on every server") {
  aether::testing::nats_cluster cluster{3};
  aether::jetstream_store_options o;
  o.replicas = 3;
  std::vector<std::shared_ptr<aether::jetstream_event_store>> stores;
  for (std::size_t i = 0; i < 3; ++i) stores.push_back(test::open_store(test::connect(cluster.server(i).url()), o));
  REQUIRE(stores[0]->prepare("default"));
  const int trials = aether::testing::scaled(20);
  for (int t = 0; t < trials; ++t) {
    const actor_id a{"stray", "r3-" + std::to_string(t)};
    auto& writer = *stores[static_cast<std::size_t>(t) % 3];
    auto& other = *stores[static_cast<std::size_t>(t + 1) % 3];
    REQUIRE(writer.append_wait(a, 0, {make_event("opened"), make_event("deposited")}));
    for (const std::uint64_t wrong : {1, 3}) {
      CAPTURE(t);
      CAPTURE(wrong);
      auto r = other.append_wait(a, wrong, {make_event("deposited", R"({"stray":true})")});
      REQUIRE_FALSE(r);
      CHECK(r.error().code() == errc::version_conflict);
      CHECK(r.error().value() == 2);
    }
    REQUIRE(other.append_wait(a, 2, {make_event("closed")}));
    auto events = stores[static_cast<std::size_t>(t + 2) % 3]->read_wait(a);
    REQUIRE(events);
    REQUIRE(events->size() == 3);
    CHECK((*events)[1].data == "{}");
    CHECK((*events)[2].type == "closed");
  }
}

TEST_CASE("an actor appending after the version it read or wrote pays no version check") {
  aether::testing::nats_server server;
  auto writer = test::open_store(test::connect(server.url()));
  const actor_id a{"account", "own-path"};
  REQUIRE(writer->append_wait(a, 0, {make_event("opened")}));
  for (std::uint64_t v = 1; v < 20; ++v) REQUIRE(writer->append_wait(a, v, {make_event("deposited")}));
  CHECK(writer->stats().version_checks == 0);
  // A store that read the history (an activation) appends after it unchecked.
  auto activated = test::open_store(test::connect(server.url()));
  auto events = activated->read_wait(a);
  REQUIRE(events);
  REQUIRE(events->size() == 20);
  REQUIRE(activated->append_wait(a, 20, {make_event("deposited")}));
  REQUIRE(activated->append_wait(a, 21, {make_event("deposited")}));
  CHECK(activated->stats().version_checks == 0);
  // The first writer's version is stale now: the fence refuses it and the
  // conflict tells it the current version, still without a check.
  auto stale = writer->append_wait(a, 20, {make_event("deposited")});
  REQUIRE_FALSE(stale);
  CHECK(stale.error().value() == 22);
  REQUIRE(writer->append_wait(a, 22, {make_event("deposited")}));
  CHECK(writer->stats().version_checks == 0);
  // A version it never saw end the history is checked, once.
  auto inside = writer->append_wait(a, 5, {make_event("deposited")});
  REQUIRE_FALSE(inside);
  CHECK(inside.error().value() == 23);
  CHECK(writer->stats().version_checks == 1);
}

TEST_CASE("a write whose acknowledgement is late is stored once, on R1 it is not sent again on a live connection") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 200ms;
  o.max_attempts = 50; // deadlines pass while the server is paused; none settles it
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "late"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));

  // Messages the server took from clients, counted by the server itself.
  const auto published_before = server.monitor_number("/varz", "in_msgs");
  REQUIRE(published_before);
  server.pause(); // the server takes the bytes but answers nothing
  auto done = std::make_shared<std::promise<aether::expected<aether::append_result>>>();
  store->append(a, 1, {make_event("deposited", "1")},
                [done](aether::expected<aether::append_result> r) { done->set_value(std::move(r)); });
  auto result = done->get_future();
  // No answer from a paused server; meanwhile the store's ack timer fires
  // several times (7.5 of them).
  CHECK(result.wait_for(1500ms) == std::future_status::timeout);
  server.resume();
  auto r = result.get();
  REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  CHECK(r->first_version == 2);
  // The copy sent reached the server on a connection that stayed up: the
  // store waited for its acknowledgement instead of adding copies, and
  // exactly one copy is stored.
  const auto published_after = server.monitor_number("/varz", "in_msgs");
  REQUIRE(published_after);
  CHECK(*published_after - *published_before == 1);
  CHECK(*conn->stream_message_count(aether::jetstream_event_store::stream_name("default")) == 2);
  CHECK(store->read_wait(a)->size() == 2);
}

TEST_CASE("a write is sent again after a reconnect, and stored once") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 300ms;
  o.max_attempts = 100; // it waits through the restart; none settles it
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "reconnect"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
  server.pause(); // the copy sent now is lost with the server
  auto done = std::make_shared<std::promise<aether::expected<aether::append_result>>>();
  store->append(a, 1, {make_event("deposited", "1")},
                [done](aether::expected<aether::append_result> r) { done->set_value(std::move(r)); });
  auto result = done->get_future();
  CHECK(result.wait_for(500ms) == std::future_status::timeout);
  server.restart(); // killed and started again on its store directory
  REQUIRE(result.wait_for(30s) == std::future_status::ready);
  auto r = result.get();
  REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  CHECK(r->first_version == 2);
  CHECK(*conn->stream_message_count(aether::jetstream_event_store::stream_name("default")) == 2);
  CHECK(store->read_wait(a)->size() == 2);
}

TEST_CASE("a write whose outcome is unknown says it may still be stored, and the store then tells which") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 100ms;
  o.max_attempts = 2;
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "unknown"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
  server.pause(); // the write and the read-back that would settle it both go unanswered
  auto lost = make_event("deposited", "2");
  lost.id = "unknown-write";
  auto r = store->append_wait(a, 1, {lost});
  server.resume();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::unavailable);
  CHECK_MESSAGE(r.error().detail().find("may still be stored") != std::string::npos, r.error().to_string());
  // Its bytes were in the paused server's socket: version 2, if there, is that write.
  const auto latest = *store->latest_version_wait(a);
  REQUIRE(latest >= 1);
  REQUIRE(latest <= 2);
  if (latest == 2) CHECK(store->read_wait(a, 2)->front().id == "unknown-write");
  auto again = store->append_wait(a, latest, {make_event("deposited")});
  REQUIRE(again);
  CHECK(again->first_version == latest + 1);
}

TEST_CASE("a write reported as not stored never lands later") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 100ms;
  o.max_attempts = 3;
  auto store = test::open_store(conn, o);
  const actor_id a{"account", "lost"};
  REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
  // The namespace's stream stops taking this actor's writes for a while:
  // the server answers the write with "no responders", never with an
  // acknowledgement, and the read-back finds nothing. (The stream is made again below as the store
  // defines it; the store itself believes it exists all along.)
  aether::nats::stream_config full;
  full.name = aether::jetstream_event_store::stream_name("default");
  full.subjects = {"aether.default.ev.>", "aether.default.pub.>"};
  full.republish_source = "aether.default.ev.>";
  full.republish_destination = "aether.default.stored.>";
  REQUIRE(conn->delete_stream(full.name));
  auto narrow = full; // made anew: it holds another actor's writes only
  narrow.subjects = {"aether.default.ev.other.>"};
  narrow.republish_source = "aether.default.ev.other.>";
  REQUIRE(conn->ensure_stream(narrow));
  auto lost = make_event("deposited", "2");
  lost.id = "lost-write";
  auto r = store->append_wait(a, 1, {lost});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::unavailable);
  CHECK_MESSAGE(r.error().detail().find("after 3 sends and is not stored") != std::string::npos, r.error().to_string());
  // The stream takes writes again (empty: version 1 went with it). A later
  // write on the same connection has gone through, so no copy of the lost
  // one is still on its way, and none landed.
  REQUIRE(conn->delete_stream(full.name));
  REQUIRE(conn->ensure_stream(full));
  REQUIRE(store->append_wait(actor_id{"account", "sentinel"}, 0, {make_event("opened")}));
  CHECK(*store->latest_version_wait(a) == 0);
  CHECK(conn->leader_get_last(full.name, aether::jetstream_event_store::subject(a, 2)).error().code() ==
        errc::not_found);
  CHECK(*conn->stream_message_count(full.name) == 1); // the sentinel alone
}

namespace {

constexpr aether::event_layout both_layouts[] = {aether::event_layout::per_write, aether::event_layout::per_actor};

/// A store whose streams are in `layout`.
std::shared_ptr<aether::jetstream_event_store> open_in(std::shared_ptr<aether::nats::connection> conn,
                                                       aether::event_layout layout) {
  aether::jetstream_store_options o;
  o.layout = layout;
  return test::open_store(std::move(conn), o);
}

/// A namespace per layout, so that both live on one server.
std::string layout_ns(aether::event_layout layout) {
  return layout == aether::event_layout::per_actor ? "peractor" : "perwrite";
}

/// Where a write of `a` starting at version `first` is stored in `layout`.
std::string raw_subject(aether::event_layout layout, const actor_id& a, std::uint64_t first) {
  return layout == aether::event_layout::per_actor ? aether::jetstream_event_store::actor_subject(a)
                                                   : aether::jetstream_event_store::subject(a, first);
}

} // namespace

TEST_CASE("a corrupt stored event stops a read with replay_failed naming actor, version and sequence") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  for (const auto layout : both_layouts) {
    CAPTURE(layout_ns(layout));
    auto store = open_in(conn, layout);
    const actor_id a{"account", "corrupt", layout_ns(layout)};
    REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
    // Someone writes garbage where version 2 belongs.
    const aether::nats::header last[] = {{"Aether-Last-Version", "2"}};
    auto ack = conn->request(raw_subject(layout, a, 2), "{not json", 5s, last);
    REQUIRE(ack);
    auto r = store->read_wait(a);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::replay_failed);
    CHECK(r.error().value() == 2);
    CHECK(r.error().detail().find(a.to_string()) != std::string::npos);
    CHECK(r.error().detail().find("version 2") != std::string::npos);
    CHECK(r.error().detail().find("stream sequence 2") != std::string::npos);
    // What came before is still there, untouched.
    CHECK(store->read_wait(a, 1).error().code() == errc::replay_failed);
    CHECK(*store->latest_version_wait(a) == 2);
  }
}

namespace {

/// Stores `data` on `subject` as a writer with plain NATS would, with no
/// expectation: nothing stops it. Returns its stream sequence.
std::uint64_t write_raw(aether::nats::connection& conn, const std::string& subject, std::string_view data,
                        std::string_view last_version) {
  const aether::nats::header headers[] = {{"Aether-Last-Version", last_version}};
  auto seq = conn.stream_publish(subject, data, headers);
  REQUIRE_MESSAGE(seq, (seq ? "" : seq.error().to_string()));
  return *seq;
}

/// One event as Aether stores it, claiming `version` of `actor`.
std::string raw_event(const actor_id& actor, std::uint64_t version, std::string_view data) {
  return fmt::format(R"([{{"actor":"{}","version":{},"id":"raw-{}","type":"deposited","schema_version":1,)"
                     R"("timestamp_ns":1,"data":{},"metadata":{{}}}}])",
                     actor.to_string(), version, version, data);
}

} // namespace

TEST_CASE("writes stored beside a history by a writer outside the rules are skipped, reported, and never brick the "
          "actor") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  for (const auto layout : both_layouts) {
    auto store = open_in(conn, layout);
    for (const int writes : {3, 30}) { // read by subject only, and on through a consumer
      CAPTURE(writes);
      CAPTURE(layout_ns(layout));
      const actor_id a{"account", fmt::format("stray-{}", writes), layout_ns(layout)};
      REQUIRE(store->append_wait(a, 0, {make_event("opened"), make_event("deposited", R"({"n":2})")}));
      for (std::uint64_t v = 2; v < static_cast<std::uint64_t>(writes); ++v) {
        REQUIRE(store->append_wait(a, v, {make_event("deposited", fmt::format(R"({{"n":{}}})", v + 1))}));
      }
      const auto end = static_cast<std::uint64_t>(writes);
      const auto before = store->stats().skipped_writes;
      // Inside the first write, a second write of version 3, a second write
      // of the last version, and, last of all, one past a gap.
      std::vector<std::uint64_t> strays;
      strays.push_back(write_raw(*conn, raw_subject(layout, a, 2), raw_event(a, 2, "-2"), "2"));
      strays.push_back(write_raw(*conn, raw_subject(layout, a, 3), raw_event(a, 3, "-3"), "3"));
      strays.push_back(write_raw(*conn, raw_subject(layout, a, end), raw_event(a, end, "-8"), fmt::format("{}", end)));
      strays.push_back(
          write_raw(*conn, raw_subject(layout, a, end + 5), raw_event(a, end + 5, "-9"), fmt::format("{}", end + 5)));
      auto check_history = [&](aether::event_store& s, std::uint64_t last) {
        auto events = s.read_wait(a);
        REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
        REQUIRE(events->size() == last);
        for (std::uint64_t v = 1; v <= last; ++v) {
          CHECK((*events)[v - 1].version == v);
          CHECK((*events)[v - 1].data.find('-') == std::string::npos); // never a stray's
        }
      };
      // Every read decides the same way, in this store and another.
      check_history(*store, end);
      auto other = open_in(test::connect(server.url()), layout);
      check_history(*other, end);
      auto report = other->read_report_wait(a);
      REQUIRE(report);
      CHECK(report->events.size() == end);
      CHECK(report->undecodable.empty());
      if (writes > 16 || layout == aether::event_layout::per_actor) {
        // The consumer (and, per actor, the walk) sees every stored write:
        // each stray is reported with where it is, and counted.
        REQUIRE(report->skipped.size() == strays.size());
        for (std::size_t i = 0; i < strays.size(); ++i) CHECK(report->skipped[i].sequence == strays[i]);
        CHECK(report->skipped[3].version == end + 5);
        CHECK(store->stats().skipped_writes == before + strays.size());
      } else {
        CHECK(report->skipped.empty()); // read by subject: the strays' places are never visited
      }
      // The latest version is the one a read ends at, not the last stray's,
      // in a store that read the history and in one that did not.
      CHECK(*other->latest_version_wait(a) == end);
      auto fresh = open_in(test::connect(server.url()), layout);
      CHECK(*fresh->latest_version_wait(a) == end);
      // A writer that knows nothing of the actor is refused behind the end
      // and past it, with the end; after it, it goes on (behind the stray,
      // whose stream sequence it expects per actor).
      for (const auto wrong : {end - 1, end + 5}) {
        auto refused = open_in(test::connect(server.url()), layout)->append_wait(a, wrong, {make_event("x")});
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code() == errc::version_conflict);
        CHECK(refused.error().value() == end);
      }
      auto next = fresh->append_wait(a, end, {make_event("closed")});
      REQUIRE_MESSAGE(next, (next ? "" : next.error().to_string()));
      CHECK(next->first_version == end + 1);
      CHECK(*other->latest_version_wait(a) == end + 1);
      check_history(*other, end + 1);
      // And so does the store that read it, after its own version.
      auto then = store->append_wait(a, end + 1, {make_event("reopened")});
      REQUIRE_MESSAGE(then, (then ? "" : then.error().to_string()));
      CHECK(*open_in(test::connect(server.url()), layout)->latest_version_wait(a) == end + 2);
      check_history(*other, end + 2);
    }
  }
}

TEST_CASE("a read from a snapshot's version leaves nothing out of what comes before it") {
  aether::testing::nats_server server;
  auto store = test::open_store(test::connect(server.url()));
  const actor_id a{"account", "from-snapshot"};
  for (std::uint64_t v = 0; v < 40; ++v) REQUIRE(store->append_wait(a, v, {make_event("deposited")}));
  auto all = store->read_wait(a);
  REQUIRE(all);
  REQUIRE(all->size() == 40);
  // As an activation after a snapshot at version 10 reads: the consumer
  // starts at that write's sequence and passes writes before version 11.
  std::promise<aether::expected<std::vector<aether::event>>> done;
  store->read(a, 11, (*all)[9].sequence, [&](aether::expected<std::vector<aether::event>> r) { done.set_value(r); });
  auto tail = done.get_future().get();
  REQUIRE_MESSAGE(tail, (tail ? "" : tail.error().to_string()));
  REQUIRE(tail->size() == 30);
  CHECK(tail->front().version == 11);
  CHECK(tail->back().version == 40);
  CHECK(store->stats().skipped_writes == 0);
}

TEST_CASE("a reporting read returns the clean events and names each write that does not decode") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  for (const auto layout : both_layouts) {
    auto store = open_in(conn, layout);
    for (const int more : {0, 25}) { // read by subject only, and on through a consumer
      CAPTURE(more);
      CAPTURE(layout_ns(layout));
      const actor_id a{"account", fmt::format("damaged-{}", more), layout_ns(layout)};
      REQUIRE(store->append_wait(a, 0, {make_event("opened")}));
      REQUIRE(store->append_wait(a, 1, {make_event("deposited"), make_event("deposited")}));
      const auto garbage = write_raw(*conn, raw_subject(layout, a, 4), "{not json", "4");
      REQUIRE(store->append_wait(a, 4, {make_event("deposited", R"({"n":5})")}));
      // Valid JSON, but its event claims another version than its place.
      const auto liar = write_raw(*conn, raw_subject(layout, a, 6), raw_event(a, 9, "6"), "6");
      for (std::uint64_t v = 6; v < 7 + static_cast<std::uint64_t>(more); ++v) {
        REQUIRE(store->append_wait(a, v, {make_event("deposited")}));
      }
      const auto last = 7 + static_cast<std::uint64_t>(more);
      auto report = store->read_report_wait(a);
      REQUIRE_MESSAGE(report, (report ? "" : report.error().to_string()));
      std::vector<std::uint64_t> versions;
      for (const auto& e : report->events) versions.push_back(e.version);
      std::vector<std::uint64_t> clean{1, 2, 3, 5};
      for (auto v = std::uint64_t{7}; v <= last; ++v) clean.push_back(v);
      CHECK(versions == clean);
      REQUIRE(report->undecodable.size() == 2);
      CHECK(report->undecodable[0].version == 4);
      CHECK(report->undecodable[0].sequence == garbage);
      CHECK_FALSE(report->undecodable[0].reason.empty());
      CHECK(report->undecodable[1].version == 6);
      CHECK(report->undecodable[1].sequence == liar);
      CHECK(report->undecodable[1].reason.find("version 9") != std::string::npos);
      CHECK(report->skipped.empty());
      // From a later version: only what is asked for.
      auto tail = store->read_report_wait(a, 5);
      REQUIRE(tail);
      CHECK(tail->events.front().version == 5);
      CHECK(tail->undecodable.size() == 1);
      // The strict read still stops at the first damaged write.
      auto strict = store->read_wait(a);
      REQUIRE_FALSE(strict);
      CHECK(strict.error().code() == errc::replay_failed);
      CHECK(strict.error().value() == 4);
    }
  }
}

TEST_CASE("an oversized append is refused before anything is sent") {
  aether::testing::nats_server server;
  auto store = test::open_store(test::connect(server.url()));
  const actor_id a{"account", "big"};
  const std::string huge = "\"" + std::string(2 * 1024 * 1024, 'x') + "\"";
  auto r = store->append_wait(a, 0, {make_event("blob", huge)});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::payload_too_large);
  CHECK(*store->latest_version_wait(a) == 0);
}

TEST_CASE("a server killed and restarted mid-load loses nothing that was acknowledged") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options o;
  o.ack_timeout = 500ms;
  o.max_attempts = 20; // keep trying across the restart
  auto store = test::open_store(conn, o);
  REQUIRE(store->prepare("default"));

  std::mutex mutex;
  std::map<std::string, std::uint64_t> acknowledged; // actor key -> last acknowledged version
  std::atomic<bool> stop{false};
  std::atomic<int> acks{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      const actor_id a{"load", "w" + std::to_string(w)};
      std::uint64_t version = 0;
      while (!stop.load()) {
        auto r = store->append_wait(a, version, {make_event("tick", std::to_string(version + 1))});
        if (r) {
          version = r->last_version;
          acks.fetch_add(1);
          std::lock_guard lock{mutex};
          acknowledged[std::string{a.key()}] = version;
        } else if (r.error().code() == errc::version_conflict) {
          version = r.error().value(); // an unacknowledged write of ours landed after all
        }
      }
    });
  }
  auto wait_for_acks = [&](int n) { AETHER_EVENTUALLY(acks.load() >= n, 60s); };
  wait_for_acks(200);
  server.kill();
  server.restart();
  const int before = acks.load();
  wait_for_acks(before + 200); // reconnected and writing again
  stop = true;
  for (auto& t : writers) t.join();

  for (const auto& [key, version] : acknowledged) {
    auto events = store->read_wait(actor_id{"load", key});
    REQUIRE(events);
    CHECK(events->size() >= version);
    for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == i + 1);
  }
}

TEST_CASE("a long history is read whole: past the writes read by subject a consumer goes on without a gap") {
  aether::testing::nats_server server;
  auto store = test::open_store(test::connect(server.url()));
  for (const std::size_t per_write : {std::size_t{1}, std::size_t{100}}) {
    const actor_id a{"ledger", "long-" + std::to_string(per_write)};
    std::uint64_t version = 0;
    for (int w = 0; w < 60; ++w) {
      std::vector<aether::event> batch;
      for (std::size_t i = 0; i < per_write; ++i) batch.push_back(make_event("entry", std::to_string(version + i + 1)));
      auto r = store->append_wait(a, version, std::move(batch));
      REQUIRE(r);
      version = r->last_version;
    }
    for (const std::uint64_t from : {std::uint64_t{1}, version / 2}) {
      CAPTURE(per_write);
      CAPTURE(from);
      auto events = store->read_wait(a, from);
      REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
      REQUIRE(events->size() == version - from + 1);
      for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == from + i);
    }
  }
}

TEST_CASE("one actor's pipelined appends are stored in order, whichever connection they leave on") {
  aether::testing::nats_server server;
  aether::nats::connect_options quick;
  quick.url = server.url();
  quick.send_asap = true;
  auto store = test::open_store(test::connect(server.url()), {}, *aether::nats::connection::connect(quick));
  const actor_id a{"ledger", "pipelined"};
  constexpr int writes = 200;
  std::atomic<int> acked{0};
  std::promise<void> all;
  for (int w = 0; w < writes; ++w) {
    store->append(a, static_cast<std::uint64_t>(w), {make_event("entry", std::to_string(w + 1))},
                  [&](aether::expected<aether::append_result> r) {
                    CHECK(r);
                    if (acked.fetch_add(1) + 1 == writes) all.set_value();
                  });
  }
  REQUIRE(all.get_future().wait_for(60s) == std::future_status::ready);
  auto events = store->read_wait(a);
  REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
  REQUIRE(events->size() == writes);
  for (std::size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].version == i + 1);
}

TEST_CASE("a writer pipelining appends to an actor its store has not seen yet gets no false conflict") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  constexpr std::uint64_t writes = 20;
  auto pipeline = [](aether::event_store& store, const actor_id& a, std::uint64_t after) {
    std::vector<std::future<aether::expected<aether::append_result>>> answers;
    for (std::uint64_t v = after; v < after + writes; ++v) {
      auto p = std::make_shared<std::promise<aether::expected<aether::append_result>>>();
      answers.push_back(p->get_future());
      store.append(a, v, {make_event("entry", std::to_string(v + 1))},
                   [p](aether::expected<aether::append_result> r) { p->set_value(std::move(r)); });
    }
    for (std::size_t i = 0; i < answers.size(); ++i) {
      auto r = answers[i].get();
      CAPTURE(i);
      REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
      CHECK(r->first_version == after + i + 1);
    }
  };
  auto check_history = [&](const actor_id& a, std::uint64_t last) {
    auto events = test::open_store(test::connect(server.url()))->read_wait(a);
    REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
    REQUIRE(events->size() == last);
    for (std::uint64_t v = 1; v <= last; ++v) CHECK((*events)[v - 1].version == v);
  };
  for (const auto layout :
       {aether::event_layout::automatic, aether::event_layout::per_write, aether::event_layout::per_actor}) {
    const std::string ns = fmt::format("pipe{}", static_cast<int>(layout));
    CAPTURE(ns);
    // A namespace the store has never seen: its stream is set up while the
    // appends wait.
    const actor_id fresh{"ledger", "fresh", ns};
    pipeline(*open_in(test::connect(server.url()), layout), fresh, 0);
    check_history(fresh, writes);
    // An actor with a history written elsewhere: the first append checks
    // its version, the ones pipelined behind it follow it.
    const actor_id known{"ledger", "known", ns};
    REQUIRE(open_in(test::connect(server.url()), layout)->append_wait(known, 0, {make_event("opened")}));
    auto store = open_in(test::connect(server.url()), layout);
    pipeline(*store, known, 1);
    CHECK(store->stats().version_checks == 1);
    check_history(known, writes + 1);
  }
}

TEST_CASE("the connection tells the version of the server it is on, as the server's monitoring does") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  const auto version = conn->server_version();
  REQUIRE_MESSAGE(version, (version ? "" : version.error().to_string()));
  const auto varz = server.monitor("/varz");
  REQUIRE(varz);
  CHECK(varz->find(fmt::format("\"version\": \"{}\"", *version)) != std::string::npos);
}
