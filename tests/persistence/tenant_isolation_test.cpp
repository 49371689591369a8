// A user whom the server's permissions confine to one namespace tree
// (docs/TENANTS.md): the store, snapshots, bus and event-sourced actors work
// inside it, and everything outside is refused at once with
// permission_denied naming the stream or subject, with nothing written.
#include "bank.hpp"
#include "bus_fixtures.hpp"

// The names the permissions are made from (a private header of the
// persistence library), so the grants follow the code's names.
#include "names.hpp"

#include <aether/cluster/node.hpp>
#include <aether/persistence/snapshot_store.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

using aether::actor_id;
using aether::errc;
using namespace std::chrono_literals;

namespace {

/// What docs/TENANTS.md grants a user confined to the tree rooted at
/// `root`, whose persisted namespaces are `namespaces`.
struct permissions {
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
};

/// The JetStream API a client of stream `stream` uses: its information,
/// creation and reads, its consumers, their acknowledgements and flow control.
void grant_stream(permissions& p, std::string_view stream) {
  for (const auto* api :
       {"STREAM.INFO", "STREAM.CREATE", "STREAM.UPDATE", "STREAM.MSG.GET", "DIRECT.GET", "CONSUMER.CREATE"}) {
    p.publish.push_back(fmt::format("$JS.API.{}.{}", api, stream));
  }
  for (const auto* api :
       {"DIRECT.GET", "CONSUMER.CREATE", "CONSUMER.DURABLE.CREATE", "CONSUMER.INFO", "CONSUMER.DELETE"}) {
    p.publish.push_back(fmt::format("$JS.API.{}.{}.>", api, stream));
  }
  p.publish.push_back(fmt::format("$JS.ACK.{}.>", stream));
  p.publish.push_back(fmt::format("$JS.FC.{}.>", stream));
}

permissions confine(std::string_view root, const std::vector<std::string>& namespaces) {
  permissions p;
  for (const auto& ns : namespaces) {
    p.publish.push_back(aether::detail::store_subjects(ns));
    grant_stream(p, aether::detail::namespace_stream_name(ns));
    const auto bucket = aether::detail::namespace_resource_name(ns, "snapshots");
    grant_stream(p, "KV_" + bucket);
    p.publish.push_back(fmt::format("$KV.{}.>", bucket));
  }
  for (const auto& tail : {std::string{root}, fmt::format("{}.>", root)}) {
    p.publish.push_back(aether::detail::bus_filter("pub", "*", "*", tail));
    p.subscribe.push_back(fmt::format("{}.*.*.*.*.{}", aether::detail::bus_root, tail));
  }
  p.publish.emplace_back("_INBOX.>");
  p.subscribe.emplace_back("_INBOX.>");
  return p;
}

/// What docs/TENANTS.md adds for a node of cluster `cluster`: the cluster's
/// subjects and control stream, and the state queries.
void add_cluster(permissions& p, std::string_view cluster) {
  for (auto* list : {&p.publish, &p.subscribe}) {
    list->push_back(fmt::format("aether_cluster.{}.>", cluster));
    list->emplace_back("aether_ctl.>");
  }
  grant_stream(p, fmt::format("aether_cluster_{}", cluster));
}

std::string quoted_list(const std::vector<std::string>& subjects) {
  std::string out;
  for (const auto& s : subjects) out += fmt::format("{}\"{}\"", out.empty() ? "" : ", ", s);
  return out;
}

std::string server_config(const permissions& p) {
  return fmt::format("authorization {{\n  users = [\n"
                     "    {{ user: admin, password: \"pw-admin\" }}\n"
                     "    {{ user: acme, password: \"pw-acme\", permissions: {{\n"
                     "        publish: {{ allow: [{}] }}\n"
                     "        subscribe: {{ allow: [{}] }} }} }}\n"
                     "  ]\n}}\n",
                     quoted_list(p.publish), quoted_list(p.subscribe));
}

std::shared_ptr<aether::nats::connection> connect_as(const aether::testing::nats_server& server, std::string user,
                                                     std::string password) {
  aether::nats::connect_options o;
  o.url = server.url();
  o.max_reconnects = 0;
  o.security.user = std::move(user);
  o.security.password = std::move(password);
  auto c = aether::nats::connection::connect(o);
  REQUIRE_MESSAGE(c, (c ? "" : c.error().to_string()));
  return *c;
}

/// Messages in a stream; -1 when there is none.
std::int64_t messages_in(aether::nats::connection& admin, const std::string& stream) {
  auto n = admin.stream_message_count(stream);
  if (!n && n.error().code() == errc::not_found) return -1;
  REQUIRE_MESSAGE(n, (n ? "" : n.error().to_string()));
  return static_cast<std::int64_t>(*n);
}

/// Checks a refusal: permission_denied, naming `names`, well before the 5 s
/// a JetStream API request waits for an answer that will never come.
template <class F>
void check_refused(const char* what, std::initializer_list<std::string_view> names, F attempt) {
  CAPTURE(what);
  const auto start = std::chrono::steady_clock::now();
  const aether::expected<void> r = attempt();
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r);
  CHECK_MESSAGE(r.error().code() == errc::permission_denied, r.error().to_string());
  for (const auto name : names)
    CHECK_MESSAGE(r.error().detail().find(name) != std::string::npos, r.error().to_string());
  CHECK(took < 4s);
}

template <class T>
aether::expected<void> as_void(const aether::expected<T>& r) {
  if (!r) return r.error();
  return {};
}

struct bank_node {
  explicit bank_node(std::shared_ptr<aether::persistence> p) : system{config(), pool} {
    aether::register_event_sourced<bank::account>(system, "account", std::move(p));
  }
  ~bank_node() { aether::close_and_join(system, pool); }
  static aether::system_config config() {
    aether::system_config c;
    c.shard_count = 4;
    return c;
  }
  aether::thread_pool_executor pool{2, 4};
  aether::actor_system system;
};

} // namespace

TEST_CASE("a user confined to a namespace tree works inside it and is refused at once outside, nothing written") {
  const std::vector<std::string> mine{"acme", "acme.billing"};
  aether::testing::nats_server server{{.extra_config = server_config(confine("acme", mine))}};
  auto admin = connect_as(server, "admin", "pw-admin");
  auto conn = connect_as(server, "acme", "pw-acme");

  // Outside: another tenant's namespace, and a one-token namespace whose
  // stream name starts like acme's (acme_billing_events).
  auto admin_store = test::open_store(admin);
  aether::kv_snapshot_store admin_snapshots{admin};
  for (const auto* ns : {"globex", "acme_billing"}) {
    REQUIRE(admin_store->append_wait(actor_id{"order", "o-1", ns}, 0, {test::make_event("placed")}));
    REQUIRE(
        admin_snapshots.save_wait(actor_id{"order", "o-1", ns}, aether::snapshot{.version = 1, .state = "{\"n\":1}"}));
  }
  const auto outside_before = [&] {
    std::vector<std::int64_t> counts;
    for (const auto* name : {"globex_events", "acme_billing_events", "KV_globex_snapshots", "KV_acme_billing_snapshots",
                             "initech_events", "KV_initech_snapshots"}) {
      counts.push_back(messages_in(*admin, name));
    }
    return counts;
  };
  const auto before = outside_before();
  CHECK(before == std::vector<std::int64_t>{1, 1, 1, 1, -1, -1});

  aether::thread_pool_executor bus_pool{1, 4};
  auto nats_bus = test::open_bus(bus_pool, conn);
  std::shared_ptr<aether::event_bus> bus = nats_bus;
  auto store = test::open_watched_store(conn, nats_bus);
  auto snapshots = std::make_shared<aether::kv_snapshot_store>(conn);

  // Inside: subscriptions over the tree, a durable one, appends, reads, a
  // publish, snapshots and an event-sourced actor.
  test::collector root_live;
  test::collector tree_live;
  test::collector billing_durable;
  auto root_sub = bus->subscribe("acme", {}, root_live.handler());
  REQUIRE_MESSAGE(root_sub, (root_sub ? "" : root_sub.error().to_string()));
  auto tree_sub = bus->subscribe("acme.>", {}, tree_live.handler());
  REQUIRE_MESSAGE(tree_sub, (tree_sub ? "" : tree_sub.error().to_string()));
  aether::subscribe_options durable;
  durable.durable = "ledger";
  auto durable_sub = bus->subscribe("acme.billing", {}, billing_durable.handler(), durable);
  REQUIRE_MESSAGE(durable_sub, (durable_sub ? "" : durable_sub.error().to_string()));

  const actor_id order{"order", "o-1", "acme"};
  const actor_id invoice{"invoice", "i-1", "acme.billing"};
  auto appended = store->append_wait(order, 0, {test::make_event("placed"), test::make_event("paid")});
  REQUIRE_MESSAGE(appended, (appended ? "" : appended.error().to_string()));
  appended = store->append_wait(invoice, 0, {test::make_event("issued")});
  REQUIRE_MESSAGE(appended, (appended ? "" : appended.error().to_string()));
  auto read = store->read_wait(order);
  REQUIRE_MESSAGE(read, (read ? "" : read.error().to_string()));
  CHECK(read->size() == 2);
  read = store->read_wait(invoice);
  REQUIRE_MESSAGE(read, (read ? "" : read.error().to_string()));
  CHECK(read->size() == 1);
  auto issued = test::bus_event("acme.billing", "invoice", "i-2", "issued");
  issued.version = 1;
  auto published = bus->publish("acme.billing", std::move(issued));
  REQUIRE_MESSAGE(published, (published ? "" : published.error().to_string()));
  CHECK(root_live.wait_for(2));
  CHECK(tree_live.wait_for(2));
  CHECK(billing_durable.wait_for(2));

  auto saved = snapshots->save_wait(order, aether::snapshot{.version = 2, .state = "{\"n\":2}"});
  REQUIRE_MESSAGE(saved, (saved ? "" : saved.error().to_string()));
  auto loaded = snapshots->load_wait(order);
  REQUIRE_MESSAGE(loaded, (loaded ? "" : loaded.error().to_string()));
  REQUIRE(loaded->has_value());
  CHECK((*loaded)->version == 2);

  auto p = std::make_shared<aether::persistence>();
  p->events = store;
  p->snapshots = snapshots;
  const actor_id alice{"account", "alice", "acme.billing"};
  {
    bank_node node{p};
    auto balance = node.system.ask<std::int64_t>(alice, bank::deposit{500}, 20s).get();
    REQUIRE_MESSAGE(balance, (balance ? "" : balance.error().to_string()));
    CHECK(*balance == 500);
  }
  {
    bank_node node{p}; // activated again from the stream
    auto balance = node.system.ask<std::int64_t>(alice, bank::balance{}, 20s).get();
    REQUIRE_MESSAGE(balance, (balance ? "" : balance.error().to_string()));
    CHECK(*balance == 500);
  }

  // Outside: each refused at once, by name.
  const actor_id theirs{"order", "o-1", "globex"};
  const actor_id lookalike{"order", "o-1", "acme_billing"};
  const actor_id fresh{"order", "o-1", "initech"};
  check_refused("append to another tenant's namespace", {"globex_events"},
                [&] { return as_void(store->append_wait(theirs, 1, {test::make_event("forged")})); });
  check_refused("append to a namespace named like one's own", {"acme_billing_events"},
                [&] { return as_void(store->append_wait(lookalike, 1, {test::make_event("forged")})); });
  check_refused("append to a namespace with no stream yet", {"initech_events"},
                [&] { return as_void(store->append_wait(fresh, 0, {test::make_event("forged")})); });
  check_refused("read another tenant's history", {"globex_events"}, [&] { return as_void(store->read_wait(theirs)); });
  check_refused("snapshot in another tenant's bucket", {"globex_snapshots"},
                [&] { return snapshots->save_wait(theirs, aether::snapshot{.version = 9, .state = "{}"}); });
  check_refused("snapshot read from another tenant's bucket", {"globex_snapshots"},
                [&] { return as_void(snapshots->load_wait(theirs)); });
  test::collector stray;
  check_refused("live subscription to another tenant's namespace", {"globex"},
                [&] { return as_void(bus->subscribe("globex", {}, stray.handler())); });
  check_refused("live subscription to every namespace", {"aether_bus"},
                [&] { return as_void(bus->subscribe(">", {}, stray.handler())); });
  check_refused("durable subscription to another tenant's namespace", {"globex_events"},
                [&] { return as_void(bus->subscribe("globex", {}, stray.handler(), durable)); });
  {
    bank_node node{p};
    const auto start = std::chrono::steady_clock::now();
    auto r = node.system.ask<std::int64_t>(actor_id{"account", "mallory", "globex"}, bank::deposit{1}, 20s).get();
    REQUIRE_FALSE(r);
    MESSAGE("activation in another tenant's namespace: ", r.error().to_string());
    CHECK(r.error().code() != errc::timeout);
    CHECK(std::chrono::steady_clock::now() - start < 4s);
  }

  // Nothing outside changed, and inside holds exactly what was written:
  // acme one write of two events; acme.billing one write, one publish and
  // the actor's one deposit.
  CHECK(outside_before() == before);
  CHECK(messages_in(*admin, "acme_events") == 1);
  CHECK(messages_in(*admin, "acme__billing-events") == 3);
  auto theirs_now = admin_store->read_wait(theirs);
  REQUIRE(theirs_now);
  CHECK(theirs_now->size() == 1);
  CHECK(stray.size() == 0);
}

TEST_CASE("a node whose user is confined to its namespaces and its cluster serves them and is refused outside") {
  auto p = confine("acme", {"acme", "acme.billing"});
  add_cluster(p, "acme");
  aether::testing::nats_server server{{.extra_config = server_config(p)}};
  auto admin = connect_as(server, "admin", "pw-admin");
  auto admin_store = test::open_store(admin);
  const actor_id theirs{"account", "mallory", "globex"};
  REQUIRE(admin_store->append_wait(actor_id{"order", "o-1", "globex"}, 0, {test::make_event("placed")}));

  aether::node_config c;
  c.threads = 2;
  c.system.shard_count = 8;
  c.handle_signals = false;
  c.nats_url = server.url();
  c.nats_security.user = "acme";
  c.nats_security.password = "pw-acme";
  c.cluster.name = "acme";
  c.cluster.node_id = "acme-1";
  const actor_id alice{"account", "alice", "acme.billing"};
  {
    aether::node node{c};
    node.register_event_sourced<bank::account>("account");
    auto balance = node.ask<std::int64_t>(alice, bank::deposit{700}, 20s).get();
    REQUIRE_MESSAGE(balance, (balance ? "" : balance.error().to_string()));
    CHECK(*balance == 700);
    // The node's own view of the cluster works under the user: it owns every shard.
    CHECK(node.cluster().wait_until(
        [](const aether::cluster_snapshot& s) { return s.serving && s.owned_shards.size() == s.shard_count; }, 20s));

    const auto start = std::chrono::steady_clock::now();
    auto refused = node.ask<std::int64_t>(theirs, bank::deposit{1}, 20s).get();
    REQUIRE_FALSE(refused);
    MESSAGE("a node's activation in another tenant's namespace: ", refused.error().to_string());
    CHECK(refused.error().code() != errc::timeout);
    CHECK(std::chrono::steady_clock::now() - start < 4s);
  }
  // Stored inside once, nothing outside.
  auto alice_events = admin_store->read_wait(alice);
  REQUIRE_MESSAGE(alice_events, (alice_events ? "" : alice_events.error().to_string()));
  CHECK(alice_events->size() == 1);
  CHECK(messages_in(*admin, "globex_events") == 1);
}

TEST_CASE("a request to a refused subject fails at once naming it, and a refused subscription is reported") {
  aether::testing::nats_server server{
      {.jetstream = false,
       .extra_config = "authorization {\n  users = [ { user: u, password: \"pw-u\", permissions: {\n"
                       "    publish: { allow: [\"open.>\", \"_INBOX.>\"] }\n"
                       "    subscribe: { allow: [\"open.>\", \"_INBOX.>\"] } } } ]\n}\n"}};
  auto conn = connect_as(server, "u", "pw-u");
  auto echo = conn->subscribe("open.echo", [&](const aether::nats::message_view& m) {
    (void)conn->publish(m.reply(), fmt::format("echo {}", m.data()));
  });
  REQUIRE(echo);
  REQUIRE(conn->flush(5s));
  for (int i = 0; i < 3; ++i) {
    auto answer = conn->request("open.echo", "hi", 5s);
    REQUIRE_MESSAGE(answer, (answer ? "" : answer.error().to_string()));
    CHECK(answer->data == "echo hi");
  }
  check_refused("a request to a refused subject", {"closed.thing"},
                [&] { return as_void(conn->request("closed.thing", "", 5s)); });
  const auto start = std::chrono::steady_clock::now();
  auto nobody = conn->request("open.nobody", "", 5s);
  REQUIRE_FALSE(nobody);
  CHECK(nobody.error().code() == errc::not_found);
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  // Still usable after a refusal.
  CHECK(conn->request("open.echo", "again", 5s));
  CHECK(conn->check_permitted("closed.feed"));
  auto refused_sub = conn->subscribe("closed.feed", [](const aether::nats::message_view&) {});
  REQUIRE(refused_sub); // the server refuses it asynchronously
  REQUIRE(conn->flush(5s));
  // Known once the flush returned: the server's error came before its answer.
  auto refused = conn->check_permitted("closed.feed");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::permission_denied);
  CHECK(refused.error().detail().find("Subscription") != std::string::npos);
  CHECK(conn->check_permitted("open.echo"));
}
