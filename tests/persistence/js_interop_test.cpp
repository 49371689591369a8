// Other languages use Aether's histories: a program written with the official
// NATS JavaScript client (tests/js/interop.mjs, npm `nats`, no Aether code)
// reads what the store wrote and checks every field, tails the stream while
// the store writes more, and appends an event following docs/WIRE_FORMAT.md,
// which the store then reads back whole; a second write of the same version
// is refused by the server.
#include "store_fixtures.hpp"
#include "support/child_process.hpp"

#include <aether/runtime/json.hpp>

#include <filesystem>
#include <fstream>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::testing::child_process;

namespace {

struct spec_event {
  std::string id;
  std::uint64_t version = 0;
  std::string type;
  std::uint32_t schema_version = 1;
  std::string timestamp_ns; // beyond 2^53: a string, for JavaScript
  std::string data;         // JSON text
  std::map<std::string, std::string> metadata;
};
AETHER_JSON_FIELDS(spec_event, id, version, type, schema_version, timestamp_ns, data, metadata)

struct spec_actor {
  std::string type;
  std::string key;
  std::vector<spec_event> events;
};
AETHER_JSON_FIELDS(spec_actor, type, key, events)

struct spec_append {
  std::string type;
  std::string key;
  std::uint64_t version = 0;
};
AETHER_JSON_FIELDS(spec_append, type, key, version)

struct tail_spec {
  std::vector<spec_actor> actors;
};
AETHER_JSON_FIELDS(tail_spec, actors)

/// What the JavaScript side says it appended.
struct js_event {
  std::string id;
  std::string type;
  std::uint32_t schema_version = 0;
  std::string timestamp_ns;
  aether::json::raw data;
  std::map<std::string, std::string> metadata;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
};
AETHER_JSON_FIELDS(js_event, id, type, schema_version, timestamp_ns, data, metadata, version, sequence)

/// Appends `events` (ids, times, schema versions and metadata set here) and
/// records them, with their versions, in `into`.
void write(aether::event_store& store, spec_actor& into, const std::string& ns, std::vector<aether::event> events) {
  const actor_id actor{into.type, into.key, ns};
  const auto after = into.events.size();
  auto r = store.append_wait(actor, after, events);
  REQUIRE_MESSAGE(r, (r ? "" : r.error().to_string()));
  auto v = after;
  for (const auto& e : events) {
    into.events.push_back(
        spec_event{e.id, ++v, e.type, e.schema_version, std::to_string(e.timestamp_ns), e.data, e.metadata});
  }
}

aether::event event_of(std::string type, std::string data, std::uint32_t schema, std::int64_t time,
                       std::map<std::string, std::string> metadata = {}) {
  aether::event e;
  e.id = aether::new_event_id();
  e.type = std::move(type);
  e.data = std::move(data);
  e.schema_version = schema;
  e.timestamp_ns = time;
  e.metadata = std::move(metadata);
  return e;
}

/// The whole exchange with the JavaScript program, on a stream in `layout`.
void interop(aether::event_layout layout, const std::string& ns) {
  const std::filesystem::path js_dir{AETHER_JS_DIR};
  REQUIRE_MESSAGE(std::filesystem::exists(js_dir / "node_modules" / "nats" / "package.json"),
                  "the JavaScript client is not installed in " << js_dir.string() << ": run tools/install_deps.sh");
  aether::testing::nats_server server;
  aether::jetstream_store_options options;
  options.layout = layout;
  auto store = test::open_store(test::connect(server.url()), options);
  REQUIRE(store->prepare(ns));

  // Histories of two actors: single events and batches, several schema
  // versions, metadata, nested and escaped data, exact times.
  const std::int64_t t0 = 1'764'245'123'456'789'012; // beyond 2^53
  std::vector<spec_actor> actors{{"account", "a-1", {}}, {"ledger", "L_2", {}}};
  write(*store, actors[0], ns, {event_of("opened", R"({"owner":"Zoë \"Z\" \\ n","limit":-5.25})", 1, t0)});
  write(*store, actors[0], ns,
        {event_of("deposited", R"({"cents":1200,"memo":null,"tags":["a","b"]})", 2, t0 + 1, {{"trace", "t-1"}}),
         event_of("withdrawn", R"([1,2,{"x":true}])", 3, t0 + 2, {{"trace", "t-1"}, {"by", "teller"}})});
  write(*store, actors[0], ns, {event_of("noted", R"("just a string")", 1, t0 + 3)});
  write(*store, actors[1], ns, {event_of("ledger.booked", R"({"n":9007199254740993})", 1, t0 + 4)});

  const auto dir = std::filesystem::temp_directory_path() / ("aether-js-" + aether::new_event_id());
  std::filesystem::create_directories(dir);
  struct cleanup {
    std::filesystem::path p;
    ~cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  } remove_dir{dir};
  const auto spec_file = dir / "spec.json";
  {
    // A field named "namespace" cannot be a C++ member: this object is spelled by hand.
    std::ofstream out{spec_file};
    out << fmt::format(R"({{"namespace":{},"layout":"{}","actors":{},"append":{}}})", aether::json::encode(ns),
                       layout == aether::event_layout::per_actor ? "per-actor" : "per-write",
                       aether::json::encode(actors), aether::json::encode(spec_append{"account", "a-1", 5}));
  }

  child_process node{{AETHER_NODE, "--harmony-json-parse-with-source", (js_dir / "interop.mjs").string(), server.url(),
                      spec_file.string()}};
  auto expect = [&](std::string_view word) {
    auto l = node.line(std::chrono::steady_clock::now() + 60s);
    REQUIRE_MESSAGE(l, "the JavaScript program said nothing more (expected '" << word << "'); it printed '"
                                                                              << node.partial() << "'");
    if (l->starts_with("fail ")) FAIL("the JavaScript program: " << l->substr(5));
    REQUIRE_MESSAGE((l->starts_with(std::string{word} + " ") || *l == word), "expected '" << word << "', got: " << *l);
    return l->substr(std::min(l->size(), word.size() + 1));
  };
  REQUIRE(expect("read") == "5");
  expect("tailing");

  // More events while the JavaScript program tails the stream.
  std::vector<spec_actor> more{{"account", "a-1", {}}, {"ledger", "L_2", {}}};
  {
    spec_actor a = actors[0];
    write(*store, a, ns, {event_of("deposited", R"({"cents":1})", 2, t0 + 10)});
    more[0].events.assign(a.events.begin() + 4, a.events.end());
    spec_actor l = actors[1];
    write(*store, l, ns,
          {event_of("ledger.booked", R"({"n":1})", 1, t0 + 11), event_of("ledger.booked", R"({"n":2})", 1, t0 + 12)});
    more[1].events.assign(l.events.begin() + 1, l.events.end());
  }
  node.write(aether::json::encode(tail_spec{more}) + "\n");
  REQUIRE(expect("tailed") == "3");

  // The JavaScript program appended version 6 of account a-1 (after the 4 written and the 1 tailed): Aether reads it.
  const auto appended = aether::json::decode<js_event>(expect("appended"));
  REQUIRE_MESSAGE(appended, appended.error().to_string());
  CHECK(expect("refused") == "10071");
  CHECK(node.wait(std::chrono::steady_clock::now() + 30s) == std::optional<int>{0}); // exited, status 0

  auto events = store->read_wait(actor_id{"account", "a-1", ns});
  REQUIRE_MESSAGE(events, (events ? "" : events.error().to_string()));
  REQUIRE(events->size() == 6);
  const auto& e = events->back();
  CHECK(e.version == 6);
  CHECK(appended->version == 6);
  CHECK(e.id == appended->id);
  CHECK(e.type == appended->type);
  CHECK(e.schema_version == appended->schema_version);
  CHECK(std::to_string(e.timestamp_ns) == appended->timestamp_ns);
  CHECK(e.data == appended->data.text);
  CHECK(e.metadata == appended->metadata);
  CHECK(e.sequence == appended->sequence);
  CHECK(e.actor == actor_id{"account", "a-1", ns});
  auto latest = store->latest_version_wait(actor_id{"account", "a-1", ns});
  REQUIRE(latest);
  CHECK(*latest == 6);
}

} // namespace

TEST_CASE("a JavaScript program with the official NATS client reads, tails and appends to an actor's history as the "
          "wire format describes, per actor") {
  interop(aether::event_layout::per_actor, "interop");
}

TEST_CASE("a JavaScript program with the official NATS client reads, tails and appends to an actor's history as the "
          "wire format describes, per write") {
  interop(aether::event_layout::per_write, "interop.legacy");
}
