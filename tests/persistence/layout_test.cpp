// The layouts of a namespace's stream: chosen at creation from the replicas
// and the server's version, recorded in the stream, read at open; a stream
// in the per-write layout is still read, and one in a layout this build
// does not read is refused by name.
#include "namespace_stream.hpp"
#include "store_fixtures.hpp"

#include <fmt/format.h>

#include <future>
#include <memory>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;
using aether::event_layout;
using test::make_event;
namespace detail = aether::detail;

TEST_CASE("a new stream is per-actor wherever the server checks a subject's sequence atomically") {
  CHECK_FALSE(detail::atomic_subject_check("2.9.10"));
  CHECK_FALSE(detail::atomic_subject_check("2.9.20"));
  CHECK(detail::atomic_subject_check("2.9.21"));
  CHECK(detail::atomic_subject_check("2.9.25-beta.1"));
  CHECK(detail::atomic_subject_check("2.10.0"));
  CHECK(detail::atomic_subject_check("2.11.3"));
  CHECK(detail::atomic_subject_check("3.0.0"));
  CHECK_FALSE(detail::atomic_subject_check("1.9.30"));
  CHECK_FALSE(detail::atomic_subject_check(""));
  CHECK_FALSE(detail::atomic_subject_check("two.nine"));
  CHECK(detail::choose_layout(1, std::nullopt) == detail::stream_layout::per_actor);
  CHECK(detail::choose_layout(1, std::string{"2.9.10"}) == detail::stream_layout::per_actor);
  CHECK(detail::choose_layout(3, std::string{"2.9.10"}) == detail::stream_layout::per_write);
  CHECK(detail::choose_layout(3, std::nullopt) == detail::stream_layout::per_write);
  CHECK(detail::choose_layout(3, std::string{"2.9.21"}) == detail::stream_layout::per_actor);
  CHECK(detail::choose_layout(3, std::string{"2.10.4"}) == detail::stream_layout::per_actor);
}

namespace {

/// The description the server keeps for a stream ("" for none).
std::string description(aether::nats::connection& conn, const std::string& stream) {
  auto info = conn.request(fmt::format("$JS.API.STREAM.INFO.{}", stream), "", 5s);
  REQUIRE(info);
  auto r = aether::json::decode<detail::stream_api::response>(info->data);
  REQUIRE(r);
  REQUIRE(r->config);
  return r->config->description.value_or("");
}

} // namespace

TEST_CASE("not told a layout, a store and the NATS bus choose it from the replicas and the server's version") {
  aether::testing::nats_cluster cluster{3};
  auto conn = test::connect(cluster.server(0).url());
  auto version = conn->server_version();
  REQUIRE(version);
  // R3: per-actor only on servers whose per-subject check is atomic
  // (per-write on this machine's 2.9.10); a per-write stream records no
  // layout, as every stream before layouts were recorded.
  aether::jetstream_store_options r3;
  r3.replicas = 3;
  auto replicated = test::open_store(conn, r3);
  const auto expected_r3 = detail::atomic_subject_check(*version) ? event_layout::per_actor : event_layout::per_write;
  CHECK(test::layout_of(*replicated, "three") == expected_r3);
  CHECK(description(*conn, aether::jetstream_event_store::stream_name("three")) ==
        (expected_r3 == event_layout::per_actor ? "aether events, layout per-actor" : ""));
  // It is written and read in the layout chosen, pipelined before the
  // stream was known.
  const actor_id a{"account", "r3", "three"};
  std::vector<std::future<aether::expected<aether::append_result>>> pending;
  for (std::uint64_t v = 0; v < 5; ++v) {
    auto p = std::make_shared<std::promise<aether::expected<aether::append_result>>>();
    pending.push_back(p->get_future());
    replicated->append(a, v, {make_event("deposited")},
                       [p](aether::expected<aether::append_result> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : pending) {
    auto r = f.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  }
  auto events = replicated->read_wait(a);
  REQUIRE(events);
  CHECK(events->size() == 5);
  // R1 on the same servers: per-actor.
  CHECK(test::layout_of(*test::open_store(conn), "one") == event_layout::per_actor);
  // The NATS bus creates a namespace's stream (for a durable subscriber)
  // through the same call, told no layout.
  detail::namespace_streams bus_streams;
  auto bus_one = bus_streams.ensure(*conn, "bus-one", 1);
  REQUIRE(bus_one);
  CHECK(*bus_one == detail::stream_layout::per_actor);
  auto bus_three = bus_streams.ensure(*conn, "bus-three", 3);
  REQUIRE(bus_three);
  CHECK(*bus_three == detail::choose_layout(3, *version));
}

TEST_CASE("on R1 a store writes one subject per actor, and the server refuses a write that did not follow the last") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options per_actor;
  per_actor.layout = event_layout::per_actor;
  // Not told a layout, a store makes per-actor streams on R1.
  CHECK(test::layout_of(*test::open_store(conn), "plain") == event_layout::per_actor);
  CHECK(description(*conn, aether::jetstream_event_store::stream_name("plain")) == "aether events, layout per-actor");
  auto store = test::open_store(conn, per_actor);
  REQUIRE(test::layout_of(*store, "default") == event_layout::per_actor);
  const auto stream = aether::jetstream_event_store::stream_name("default");
  CHECK(description(*conn, stream) == "aether events, layout per-actor");
  std::vector<actor_id> actors;
  for (int i = 0; i < 3; ++i) actors.emplace_back("account", fmt::format("a{}", i));
  for (std::uint64_t v = 0; v < 10; ++v) {
    for (const auto& a : actors) REQUIRE(store->append_wait(a, v, {make_event("deposited")}));
  }
  for (const auto& a : actors) {
    auto last = conn->direct_get_last(stream, aether::jetstream_event_store::actor_subject(a));
    REQUIRE(last);
    CHECK(last->header("Aether-Last-Version") == std::optional<std::string_view>{"10"});
    // The server keeps the expectation it checked: the latest version is
    // taken from a write that carries it (and follows the one it expected)
    // without reading the history.
    REQUIRE(last->header("Nats-Expected-Last-Subject-Sequence"));
    CHECK(*last->header("Nats-Expected-Last-Subject-Sequence") != "0");
    CHECK(*store->latest_version_wait(a) == 10);
    CHECK(conn->direct_get_last(stream, aether::jetstream_event_store::subject(a, 10)).error().code() ==
          errc::not_found);
  }
  CHECK(*conn->stream_message_count(stream) == 30);
  // A writer outside the store that expects a write other than the actor's
  // last is refused by the server itself, whatever version it claims.
  const auto& a = actors.front();
  auto first = conn->direct_get_first(stream, aether::jetstream_event_store::actor_subject(a));
  REQUIRE(first);
  const auto stale = std::to_string(first->sequence);
  const aether::nats::header headers[] = {{"Nats-Expected-Last-Subject-Sequence", stale}, {"Aether-Last-Version", "2"}};
  auto refused = conn->stream_publish(aether::jetstream_event_store::actor_subject(a), "[]", headers);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::version_conflict);
  auto events = store->read_wait(a);
  REQUIRE(events);
  CHECK(events->size() == 10);
  // Another store, knowing nothing (nor told a layout), reads it and goes on after it.
  auto other = test::open_store(test::connect(server.url()));
  CHECK(test::layout_of(*other, "default") == event_layout::per_actor);
  CHECK(*other->latest_version_wait(a) == 10);
  auto behind = other->append_wait(a, 4, {make_event("late")});
  REQUIRE_FALSE(behind);
  CHECK(behind.error().code() == errc::version_conflict);
  CHECK(behind.error().value() == 10);
  REQUIRE(other->append_wait(a, 10, {make_event("closed"), make_event("archived")}));
  // The first store's knowledge is stale now: the server refuses its write,
  // which is reported as a conflict with the current version.
  auto stale_write = store->append_wait(a, 10, {make_event("lost")});
  REQUIRE_FALSE(stale_write);
  CHECK(stale_write.error().code() == errc::version_conflict);
  CHECK(stale_write.error().value() == 12);
  REQUIRE(store->append_wait(a, 12, {make_event("after")}));
  auto all = other->read_wait(a);
  REQUIRE(all);
  REQUIRE(all->size() == 13);
  for (std::uint64_t v = 1; v <= 13; ++v) CHECK((*all)[v - 1].version == v);
  CHECK((*all)[12].type == "after");
}

TEST_CASE("a stream in the per-write layout is still read and written, and a store that wants per-actor is told to "
          "migrate it") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  aether::jetstream_store_options per_write;
  per_write.layout = event_layout::per_write;
  auto old = test::open_store(conn, per_write);
  CHECK(test::layout_of(*old, "legacy") == event_layout::per_write);
  const actor_id a{"account", "legacy", "legacy"};
  REQUIRE(old->append_wait(a, 0, {make_event("opened"), make_event("deposited")}));
  REQUIRE(old->append_wait(a, 2, {make_event("deposited")}));
  const auto stream = aether::jetstream_event_store::stream_name("legacy");
  CHECK(description(*conn, stream).empty());
  CHECK(conn->direct_get_last(stream, aether::jetstream_event_store::subject(a, 3)));
  // A store choosing layouts by itself keeps the stream's.
  auto store = test::open_store(test::connect(server.url()));
  CHECK(test::layout_of(*store, "legacy") == event_layout::per_write);
  auto events = store->read_wait(a);
  REQUIRE(events);
  CHECK(events->size() == 3);
  REQUIRE(store->append_wait(a, 3, {make_event("closed")}));
  CHECK(conn->direct_get_last(stream, aether::jetstream_event_store::subject(a, 4)));
  CHECK(*old->latest_version_wait(a) == 4);
  // One that wants the per-actor layout refuses it, naming the layout and the command.
  aether::jetstream_store_options per_actor;
  per_actor.layout = event_layout::per_actor;
  auto strict = test::open_store(test::connect(server.url()), per_actor);
  auto refused = strict->layout("legacy");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::invalid_argument);
  CHECK(refused.error().detail().find("per-write") != std::string::npos);
  CHECK(refused.error().detail().find("aether-migrate") != std::string::npos);
  auto read = strict->read_wait(a);
  REQUIRE_FALSE(read);
  CHECK(read.error().code() == errc::invalid_argument);
  auto write = strict->append_wait(a, 4, {make_event("refused")});
  REQUIRE_FALSE(write);
  CHECK(write.error().code() == errc::invalid_argument);
  CHECK(*store->latest_version_wait(a) == 4);
}

TEST_CASE("a stream in a layout this build does not read is refused by name, never misread") {
  aether::testing::nats_server server;
  auto conn = test::connect(server.url());
  const auto stream = aether::jetstream_event_store::stream_name("future");
  const auto body = fmt::format(R"({{"name":"{}","subjects":["aether.future.ev.>"],"storage":"file",)"
                                R"("num_replicas":1,"description":"aether events, layout per-shard"}})",
                                stream);
  auto created = conn->request(fmt::format("$JS.API.STREAM.CREATE.{}", stream), body, 5s);
  REQUIRE(created);
  REQUIRE(created->data.find("\"error\"") == std::string::npos);
  auto store = test::open_store(conn);
  const actor_id a{"account", "a1", "future"};
  for (auto r : {store->layout("future").error(), store->read_wait(a).error(),
                 store->append_wait(a, 0, {make_event("opened")}).error()}) {
    CHECK(r.code() == errc::invalid_argument);
    CHECK_MESSAGE(r.detail().find("per-shard") != std::string::npos, r.to_string());
  }
  CHECK(*conn->stream_message_count(stream) == 0);
}
