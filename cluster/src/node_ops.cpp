#include "node_ops.hpp"

#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace aether {

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  out += '"';
}

http_response text(int status, std::string body) {
  return http_response{status, "text/plain; charset=utf-8", std::move(body)};
}

} // namespace

node_ops::node_ops(const actor_system& system) : system_{system} {}

node_ops::~node_ops() { stop(); }

expected<std::unique_ptr<node_ops>> node_ops::start(const node_config& config, thread_pool_executor& pool,
                                                    const actor_system& system) {
  std::unique_ptr<node_ops> ops{new node_ops{system}};
  auto* self = ops.get();
  ops->registrations_.push_back(ops->registry_.add([self](metric_sink& s) { self->collect_system(s); }));
  ops->registrations_.push_back(ops->registry_.add([self](metric_sink& s) { self->collect_cluster(s); }));
  if (!config.http_address.empty()) {
    http_server_options o;
    o.address = config.http_address;
    auto server = http_server::start(pool, o, [self](std::string_view path) { return self->answer(path); });
    if (!server) return server.error();
    ops->http_ = std::move(*server);
    log_event(log_level::info, "http", "serving /metrics, /livez, /readyz and /status",
              {{"address", config.http_address}, {"port", std::to_string(ops->http_->port())}});
  }
  return ops;
}

void node_ops::attach(aether::cluster& members,
                      std::vector<std::pair<std::string, std::shared_ptr<nats::connection>>> conns,
                      std::shared_ptr<const persistence> stores) {
  const auto now = members.snapshot();
  auto last = std::make_shared<std::set<std::uint32_t>>(now->owned_shards.begin(), now->owned_shards.end());
  watch_ = members.watch([this, last](const cluster_snapshot& s) {
    // Shards this node took over or gave up since its last view: handoffs.
    const std::set<std::uint32_t> owned{s.owned_shards.begin(), s.owned_shards.end()};
    std::uint64_t in = 0;
    std::uint64_t out = 0;
    for (const auto x : owned) in += last->contains(x) ? 0 : 1;
    for (const auto x : *last) out += owned.contains(x) ? 0 : 1;
    shards_in_.fetch_add(in, std::memory_order_relaxed);
    shards_out_.fetch_add(out, std::memory_order_relaxed);
    *last = owned;
  });
  if (stores && stores->metrics) {
    registrations_.push_back(registry_.add([m = stores->metrics](metric_sink& s) { m->collect(s); }));
  }
  registrations_.push_back(registry_.add([conns = std::move(conns)](metric_sink& s) {
    for (const auto& [name, c] : conns) {
      if (!c) continue;
      const auto t = c->counts();
      const std::initializer_list<metric_label> l{{"connection", name}};
      s.gauge("aether_nats_connected", "1 while the NATS connection is up, 0 while it is down or reconnecting.",
              c->connected() ? 1 : 0, l);
      s.counter("aether_nats_reconnects_total", "Reconnections of the NATS connection.",
                static_cast<double>(t.reconnects), l);
      s.counter("aether_nats_in_messages_total", "Messages received on the NATS connection.",
                static_cast<double>(t.in_messages), l);
      s.counter("aether_nats_in_bytes_total", "Payload bytes received on the NATS connection.",
                static_cast<double>(t.in_bytes), l);
      s.counter("aether_nats_out_messages_total", "Messages sent on the NATS connection.",
                static_cast<double>(t.out_messages), l);
      s.counter("aether_nats_out_bytes_total", "Payload bytes sent on the NATS connection.",
                static_cast<double>(t.out_bytes), l);
    }
  }));
  cluster_.store(&members, std::memory_order_release);
}

void node_ops::stop() {
  if (http_) http_->stop();
}

bool node_ops::ready() const {
  auto* c = cluster_.load(std::memory_order_acquire);
  return c != nullptr && c->snapshot()->serving;
}

http_response node_ops::answer(std::string_view path) const {
  if (path == "/livez") return text(200, "ok\n");
  if (path == "/readyz") return ready() ? text(200, "ready\n") : text(503, "not ready\n");
  if (path == "/metrics") {
    return http_response{200, "text/plain; version=0.0.4; charset=utf-8", registry_.text()};
  }
  if (path == "/status") return http_response{200, "application/json", status_json()};
  return text(404, "not found: try /metrics, /livez, /readyz or /status\n");
}

std::string node_ops::status_json() const {
  std::string out = "{";
  auto* c = cluster_.load(std::memory_order_acquire);
  if (c == nullptr) {
    out += "\"serving\":false";
  } else {
    const auto s = c->snapshot();
    out += "\"cluster\":";
    append_json_string(out, s->cluster);
    out += ",\"node\":";
    append_json_string(out, s->self.node);
    fmt::format_to(std::back_inserter(out), ",\"incarnation\":{},\"serving\":{},\"members\":[", s->self.incarnation,
                   s->serving);
    bool first = true;
    for (const auto& m : s->members) {
      if (!first) out += ',';
      first = false;
      out += "{\"node\":";
      append_json_string(out, m.id.node);
      fmt::format_to(std::back_inserter(out), ",\"incarnation\":{},\"status\":", m.id.incarnation);
      append_json_string(out, to_string(m.status));
      out += '}';
    }
    out += "],\"leader\":";
    if (s->leader.empty()) {
      out += "null";
    } else {
      out += "{\"node\":";
      append_json_string(out, s->leader.node);
      fmt::format_to(std::back_inserter(out), ",\"incarnation\":{}}}", s->leader.incarnation);
    }
    fmt::format_to(std::back_inserter(out), ",\"term\":{},\"map_epoch\":{},\"shard_count\":{},\"owned_shards\":[{}]",
                   s->term, s->epoch(), s->shard_count, fmt::join(s->owned_shards, ","));
  }
  out += ",\"active_actors\":{";
  const auto d = system_.detail_metrics();
  bool first = true;
  for (const auto& t : d.types) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, t.type);
    fmt::format_to(std::back_inserter(out), ":{}", t.active);
  }
  out += "}}\n";
  return out;
}

void node_ops::collect_system(metric_sink& s) const {
  const auto m = system_.metrics();
  const auto d = system_.detail_metrics();
  auto n = [](auto v) { return static_cast<double>(v); };
  s.counter("aether_messages_total", "Messages handled by actors.", n(m.messages));
  for (const auto& t : d.types) {
    const std::initializer_list<metric_label> l{{"type", t.type}};
    s.gauge("aether_actors_active", "Actors active now, by actor type.", n(t.active), l);
    s.counter("aether_actor_activations_total", "Actor activations, by actor type.", n(t.activations), l);
    s.counter("aether_actor_passivations_total", "Actor passivations, by actor type.", n(t.passivations), l);
    s.counter("aether_handler_failures_total", "Handlers that threw, by actor type.", n(t.handler_failures), l);
    s.counter("aether_actor_restarts_total", "Actor restarts by supervision, by actor type.", n(t.restarts), l);
  }
  s.counter("aether_dead_letters_total", "Messages nobody could take, all reasons.", n(m.dead_letters));
  for (const auto& [reason, count] : d.dead_letters) {
    s.counter("aether_dead_letters_by_reason_total", "Messages nobody could take, by reason.", n(count),
              {{"reason", to_string(reason)}});
  }
  s.gauge("aether_mailbox_depth", "Messages waiting in the node's mailboxes now.", n(d.mailbox_depth));
  s.counter("aether_mailbox_full_total", "Sends refused by a full mailbox.", n(m.mailbox_full));
  s.counter("aether_ask_timeouts_total", "Asks that got no answer in time.", n(m.ask_timeouts));
  s.counter("aether_late_replies_total", "Replies that came after their ask had timed out or failed.",
            n(m.late_replies));
  if (d.handling) {
    s.histogram("aether_message_handling_seconds", "Time to handle one message (measured when enabled).", *d.handling);
  }
}

void node_ops::collect_cluster(metric_sink& s) const {
  auto* c = cluster_.load(std::memory_order_acquire);
  if (c == nullptr) return;
  const auto v = c->snapshot();
  std::map<std::string_view, std::uint64_t> by_status{{"alive", 0}, {"left", 0}, {"dead", 0}};
  for (const auto& m : v->members) ++by_status[to_string(m.status)];
  for (const auto& [status, count] : by_status) {
    s.gauge("aether_cluster_members", "Members of the cluster as this node knows them, by status.",
            static_cast<double>(count), {{"status", status}});
  }
  s.gauge("aether_cluster_serving", "1 while this node serves its shards.", v->serving ? 1 : 0);
  s.gauge("aether_cluster_leader", "1 while this node leads the cluster.", v->leader == v->self ? 1 : 0);
  s.gauge("aether_cluster_term", "The current leader term.", static_cast<double>(v->term));
  s.gauge("aether_cluster_map_epoch", "The epoch of the newest shard map this node applied.",
          static_cast<double>(v->epoch()));
  s.gauge("aether_cluster_shards", "The cluster's shard count.", static_cast<double>(v->shard_count));
  s.gauge("aether_cluster_shards_owned", "Cluster shards this node serves.",
          static_cast<double>(v->owned_shards.size()));
  s.counter("aether_cluster_shard_handoffs_total", "Cluster shards this node took over (in) or gave up (out).",
            static_cast<double>(shards_in_.load(std::memory_order_relaxed)), {{"direction", "in"}});
  s.counter("aether_cluster_shard_handoffs_total", "Cluster shards this node took over (in) or gave up (out).",
            static_cast<double>(shards_out_.load(std::memory_order_relaxed)), {{"direction", "out"}});
}

} // namespace aether
