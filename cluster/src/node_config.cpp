#include <aether/actors/actor_id.hpp>
#include <aether/cluster/node_config.hpp>
#include <aether/runtime/http_server.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <unistd.h>

namespace aether {

namespace {

/// Reads a non-negative integer variable into `out` when it is set; `min` and `max` are not negative.
template <class T>
expected<void> read_env(const char* name, T& out, T min, T max) {
  const char* raw = std::getenv(name);
  if (raw == nullptr) return {};
  const std::string_view text{raw};
  unsigned long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < static_cast<unsigned long long>(min) ||
      value > static_cast<unsigned long long>(max)) {
    return error{errc::invalid_argument, fmt::format("{}={} is not a number from {} to {}", name, text, min, max)};
  }
  out = static_cast<T>(value);
  return {};
}

expected<void> read_ms(const char* name, std::chrono::milliseconds& out, std::uint64_t min = 0) {
  auto ms = static_cast<std::uint64_t>(out.count());
  if (auto r = read_env<std::uint64_t>(name, ms, min, 1'000'000'000); !r) return r;
  out = std::chrono::milliseconds{ms};
  return {};
}

} // namespace

std::string default_node_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "node";
  std::string id{host};
  if (id.size() > actor_id::max_part_size) id.resize(actor_id::max_part_size);
  for (auto& c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '.' || c == '*' || c == '>' || c == '/') c = '-';
  }
  if (id.front() == '$') id.front() = '-';
  return id;
}

expected<node_config> node_config::from_env() {
  node_config c;
  for (auto r :
       {read_env<std::size_t>("AETHER_THREADS", c.threads, 0, 1024),
        read_env<std::uint32_t>("AETHER_SHARDS", c.system.shard_count, 1, 1u << 16),
        read_env<std::size_t>("AETHER_MAILBOX_CAPACITY", c.system.mailbox_capacity, 1, 1u << 30),
        read_env<std::size_t>("AETHER_DRAIN_BATCH", c.system.drain_batch, 1, 256),
        read_ms("AETHER_IDLE_TIMEOUT_MS", c.system.idle_timeout), read_ms("AETHER_DRAIN_TIMEOUT_MS", c.drain_timeout),
        read_env<int>("AETHER_JS_REPLICAS", c.replicas, 1, 5),
        read_env<std::uint64_t>("AETHER_SNAPSHOT_EVERY", c.snapshot_every, 0, 1'000'000'000),
        read_env<std::uint32_t>("AETHER_CLUSTER_SHARDS", c.cluster.shards, 1, 1u << 16),
        read_ms("AETHER_HEARTBEAT_MS", c.cluster.heartbeat_interval, 1),
        read_ms("AETHER_FAILURE_TIMEOUT_MS", c.cluster.failure_timeout, 1),
        read_ms("AETHER_ELECTION_STEP_MS", c.cluster.election_step),
        read_ms("AETHER_RELEASE_TIMEOUT_MS", c.cluster.release_timeout),
        read_env<std::size_t>("AETHER_HOLD_LIMIT", c.cluster.hold_limit, 1, std::size_t{1} << 30)}) {
    if (!r) return r.error();
  }
  int routing = c.cluster.route_messages ? 1 : 0;
  if (auto r = read_env<int>("AETHER_ROUTING", routing, 0, 1); !r) return r.error();
  c.cluster.route_messages = routing == 1;
  // The self-fence timeout follows the failure timeout unless set.
  c.cluster.self_fence_timeout = c.cluster.failure_timeout * 4 / 5;
  if (auto r = read_ms("AETHER_SELF_FENCE_MS", c.cluster.self_fence_timeout, 1); !r) return r.error();
  if (const char* url = std::getenv("AETHER_NATS_URL")) c.nats_url = url;
  if (auto security = nats::security_options::from_env(); security) {
    c.nats_security = std::move(*security);
  } else {
    return security.error();
  }
  if (const char* name = std::getenv("AETHER_CLUSTER")) {
    if (auto r = actor_id::validate_namespace(name); !r) {
      return error{errc::invalid_argument, fmt::format("AETHER_CLUSTER={}: {}", name, r.error().to_string())};
    }
    c.cluster.name = name;
  }
  if (const char* id = std::getenv("AETHER_NODE_ID")) {
    if (auto r = actor_id::validate_part(id, "node id"); !r) {
      return error{errc::invalid_argument, fmt::format("AETHER_NODE_ID={}: {}", id, r.error().to_string())};
    }
    c.cluster.node_id = id;
  }
  if (const char* addr = std::getenv("AETHER_HTTP_ADDR")) {
    if (auto r = parse_host_port(addr, "AETHER_HTTP_ADDR"); !r) return r.error();
    c.http_address = addr;
  }
  int latency = c.system.measure_handling ? 1 : 0;
  if (auto r = read_env<int>("AETHER_METRICS_LATENCY", latency, 0, 1); !r) return r.error();
  c.system.measure_handling = latency == 1;
  if (auto r = configure_log_from_env(); !r) return r.error();
  c.cluster.replicas = c.replicas;
  auto check = c.cluster;
  if (check.node_id.empty()) check.node_id = "node"; // the host name comes at start
  if (auto r = check.validate(); !r) {
    return error{errc::invalid_argument, fmt::format("cluster settings: {}", r.error().to_string())};
  }
  return c;
}

} // namespace aether
