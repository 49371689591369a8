#include <aether/aether.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include "node_ops.hpp"
#include "support/env_var.hpp"
#include "support/eventually.hpp"
#include "support/http_client.hpp"
#include "support/nats_server.hpp"
#include "support/prometheus_text.hpp"
#include "support/promtool.hpp"
#include "test_actors.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::testing::body_of;
using aether::testing::env_var;
using aether::testing::http_get;
using aether::testing::raw_http;
using aether::testing::status_of;

using aether::testing::promtool_check;
using aether::testing::sample;

namespace {

struct tally_state {
  std::int64_t n = 0;
};
AETHER_JSON_FIELDS(tally_state, n)
struct counted {
  static constexpr std::string_view type_name = "test.counted";
  std::int64_t by;
};
AETHER_JSON_FIELDS(counted, by)
struct bump {
  std::int64_t by;
};

class tally : public aether::event_sourced_actor<tally_state> {
public:
  tally() {
    apply([](tally_state& s, const counted& e) { s.n += e.by; });
    on([this](const bump& b, aether::context& ctx) {
      persist_then(
          ctx, [](const tally_state& s) { return s.n; }, counted{b.by});
    });
  }
};

aether::node_config with_http() {
  aether::node_config c;
  c.threads = 2;
  c.system.shard_count = 8;
  c.handle_signals = false;
  c.http_address = "127.0.0.1:0";
  return c;
}

/// A cluster view a test sets by hand.
class manual_cluster final : public aether::cluster {
public:
  std::shared_ptr<const aether::cluster_snapshot> snapshot() const override {
    std::lock_guard lock{mutex_};
    return view_;
  }
  aether::cluster_watch watch(std::function<void(const aether::cluster_snapshot&)>) override { return {}; }
  void set(aether::cluster_snapshot s) {
    std::lock_guard lock{mutex_};
    view_ = std::make_shared<const aether::cluster_snapshot>(std::move(s));
  }

private:
  mutable std::mutex mutex_;
  std::shared_ptr<const aether::cluster_snapshot> view_ = std::make_shared<const aether::cluster_snapshot>();
};

} // namespace

TEST_CASE("without an address a node serves no HTTP") {
  auto c = with_http();
  c.http_address.clear();
  aether::node node{c};
  CHECK(node.http_port() == 0);
  // The registry is there all the same.
  CHECK(node.metric_registry().text().find("aether_messages_total") != std::string::npos);
}

TEST_CASE("a node's endpoints: livez, readyz, status and metrics that promtool accepts") {
  auto cfg = with_http();
  cfg.system.measure_handling = true;
  aether::node node{cfg};
  node.register_actor<test::counter>("counter");
  node.register_event_sourced<tally>("tally");
  const auto port = node.http_port();
  REQUIRE(port != 0);

  REQUIRE(node.tell(actor_id{"counter", "secret-key-1"}, test::add{1}));
  REQUIRE(node.tell(actor_id{"counter", "secret-key-2"}, test::add{1}));
  CHECK(node.ask<int>(actor_id{"counter", "secret-key-1"}, test::boom{"on purpose"}, 5s).get().error().code() ==
        aether::errc::handler_failed);
  CHECK(node.ask<int>(actor_id{"nobody", "x"}, test::get{}, 5s).get().error().code() ==
        aether::errc::unknown_actor_type);
  REQUIRE(node.tell(actor_id{"nobody", "x"}, test::add{1})); // a dead letter: no such type
  AETHER_EVENTUALLY(
      sample(node.metric_registry().text(), "aether_dead_letters_by_reason_total{reason=\"unknown_actor_type\"}") == 1,
      10s);
  for (int i = 1; i <= 3; ++i) CHECK(*node.ask<std::int64_t>(actor_id{"tally", "t1"}, bump{2}, 5s).get() == 2 * i);

  auto live = http_get(port, "/livez");
  CHECK(status_of(live) == 200);
  CHECK(status_of(http_get(port, "/readyz")) == 200);

  const auto status = http_get(port, "/status");
  REQUIRE(status_of(status) == 200);
  CHECK(status.find("Content-Type: application/json") != std::string::npos);
  const auto json = body_of(status);
  const auto view = node.cluster().snapshot();
  CHECK(json.find("\"node\":\"" + view->self.node + "\"") != std::string::npos);
  CHECK(json.find("\"incarnation\":" + std::to_string(view->self.incarnation)) != std::string::npos);
  CHECK(json.find("\"serving\":true") != std::string::npos);
  CHECK(json.find("\"status\":\"alive\"") != std::string::npos);
  CHECK(json.find("\"leader\":{\"node\":\"" + view->leader.node + "\"") != std::string::npos);
  CHECK(json.find("\"term\":1,\"map_epoch\":1,\"shard_count\":256,\"owned_shards\":[0,1,2,") != std::string::npos);
  CHECK(json.find("\"active_actors\":{") != std::string::npos);
  CHECK(json.find("\"counter\":2") != std::string::npos);
  CHECK(json.find("\"tally\":1") != std::string::npos);

  // A shard counts a batch's messages after the batch, so a reply can come
  // before its message is counted.
  AETHER_EVENTUALLY(sample(node.metric_registry().text(), "aether_messages_total") >= 9 &&
                        sample(node.metric_registry().text(), "aether_message_handling_seconds_count") >= 9,
                    10s);
  const auto metrics = http_get(port, "/metrics");
  REQUIRE(status_of(metrics) == 200);
  CHECK(metrics.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  const auto text = body_of(metrics);
  std::string said;
  CHECK_MESSAGE(promtool_check(text, said) == 0, said);
  CHECK(sample(text, "aether_actors_active{type=\"counter\"}") == 2);
  CHECK(sample(text, "aether_actor_activations_total{type=\"counter\"}") == 2);
  CHECK(sample(text, "aether_handler_failures_total{type=\"counter\"}") == 1);
  CHECK(sample(text, "aether_dead_letters_by_reason_total{reason=\"unknown_actor_type\"}") == 1);
  CHECK(sample(text, "aether_messages_total") >= 9);
  CHECK(sample(text, "aether_message_handling_seconds_count") >= 9);
  CHECK(sample(text, "aether_persistence_appends_total{namespace=\"default\"}") == 3);
  CHECK(sample(text, "aether_persistence_appended_events_total{namespace=\"default\"}") == 3);
  CHECK(sample(text, "aether_persistence_append_duration_seconds_count{namespace=\"default\"}") == 3);
  CHECK(sample(text, "aether_persistence_replay_duration_seconds_count{namespace=\"default\"}") == 1);
  CHECK(sample(text, "aether_cluster_members{status=\"alive\"}") == 1);
  CHECK(sample(text, "aether_cluster_shards_owned") == 256);
  CHECK(sample(text, "aether_cluster_term") == 1);
  CHECK(sample(text, "aether_cluster_serving") == 1);
  CHECK(sample(text, "aether_cluster_leader") == 1);
  CHECK(sample(text, "aether_mailbox_depth") >= 0);
  // Never labelled by actor key.
  CHECK(text.find("secret-key") == std::string::npos);
  CHECK(text.find("t1") == std::string::npos);
}

TEST_CASE("a node's endpoints survive hostile clients") {
  aether::node node{with_http()};
  const auto port = node.http_port();
  REQUIRE(port != 0);
  auto exchange = [port](const std::string& bytes) {
    raw_http c{port};
    REQUIRE(c.connected());
    c.send(bytes);
    return c.read_all(10s);
  };
  CHECK(status_of(exchange("GET /metrics HTTP/1.1\r\nX: " + std::string(100'000, 'x') + "\r\n\r\n")) == 431);
  CHECK(status_of(exchange("\x01\x02garbage\r\n\r\n")) == 400);
  CHECK(status_of(exchange("POST /metrics HTTP/1.1\r\n\r\n")) == 405);
  CHECK(status_of(http_get(port, "/secrets")) == 404);
  CHECK(status_of(http_get(port, "/metrics/../status")) == 404);
  // Half-sent requests do not hold the endpoints from others.
  std::vector<std::unique_ptr<raw_http>> slow;
  for (int i = 0; i < 6; ++i) {
    slow.push_back(std::make_unique<raw_http>(port));
    slow.back()->send("GET /metr");
  }
  for (int i = 0; i < 3; ++i) CHECK(status_of(http_get(port, "/metrics", 5s)) == 200);
  CHECK(status_of(http_get(port, "/livez", 5s)) == 200);
}

TEST_CASE("readyz says 503 until the node serves its shards, and again when it stops serving") {
  aether::thread_pool_executor pool{2, 9};
  aether::system_config sc;
  sc.shard_count = 8;
  aether::actor_system system{sc, pool};
  aether::node_config cfg = with_http();
  auto ops = aether::node_ops::start(cfg, pool, system);
  REQUIRE(ops);
  const auto port = (*ops)->http_port();
  CHECK(status_of(http_get(port, "/livez")) == 200);
  CHECK(status_of(http_get(port, "/readyz")) == 503); // not joined yet
  CHECK(body_of(http_get(port, "/status")).find("\"serving\":false") != std::string::npos);

  manual_cluster cluster;
  aether::cluster_snapshot s;
  s.cluster = "c";
  s.self = aether::member_id{"n1", 7};
  s.serving = false;
  cluster.set(s);
  (*ops)->attach(cluster, {}, nullptr);
  CHECK(status_of(http_get(port, "/readyz")) == 503); // joined, not serving yet
  s.serving = true;
  s.owned_shards = {1, 3};
  cluster.set(s);
  CHECK(status_of(http_get(port, "/readyz")) == 200);
  CHECK(body_of(http_get(port, "/status")).find("\"owned_shards\":[1,3]") != std::string::npos);
  s.serving = false; // fenced itself
  s.owned_shards.clear();
  cluster.set(s);
  CHECK(status_of(http_get(port, "/readyz")) == 503);
  (*ops)->stop();
  aether::close_and_join(system, pool);
}

TEST_CASE("a node on NATS shows its connections, store and cluster in its metrics") {
  aether::testing::nats_server server;
  auto cfg = with_http();
  cfg.nats_url = server.url();
  cfg.cluster.node_id = "metrics-n1";
  aether::node node{cfg};
  node.register_event_sourced<tally>("tally");
  CHECK(*node.ask<std::int64_t>(actor_id{"tally", "t9"}, bump{5}, 10s).get() == 5);
  const auto port = node.http_port();
  CHECK(status_of(http_get(port, "/readyz")) == 200);
  const auto text = body_of(http_get(port, "/metrics"));
  std::string said;
  CHECK_MESSAGE(promtool_check(text, said) == 0, said);
  CHECK(sample(text, "aether_nats_connected{connection=\"batched\"}") == 1);
  CHECK(sample(text, "aether_nats_connected{connection=\"quick\"}") == 1);
  CHECK(sample(text, "aether_nats_reconnects_total{connection=\"batched\"}") == 0);
  CHECK(sample(text, "aether_nats_out_messages_total{connection=\"batched\"}") > 0);
  CHECK(sample(text, "aether_persistence_appends_total{namespace=\"default\"}") == 1);
  CHECK(sample(text, "aether_cluster_members{status=\"alive\"}") == 1);
  CHECK(sample(text, "aether_cluster_shards_owned") == 256);
  const auto json = body_of(http_get(port, "/status"));
  CHECK(json.find("\"node\":\"metrics-n1\"") != std::string::npos);
}

TEST_CASE("node_config reads AETHER_HTTP_ADDR, AETHER_METRICS_LATENCY and the log variables, naming a bad one") {
  {
    env_var a{"AETHER_HTTP_ADDR", "127.0.0.1:9464"};
    env_var l{"AETHER_METRICS_LATENCY", "1"};
    auto c = aether::node_config::from_env();
    REQUIRE(c);
    CHECK(c->http_address == "127.0.0.1:9464");
    CHECK(c->system.measure_handling);
  }
  {
    auto c = aether::node_config::from_env();
    REQUIRE(c);
    CHECK(c->http_address.empty()); // off unless configured
    CHECK(!c->system.measure_handling);
  }
  for (auto [name, value] :
       {std::pair{"AETHER_HTTP_ADDR", "9464"}, std::pair{"AETHER_HTTP_ADDR", "localhost:9464"},
        std::pair{"AETHER_HTTP_ADDR", "127.0.0.1:70000"}, std::pair{"AETHER_METRICS_LATENCY", "yes"},
        std::pair{"AETHER_LOG", "verbose"}, std::pair{"AETHER_LOG", "WARN"}, std::pair{"AETHER_LOG_FORMAT", "xml"}}) {
    CAPTURE(name);
    CAPTURE(value);
    env_var v{name, value};
    auto c = aether::node_config::from_env();
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == aether::errc::invalid_argument);
    CHECK(c.error().detail().find(std::string{name} + "=") != std::string::npos);
  }
  aether::set_log_level(aether::log_level::warn);
  aether::set_log_format(aether::log_format::text);
}

TEST_CASE("a node that cannot bind its address does not start") {
  aether::node first{with_http()};
  auto cfg = with_http();
  cfg.http_address = "127.0.0.1:" + std::to_string(first.http_port());
  CHECK_THROWS_AS(aether::node{cfg}, aether::startup_error);
}
