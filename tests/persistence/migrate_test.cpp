// tools/aether-migrate: a per-write stream copied into the per-actor layout
// reads back event for event, keeps the bus's published events and a backup
// of every original message, and --restore puts the originals back.
#include "store_fixtures.hpp"
#include "support/child_process.hpp"

#include <fmt/format.h>

#include <sys/wait.h>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::event_layout;
using test::make_event;

namespace {

struct run_result {
  int status = -1;
  std::vector<std::string> lines;
};

run_result run_migrate(const std::vector<std::string>& extra) {
  std::vector<std::string> args{AETHER_MIGRATE};
  args.insert(args.end(), extra.begin(), extra.end());
  aether::testing::child_process p{args};
  auto lines = p.rest(std::chrono::steady_clock::now() + 60s);
  REQUIRE(lines);
  const auto status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::move(*lines)};
}

std::map<std::string, std::vector<aether::event>> read_all(aether::jetstream_event_store& store,
                                                           const std::vector<actor_id>& actors) {
  std::map<std::string, std::vector<aether::event>> out;
  for (const auto& a : actors) {
    auto events = store.read_wait(a);
    REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
    out[a.to_string()] = std::move(*events);
  }
  return out;
}

void check_same(const std::map<std::string, std::vector<aether::event>>& x,
                const std::map<std::string, std::vector<aether::event>>& y) {
  REQUIRE(x.size() == y.size());
  for (const auto& [name, events] : x) {
    CAPTURE(name);
    const auto& other = y.at(name);
    REQUIRE(events.size() == other.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
      CHECK(events[i].version == other[i].version);
      CHECK(events[i].id == other[i].id);
      CHECK(events[i].type == other[i].type);
      CHECK(events[i].data == other[i].data);
      CHECK(events[i].timestamp_ns == other[i].timestamp_ns);
      CHECK(events[i].metadata == other[i].metadata);
    }
  }
}

} // namespace

TEST_CASE("aether-migrate copies a per-write stream into the per-actor layout, verified, and can put it back") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options per_write;
  per_write.layout = event_layout::per_write;
  const std::string ns = "legacy";
  const auto stream = aether::jetstream_event_store::stream_name(ns);
  std::vector<actor_id> actors;
  std::size_t writes = 0;
  {
    auto old = test::open_store(conn, per_write);
    for (int i = 0; i < 6; ++i) {
      actors.emplace_back("account", fmt::format("a{}", i), ns);
      std::uint64_t v = 0;
      for (int w = 0; w < 3 + i * 5; ++w) { // up to 28 writes: read past the walk by subject
        std::vector<aether::event> batch{make_event("deposited", fmt::format(R"({{"w":{}}})", w))};
        if (w % 4 == 1) batch.push_back(make_event("noted", R"("x")"));
        batch.front().metadata["trace"] = fmt::format("t{}", w);
        const auto n = batch.size();
        REQUIRE(old->append_wait(actors.back(), v, std::move(batch)));
        v += n;
        ++writes;
      }
    }
    // A write beside a history (left out by every read), and an event on the bus.
    const aether::nats::header last[] = {{"Aether-Last-Version", "2"}};
    REQUIRE(conn->stream_publish(aether::jetstream_event_store::subject(actors[5], 2),
                                 fmt::format(R"([{{"actor":"{}","version":2,"id":"stray","type":"x",)"
                                             R"("schema_version":1,"timestamp_ns":1,"data":1,"metadata":{{}}}}])",
                                             actors[5].to_string()),
                                 last));
    REQUIRE(conn->stream_publish(fmt::format("aether_bus.pub.account.a0.1.{}", ns),
                                 R"([{"version":1,"id":"bus-1","type":"told","data":{}}])"));
  }
  const auto original_count = *conn->stream_message_count(stream);
  CHECK(original_count == writes + 2);
  const auto before = read_all(*test::open_store(test::connect(server.url())), actors);

  auto migrated = run_migrate({"--url", server.url(), "--namespace", ns});
  REQUIRE_MESSAGE(migrated.status == 0, fmt::format("{}", fmt::join(migrated.lines, "\n")));
  REQUIRE(migrated.lines.size() == 1);
  CHECK(migrated.lines[0].find(R"("actors":6)") != std::string::npos);
  CHECK(migrated.lines[0].find(R"("skipped":1)") != std::string::npos);
  CHECK(migrated.lines[0].find(R"("published":1)") != std::string::npos);

  auto store = test::open_store(test::connect(server.url()));
  CHECK(test::layout_of(*store, ns) == event_layout::per_actor);
  check_same(before, read_all(*store, actors));
  for (const auto& a : actors) {
    CHECK(conn->direct_get_last(stream, aether::jetstream_event_store::actor_subject(a)));
    CHECK(conn->direct_get_first(stream, aether::jetstream_event_store::subject(a, 1)).error().code() ==
          aether::errc::not_found);
  }
  CHECK(conn->direct_get_last(stream, fmt::format("aether_bus.pub.account.a0.1.{}", ns)));
  CHECK(*conn->stream_message_count(stream + "-backup") == original_count);
  // Writers go on after the copied histories.
  const auto end = before.at(actors[1].to_string()).size();
  REQUIRE(store->append_wait(actors[1], end, {make_event("closed")}));
  CHECK(store->append_wait(actors[1], end - 1, {make_event("late")}).error().code() == aether::errc::version_conflict);

  // Once per-actor, there is nothing to do.
  auto again = run_migrate({"--url", server.url(), "--namespace", ns});
  CHECK(again.status == 0);

  // The backup goes back as it was.
  auto restored = run_migrate({"--url", server.url(), "--namespace", ns, "--restore"});
  REQUIRE_MESSAGE(restored.status == 0, fmt::format("{}", fmt::join(restored.lines, "\n")));
  CHECK(*conn->stream_message_count(stream) == original_count);
  auto back = test::open_store(test::connect(server.url()));
  CHECK(test::layout_of(*back, ns) == event_layout::per_write);
  check_same(before, read_all(*back, actors));

  // Bad arguments: exit code 2; a namespace with no stream: 1.
  CHECK(run_migrate({"--url", server.url()}).status == 2);
  CHECK(run_migrate({"--url", server.url(), "--namespace", "nothing-here"}).status == 1);
}
