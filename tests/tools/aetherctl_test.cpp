// aetherctl run as a child process against a real nats-server holding what
// the libraries wrote: event store appends (a damaged write among them),
// durable bus subscribers, a cluster of nodes. Every read command leaves the
// streams and their consumers as they were.

#include <aether/cluster/node.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/json.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include "support/child_process.hpp"
#include "support/eventually.hpp"
#include "support/nats_connection.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::testing::child_process;
using aether::testing::connect;

namespace {

struct run_result {
  int code = -1;
  std::string out;
  std::vector<std::string> lines;
  std::string err;
};

std::string temp_path(std::string_view what) {
  static std::atomic<int> n{0};
  const char* dir = std::getenv("TMPDIR");
  return fmt::format("{}/aetherctl-test-{}-{}-{}", dir != nullptr ? dir : "/tmp", getpid(), what, n++);
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Runs aetherctl with `args` (stdin a pipe, no terminal); its stderr goes to a file.
run_result run(std::vector<std::string> args) {
  const auto err = temp_path("err");
  std::vector<std::string> argv{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$AETHERCTL_ERR\"", AETHERCTL};
  argv.insert(argv.end(), args.begin(), args.end());
  ::setenv("AETHERCTL_ERR", err.c_str(), 1);
  child_process p{argv};
  p.close_input();
  auto lines = p.rest(std::chrono::steady_clock::now() + 60s);
  REQUIRE(lines);
  const auto status = p.wait();
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.lines = *lines;
  for (const auto& l : r.lines) r.out += l + "\n";
  r.err = read_file(err);
  std::remove(err.c_str());
  return r;
}

/// Bad input: exit code 2 and one line on stderr naming what is wrong.
void check_bad_input(const std::vector<std::string>& args, std::string_view names) {
  CAPTURE(fmt::format("{}", fmt::join(args, " ")));
  const auto r = run(args);
  CAPTURE(r.err);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.rfind("aetherctl: ", 0) == 0);
  CHECK(r.err.find(names) != std::string::npos);
}

aether::event make_event(std::string type, std::string data) {
  aether::event e;
  e.type = std::move(type);
  e.data = std::move(data);
  return e;
}

/// What a read must leave alone: a stream's state and its consumers' names.
std::string stream_state(aether::nats::connection& conn, const std::string& stream) {
  auto info = conn.request("$JS.API.STREAM.INFO." + stream, "", 5s);
  REQUIRE(info);
  auto consumers = conn.request("$JS.API.CONSUMER.NAMES." + stream, "", 5s);
  REQUIRE(consumers);
  // The stream's state object (messages, bytes, sequences, consumer count), not the answer's own time.
  const auto state = info->data.find("\"state\":{");
  REQUIRE(state != std::string::npos);
  const auto end = info->data.find('}', state);
  REQUIRE(end != std::string::npos);
  return info->data.substr(state, end - state) + " " + consumers->data;
}

template <class T>
T parse(const std::string& text) {
  auto v = aether::json::decode<T>(text);
  REQUIRE_MESSAGE(v, (v ? "" : v.error().to_string() + " in " + text));
  return std::move(*v);
}

// The JSON documents aetherctl prints, as far as the tests read them.
struct event_out {
  std::string actor;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
  std::string time;
  std::int64_t timestamp_ns = 0;
  std::string type;
  aether::json::raw data;
};
AETHER_JSON_FIELDS(event_out, actor, version, sequence, time, timestamp_ns, type, data)

struct unread_out {
  std::string kind;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
  std::string reason;
};
AETHER_JSON_FIELDS(unread_out, kind, version, sequence, reason)

struct history_out {
  std::string actor;
  std::vector<event_out> events;
  std::vector<unread_out> unread;
  std::optional<std::uint64_t> next_from;
};
AETHER_JSON_FIELDS(history_out, actor, events, unread, next_from)

struct namespace_out {
  std::string ns;
  std::string stream;
  std::uint64_t messages = 0;
};
AETHER_JSON_FIELDS(namespace_out, ns, stream, messages)
struct namespaces_out {
  std::vector<namespace_out> namespaces;
};
AETHER_JSON_FIELDS(namespaces_out, namespaces)

struct durable_out {
  std::string ns;
  std::string name;
  std::uint64_t acknowledged = 0;
  std::uint64_t next = 0;
  std::uint64_t lag = 0;
  bool held = false;
};
AETHER_JSON_FIELDS(durable_out, ns, name, acknowledged, next, lag, held)
struct durables_out {
  std::vector<durable_out> durables;
};
AETHER_JSON_FIELDS(durables_out, durables)
struct reset_out {
  durable_out before;
  durable_out after;
};
AETHER_JSON_FIELDS(reset_out, before, after)

struct member_out {
  std::string node;
  std::uint64_t incarnation = 0;
};
AETHER_JSON_FIELDS(member_out, node, incarnation)
struct status_member_out {
  std::string node;
  std::uint64_t incarnation = 0;
  std::string status;
  bool heard = false;
  std::uint32_t shards = 0;
};
AETHER_JSON_FIELDS(status_member_out, node, incarnation, status, heard, shards)
struct status_out {
  std::string cluster;
  std::vector<status_member_out> members;
  std::optional<member_out> leader;
  std::uint64_t term = 0;
  std::uint64_t map_epoch = 0;
  std::uint32_t shard_count = 0;
};
AETHER_JSON_FIELDS(status_out, cluster, members, leader, term, map_epoch, shard_count)
struct shard_out {
  std::uint32_t shard = 0;
  std::optional<member_out> owner;
};
AETHER_JSON_FIELDS(shard_out, shard, owner)
struct shards_out {
  std::uint64_t map_epoch = 0;
  std::uint32_t shard_count = 0;
  std::vector<shard_out> shards;
};
AETHER_JSON_FIELDS(shards_out, map_epoch, shard_count, shards)

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const std::time_t s = ns / 1'000'000'000;
  std::tm tm{};
  gmtime_r(&s, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ns % 1'000'000'000);
}

// An event-sourced counter for `state`.
struct tally_state {
  std::int64_t total = 0;
  std::int64_t adds = 0;
};
AETHER_JSON_FIELDS(tally_state, total, adds)

struct added {
  static constexpr std::string_view type_name = "tally.added";
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(added, n)

struct add_n {
  static constexpr std::string_view type_name = "tally.add";
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(add_n, n)

class tally : public aether::event_sourced_actor<tally_state> {
public:
  tally() {
    apply([](tally_state& s, const added& e) {
      s.total += e.n;
      ++s.adds;
    });
    on([this](const add_n& a, aether::context& ctx) {
      persist_then(
          ctx, [](const tally_state& s) { return s.adds; }, added{a.n});
    });
  }
};

struct state_out {
  std::string actor;
  std::uint64_t version = 0;
  std::string time;
  std::int64_t timestamp_ns = 0;
  std::uint64_t last_version = 0;
  aether::json::raw state;
};
AETHER_JSON_FIELDS(state_out, actor, version, time, timestamp_ns, last_version, state)

} // namespace

TEST_CASE("aetherctl: --help and --version answer with 0, bad input is one line and exit code 2") {
  auto help = run({"--help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("Usage: aetherctl") != std::string::npos);
  CHECK(help.out.find("Exit codes:\n  0  ") != std::string::npos);
  auto version = run({"--version"});
  CHECK(version.code == 0);
  CHECK(version.out.find("aetherctl (aether ") == 0);

  // No server at all (nothing listens on port 1).
  check_bad_input({"--server", "nats://127.0.0.1:1", "namespaces"}, "no NATS server");
  check_bad_input({}, "no command");
  check_bad_input({"frobnicate"}, "unknown command 'frobnicate'");
  check_bad_input({"namespaces", "--frob"}, "unknown option '--frob'");
  check_bad_input({"history"}, "needs 1 argument");
  check_bad_input({"history", "order/o-1"}, "NS/TYPE/KEY");
  check_bad_input({"history", "shop/or der/o-1"}, "actor id");
  check_bad_input({"history", "shop/order/o-1", "--limit", "x"}, "--limit 'x'");
  check_bad_input({"tail", "shop", "--from", "3"}, "--from does not apply");
  check_bad_input({"durables", "reset", "ledger"}, "--to-version");
  check_bad_input({"durables", "reset", "ledger", "--to-time", "yesterday"}, "not a time");

  aether::testing::nats_server server;
  auto conn = connect(server.url());
  const auto url = server.url();
  check_bad_input({"--server", url, "history", "nowhere/order/o-1"}, "unknown namespace 'nowhere'");
  check_bad_input({"--server", url, "durables", "nowhere"}, "unknown namespace 'nowhere'");
  check_bad_input({"--server", url, "tail", "shop..x"}, "namespace pattern");
  check_bad_input({"--server", url, "--cluster", "nope", "status"}, "no cluster named 'nope'");
  check_bad_input({"--server", url, "--cluster", "nope", "shards"}, "no cluster named 'nope'");
  check_bad_input({"--server", url, "durables", "reset", "ledger", "--to-version", "1", "--yes"},
                  "unknown durable 'ledger'");
  // Reading wrote nothing: not even the streams it looked for.
  auto streams = conn->request("$JS.API.STREAM.NAMES", "", 5s);
  REQUIRE(streams);
  CHECK(streams->data.find("\"streams\":null") != std::string::npos);
}

TEST_CASE("aetherctl history: an actor's events paged, a damaged write shown as such, nothing written") {
  aether::testing::nats_server server;
  const auto url = server.url();
  auto conn = connect(url);
  auto store = aether::jetstream_event_store::open(conn).value();
  const actor_id a{"order", "o-1", "shop"};
  // 24 writes (more than a read walks by subject: the rest comes through a
  // consumer), one of them two events, then a damaged write at version 26.
  REQUIRE(store->append_wait(a, 0, {make_event("order.placed", R"({"total":1250})")}));
  REQUIRE(store->append_wait(a, 1, {make_event("order.line", R"({"n":1})"), make_event("order.line", R"({"n":2})")}));
  for (std::uint64_t v = 3; v < 25; ++v) {
    auto r = store->append_wait(a, v, {make_event("order.paid", fmt::format(R"({{"v":{}}})", v + 1))});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  }
  // The damaged write goes where the store's next write would: beside the
  // last one, on the subject of version 26 when each write has its own.
  const auto stream = aether::jetstream_event_store::stream_name("shop");
  auto last_write = conn->direct_get(stream, 24);
  REQUIRE(last_write);
  auto subject = last_write->subject;
  if (subject.ends_with(".25")) subject = subject.substr(0, subject.size() - 3) + ".26";
  const aether::nats::header last[] = {{"Aether-Last-Version", "26"}};
  const auto damaged = conn->stream_publish(subject, "{not json", last);
  REQUIRE(damaged);
  const auto before = stream_state(*conn, stream);

  auto all = run({"--server", url, "--json", "history", "shop/order/o-1", "--limit", "1000"});
  REQUIRE_MESSAGE(all.code == 0, all.err);
  REQUIRE(all.lines.size() == 1);
  auto h = parse<history_out>(all.lines[0]);
  CHECK(h.actor == "shop/order/o-1");
  REQUIRE(h.events.size() == 25);
  for (std::size_t i = 0; i < h.events.size(); ++i) CHECK(h.events[i].version == i + 1);
  CHECK(h.events[0].type == "order.placed");
  CHECK(h.events[0].data.text == R"({"total":1250})");
  CHECK(h.events[0].time.size() == 27);
  CHECK(h.events[2].sequence == h.events[1].sequence); // one write, two events
  CAPTURE(all.lines[0]);
  REQUIRE(h.unread.size() == 1);
  CHECK(h.unread[0].kind == "undecodable");
  CHECK((h.unread[0].version == 26 || h.unread[0].version == 0)); // what it claims, if anything
  CHECK(h.unread[0].sequence == *damaged);
  CHECK_FALSE(h.next_from);

  // A page: three events from version 5, and where the next page starts.
  auto page = run({"--server", url, "history", "shop/order/o-1", "--from", "5", "--limit", "3", "--json"});
  REQUIRE(page.code == 0);
  auto p = parse<history_out>(page.lines.at(0));
  REQUIRE(p.events.size() == 3);
  CHECK(p.events[0].version == 5);
  CHECK(p.events[2].version == 7);
  CHECK(p.next_from == std::optional<std::uint64_t>{8});

  // The table: the damaged write has its row.
  auto table = run({"--server", url, "history", "shop/order/o-1", "--from", "20"});
  REQUIRE(table.code == 0);
  CHECK(table.out.find("<undecodable>") != std::string::npos);
  CHECK(table.out.find("order.paid") != std::string::npos);
  auto first = run({"--server", url, "history", "shop/order/o-1", "--limit", "4"});
  REQUIRE(first.code == 0);
  CHECK(first.out.find("order.placed") != std::string::npos);
  CHECK(first.out.find("--from 5") != std::string::npos);

  // An actor with no events in a namespace that exists: an empty history.
  auto none = run({"--server", url, "--json", "history", "shop/order/none"});
  REQUIRE(none.code == 0);
  CHECK(parse<history_out>(none.lines.at(0)).events.empty());

  CHECK(stream_state(*conn, stream) == before);
}

TEST_CASE("aetherctl namespaces, durables and durables reset") {
  aether::testing::nats_server server;
  const auto url = server.url();
  auto conn = connect(url);
  auto store = aether::jetstream_event_store::open(conn).value();
  const actor_id a{"order", "o-1", "shop"};
  std::vector<std::chrono::system_clock::time_point> before_write;
  for (std::uint64_t v = 0; v < 6; ++v) {
    before_write.push_back(std::chrono::system_clock::now());
    std::this_thread::sleep_for(20ms);
    REQUIRE(store->append_wait(a, v, {make_event("order.paid", "{}")}));
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(store->append_wait(actor_id{"invoice", "i-1", "acme.billing"}, 0, {make_event("invoice.sent", "{}")}));

  auto ns = run({"--server", url, "namespaces", "--json"});
  REQUIRE(ns.code == 0);
  auto n = parse<namespaces_out>(ns.lines.at(0));
  REQUIRE(n.namespaces.size() == 2);
  CHECK(n.namespaces[0].ns == "acme.billing");
  CHECK(n.namespaces[0].stream == "acme__billing-events");
  CHECK(n.namespaces[1].ns == "shop");
  CHECK(n.namespaces[1].messages == 6);
  auto ns_table = run({"--server", url, "namespaces"});
  CHECK(ns_table.out.find("acme.billing") != std::string::npos);

  // A durable subscriber that acknowledged the first four events, then ended.
  aether::thread_pool_executor ex{1, 1};
  auto bus = aether::nats_event_bus::open(ex, conn).value();
  std::atomic<int> got{0};
  std::atomic<std::uint64_t> first_sequence{0};
  aether::subscribe_options durable;
  durable.durable = "ledger";
  durable.buffer = 1;
  {
    std::atomic<bool> release{false};
    auto sub = bus->subscribe(
                      "shop", {},
                      [&](const aether::event&) {
                        if (++got == 4) {
                          while (!release) std::this_thread::sleep_for(1ms);
                        }
                      },
                      durable)
                   .value();
    AETHER_EVENTUALLY(got == 4, 10s);
    // Held: listed as such, and a reset is refused.
    auto held = run({"--server", url, "durables", "--json"});
    REQUIRE(held.code == 0);
    auto d = parse<durables_out>(held.lines.at(0));
    REQUIRE(d.durables.size() == 1);
    CHECK(d.durables[0].held);
    auto refused = run({"--server", url, "durables", "reset", "ledger", "--to-version", "1", "--yes"});
    CHECK(refused.code == 1);
    CHECK(refused.err.find("held by a subscriber") != std::string::npos);
    release = true;
    sub.unsubscribe();
  }
  const auto stream = aether::jetstream_event_store::stream_name("shop");
  const auto acked = [&] {
    auto c = conn->consumer(stream, "ledger");
    return c ? c->ack_floor : 0;
  };
  AETHER_EVENTUALLY(acked() >= 4, 10s);
  const auto floor = acked();
  const auto before = stream_state(*conn, stream);

  auto listed = run({"--server", url, "--json", "durables", "shop"});
  REQUIRE_MESSAGE(listed.code == 0, listed.err);
  auto d = parse<durables_out>(listed.lines.at(0));
  REQUIRE(d.durables.size() == 1);
  CHECK(d.durables[0].ns == "shop");
  CHECK(d.durables[0].name == "ledger");
  CHECK(d.durables[0].acknowledged == floor);
  CHECK(d.durables[0].next == floor + 1);
  CHECK(d.durables[0].lag == 6 - floor);
  CHECK_FALSE(d.durables[0].held);
  auto table = run({"--server", url, "durables"});
  CHECK(table.out.find("ledger") != std::string::npos);
  auto other = run({"--server", url, "--json", "durables", "acme.billing"});
  CHECK(parse<durables_out>(other.lines.at(0)).durables.empty());
  CHECK(stream_state(*conn, stream) == before);

  // Without --yes and without a terminal: refused, nothing changed.
  auto unconfirmed = run({"--server", url, "durables", "reset", "ledger", "--to-version", "2"});
  CHECK(unconfirmed.code == 2);
  CHECK(unconfirmed.err.find("--yes") != std::string::npos);
  CHECK(stream_state(*conn, stream) == before);

  // To a sequence: the next subscriber starts there.
  auto reset = run({"--server", url, "--json", "durables", "reset", "shop/ledger", "--to-version", "2", "--yes"});
  REQUIRE_MESSAGE(reset.code == 0, reset.err);
  auto r = parse<reset_out>(reset.lines.at(0));
  CHECK(r.before.next == floor + 1);
  CHECK(r.after.next == 2);
  CHECK(r.after.lag == 5);
  CHECK(acked() == 1);
  std::vector<std::uint64_t> sequences;
  std::mutex mutex;
  aether::subscribe_options resumed;
  resumed.durable = "ledger";
  auto resume = [&] {
    {
      std::lock_guard lock{mutex};
      sequences.clear();
    }
    return bus
        ->subscribe(
            "shop", {},
            [&](const aether::event& e) {
              std::lock_guard held{mutex};
              sequences.push_back(e.sequence);
            },
            resumed)
        .value();
  };
  {
    auto sub = resume();
    AETHER_EVENTUALLY(([&] {
                        std::lock_guard lock{mutex};
                        return sequences.size() >= 5;
                      }()),
                      10s);
    std::lock_guard lock{mutex};
    CHECK(sequences == std::vector<std::uint64_t>{2, 3, 4, 5, 6});
  }
  AETHER_EVENTUALLY(acked() == 6 && !conn->consumer(stream, "ledger")->bound, 10s);

  // On a terminal (util-linux `script` gives it one) it asks: "n" changes
  // nothing (exit 1), "y" resets.
  const auto on_terminal = [&](const std::string& answer) {
    child_process p{{"/usr/bin/script", "-qec",
                     fmt::format("{} --server {} durables reset ledger --to-version 1", AETHERCTL, url), "/dev/null"}};
    p.write(answer);
    auto out = p.rest(std::chrono::steady_clock::now() + 30s);
    REQUIRE(out);
    const auto status = p.wait();
    std::string text;
    for (const auto& l : *out) text += l + "\n";
    CAPTURE(text);
    CHECK(text.find("Reset durable 'ledger' on namespace 'shop'") != std::string::npos);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(on_terminal("n\n") == 1);
  CHECK(acked() == 6);
  CHECK(on_terminal("y\n") == 0);
  CHECK(acked() == 0);

  // To a time: the first event stored at or after it (the fifth write).
  auto by_time = run({"--server", url, "durables", "reset", "ledger", "--to-time", rfc3339(before_write[4]), "--yes"});
  REQUIRE_MESSAGE(by_time.code == 0, by_time.err);
  CHECK(by_time.out.find("next event at sequence 5") != std::string::npos);
  {
    auto sub = resume();
    AETHER_EVENTUALLY(([&] {
                        std::lock_guard lock{mutex};
                        return sequences.size() >= 2;
                      }()),
                      10s);
    std::lock_guard lock{mutex};
    CHECK(sequences == std::vector<std::uint64_t>{5, 6});
  }
  bus->close();
}

TEST_CASE("aetherctl tail: events as they are stored and published, filtered, until SIGINT") {
  aether::testing::nats_server server;
  const auto url = server.url();
  auto conn = connect(url);
  aether::thread_pool_executor ex{1, 1};
  auto bus = aether::nats_event_bus::open(ex, conn).value();
  aether::jetstream_store_options so;
  so.origin = bus->origin();
  auto store = aether::jetstream_event_store::open(conn, so).value();
  const auto err = temp_path("tail");
  ::setenv("AETHERCTL_ERR", err.c_str(), 1);
  child_process tail{{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$AETHERCTL_ERR\"", AETHERCTL, "--server", url, "--json",
                      "tail", "shop.>", "--type", "order.placed", "--type", "order.paid", "--actor", "order.*"}};
  AETHER_EVENTUALLY(read_file(err).find("tailing") != std::string::npos, 20s);

  const actor_id a{"order", "o-1", "shop.eu"};
  REQUIRE(store->append_wait(a, 0, {make_event("order.placed", R"({"total":5})")}));
  REQUIRE(store->append_wait(a, 1, {make_event("order.noted", "{}")})); // another type
  REQUIRE(store->append_wait(actor_id{"invoice", "i-1", "shop.eu"}, 0, {make_event("order.paid", "{}")})); // actor
  REQUIRE(store->append_wait(actor_id{"order", "o-2", "shop"}, 0, {make_event("order.paid", "{}")}));      // namespace
  aether::event published;
  published.actor = actor_id{"order", "o-3", "shop.us"};
  published.type = "order.paid";
  published.version = 1;
  published.data = R"({"live":true})";
  REQUIRE(bus->publish("shop.us", published));

  // The two that pass the filters, in the order they came (two subscriptions: stored and published).
  std::vector<event_out> got;
  for (int i = 0; i < 2; ++i) {
    auto line = tail.line(std::chrono::steady_clock::now() + 20s);
    REQUIRE(line);
    got.push_back(parse<event_out>(*line));
  }
  std::sort(got.begin(), got.end(), [](const event_out& x, const event_out& y) { return x.actor < y.actor; });
  CHECK(got[0].actor == "shop.eu/order/o-1");
  CHECK(got[0].version == 1);
  CHECK(got[0].type == "order.placed");
  CHECK(got[0].data.text == R"({"total":5})");
  CHECK(got[0].sequence != 0);
  CHECK(got[1].actor == "shop.us/order/o-3");
  CHECK(got[1].type == "order.paid");
  CHECK(got[1].data.text == R"({"live":true})");
  tail.signal(SIGINT);
  const auto status = tail.wait();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto rest = tail.rest(std::chrono::steady_clock::now() + 10s);
  REQUIRE(rest);
  CHECK(rest->empty());
  std::remove(err.c_str());
  bus->close();
}

TEST_CASE("aetherctl status and shards: the members, leader, term and map of a cluster of nodes") {
  aether::testing::nats_server server;
  const auto url = server.url();
  auto config = [&](std::string id) {
    aether::node_config c;
    c.threads = 2;
    c.handle_signals = false;
    c.nats_url = url;
    c.cluster.name = "ctl";
    c.cluster.node_id = std::move(id);
    c.cluster.shards = 16;
    return c;
  };
  aether::node n1{config("n1")};
  aether::node n2{config("n2")};
  const auto both_serve = [](const aether::cluster_snapshot& s) {
    return s.serving && s.map && s.map->owning_members().size() == 2 && s.alive_members().size() == 2;
  };
  REQUIRE(n1.cluster().wait_until(both_serve, 20s));
  REQUIRE(n2.cluster().wait_until(both_serve, 20s));
  auto conn = connect(url);
  const std::string stream = "aether_cluster_ctl";
  const auto before = stream_state(*conn, stream);
  const auto view = n1.cluster().snapshot();

  auto status = run({"--server", url, "--cluster", "ctl", "--json", "status"});
  REQUIRE_MESSAGE(status.code == 0, status.err);
  auto s = parse<status_out>(status.lines.at(0));
  CHECK(s.cluster == "ctl");
  REQUIRE(s.members.size() == 2);
  for (const auto& m : s.members) {
    CAPTURE(m.node);
    CHECK(m.status == "alive");
    CHECK(m.heard);
    CHECK(m.shards == 8);
  }
  CHECK(s.members[0].node != s.members[1].node);
  CHECK(s.members[0].incarnation ==
        (s.members[0].node == "n1" ? view->self.incarnation : n2.cluster().snapshot()->self.incarnation));
  REQUIRE(s.leader);
  CHECK(s.leader->node == view->leader.node);
  CHECK(s.leader->incarnation == view->leader.incarnation);
  CHECK(s.term == view->term);
  CHECK(s.map_epoch == view->epoch());
  CHECK(s.shard_count == 16);
  auto table = run({"--server", url, "--cluster", "ctl", "status"});
  REQUIRE(table.code == 0);
  CHECK(table.out.find("leader " + view->leader.to_string()) != std::string::npos);
  CHECK(table.out.find("n2") != std::string::npos);

  auto shards = run({"--server", url, "--cluster", "ctl", "shards", "--json"});
  REQUIRE_MESSAGE(shards.code == 0, shards.err);
  auto m = parse<shards_out>(shards.lines.at(0));
  CHECK(m.map_epoch == view->epoch());
  REQUIRE(m.shards.size() == 16);
  for (std::uint32_t i = 0; i < 16; ++i) {
    CAPTURE(i);
    CHECK(m.shards[i].shard == i);
    REQUIRE(m.shards[i].owner);
    CHECK(m.shards[i].owner->node == view->map->owner(i).node);
    CHECK(m.shards[i].owner->incarnation == view->map->owner(i).incarnation);
  }
  auto shard_table = run({"--server", url, "--cluster", "ctl", "shards"});
  REQUIRE(shard_table.code == 0);
  CHECK(shard_table.out.find(view->map->owner(0).to_string()) != std::string::npos);
  CHECK(stream_state(*conn, stream) == before);

  // A member that left is shown as such.
  n2.stop();
  REQUIRE(
      n1.cluster().wait_until([](const aether::cluster_snapshot& v) { return v.alive_members().size() == 1; }, 20s));
  auto after = run({"--server", url, "--cluster", "ctl", "--json", "status", "--listen-ms", "300"});
  REQUIRE(after.code == 0);
  auto s2 = parse<status_out>(after.lines.at(0));
  REQUIRE(s2.members.size() == 2);
  for (const auto& mm : s2.members) {
    CAPTURE(mm.node);
    CHECK(mm.status == (mm.node == "n2" ? "left" : "alive"));
  }
}

TEST_CASE("aetherctl state: an actor's state folded to its end, a version or a time, by a node with its type") {
  aether::testing::nats_server server;
  const auto url = server.url();
  aether::node_config c;
  c.threads = 2;
  c.handle_signals = false;
  c.nats_url = url;
  c.cluster.name = "folds";
  c.cluster.node_id = "f1";
  c.cluster.shards = 8;
  aether::node node{c};
  node.register_event_sourced<tally>("tally");
  REQUIRE(node.cluster().wait_until([](const aether::cluster_snapshot& v) { return v.serving; }, 20s));
  const actor_id id{"tally", "t-1", "bank"};
  std::vector<std::chrono::system_clock::time_point> before_add;
  for (std::int64_t n = 1; n <= 4; ++n) {
    before_add.push_back(std::chrono::system_clock::now());
    std::this_thread::sleep_for(20ms);
    auto r = node.ask<std::int64_t>(id, add_n{n * 10}, 10s).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
    std::this_thread::sleep_for(20ms);
  }
  auto conn = connect(url);
  const auto stream = aether::jetstream_event_store::stream_name("bank");
  const auto before = stream_state(*conn, stream);

  auto latest = run({"--server", url, "--json", "state", "bank/tally/t-1"});
  REQUIRE_MESSAGE(latest.code == 0, latest.err);
  auto l = parse<state_out>(latest.lines.at(0));
  CHECK(l.actor == "bank/tally/t-1");
  CHECK(l.version == 4);
  CHECK(l.last_version == 4);
  CHECK(l.state.text == R"({"total":100,"adds":4})");
  auto at2 = run({"--server", url, "--json", "state", "bank/tally/t-1", "--at-version", "2"});
  REQUIRE_MESSAGE(at2.code == 0, at2.err);
  CHECK(parse<state_out>(at2.lines.at(0)).state.text == R"({"total":30,"adds":2})");
  // Before the third add: the first two.
  auto by_time = run({"--server", url, "--json", "state", "bank/tally/t-1", "--at-time", rfc3339(before_add[2])});
  REQUIRE_MESSAGE(by_time.code == 0, by_time.err);
  auto t = parse<state_out>(by_time.lines.at(0));
  CHECK(t.version == 2);
  CHECK(t.state.text == R"({"total":30,"adds":2})");
  auto table = run({"--server", url, "state", "bank/tally/t-1", "--at-version", "1"});
  REQUIRE(table.code == 0);
  CHECK(table.out.find("at version 1 of 4") != std::string::npos);
  CHECK(table.out.find(R"({"total":10,"adds":1})") != std::string::npos);

  check_bad_input({"--server", url, "state", "bank/tally/t-1", "--at-version", "9"}, "beyond_last_version");
  check_bad_input({"--server", url, "state", "bank/nobody/t-1"}, "unknown_type");
  check_bad_input({"--server", url, "state", "bank/tally/t-404"}, "no_events");
  check_bad_input({"--server", url, "state", "nowhere/tally/t-1"}, "unknown namespace 'nowhere'");
  check_bad_input({"--server", url, "state", "bank/tally/t-1", "--at-version", "1", "--at-time", "@1"}, "not both");
  CHECK(stream_state(*conn, stream) == before);
}
