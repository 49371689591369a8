// status and shards: the cluster as its control log holds it, read with the
// cluster library's own follower and state (nothing decoded here), and the
// heartbeats heard while reading it.

#include "aetherctl.hpp"

#include <aether/actors/actor_id.hpp>
#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/nats_control_log.hpp>
#include <aether/cluster/nats_heartbeat_transport.hpp>
#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace aetherctl {

namespace {

constexpr std::chrono::seconds read_timeout{10};

struct member_json {
  std::string node;
  std::uint64_t incarnation = 0;
};
AETHER_JSON_FIELDS(member_json, node, incarnation)

struct status_member_json {
  std::string node;
  std::uint64_t incarnation = 0;
  std::string status;
  /// Whether a heartbeat of this incarnation was heard while listening.
  bool heard = false;
  /// The term and map epoch its last heartbeat says it applied.
  std::optional<std::uint64_t> heard_term;
  std::optional<std::uint64_t> heard_epoch;
  std::uint32_t shards = 0;
};
AETHER_JSON_FIELDS(status_member_json, node, incarnation, status, heard, heard_term, heard_epoch, shards)

struct status_json {
  std::string cluster;
  std::vector<status_member_json> members;
  std::optional<member_json> leader;
  std::uint64_t term = 0;
  std::uint64_t map_epoch = 0;
  std::uint64_t map_term = 0;
  std::uint32_t shard_count = 0;
  std::uint64_t control_sequence = 0;
  std::uint64_t listened_ms = 0;
};
AETHER_JSON_FIELDS(status_json, cluster, members, leader, term, map_epoch, map_term, shard_count, control_sequence,
                   listened_ms)

struct shard_json {
  std::uint32_t shard = 0;
  std::optional<member_json> owner;
};
AETHER_JSON_FIELDS(shard_json, shard, owner)

struct shards_json {
  std::string cluster;
  std::uint64_t map_epoch = 0;
  std::uint64_t map_term = 0;
  std::uint32_t shard_count = 0;
  std::vector<shard_json> shards;
};
AETHER_JSON_FIELDS(shards_json, cluster, map_epoch, map_term, shard_count, shards)

struct heard {
  std::uint64_t term = 0;
  std::uint64_t epoch = 0;
};

/// What the control log holds now, and what heartbeats said while reading it.
struct view {
  aether::cluster_state state;
  std::map<aether::member_id, heard> heartbeats;
  std::chrono::milliseconds listened{0};
};

std::optional<member_json> to_json(const aether::member_id& m) {
  if (m.empty()) return std::nullopt;
  return member_json{m.node, m.incarnation};
}

std::string show(const aether::member_id& m) { return m.empty() ? "-" : m.to_string(); }

view read_cluster(const command_line& cl, std::chrono::milliseconds listen) {
  if (auto r = aether::actor_id::validate_name(cl.cluster, "cluster name"); !r) bad_input(r.error().detail());
  auto conn = connect(cl);
  aether::nats_control_options options;
  options.cluster = cl.cluster;
  options.create = false;
  auto log = aether::nats_control_log::open(conn, options);
  if (!log) {
    if (log.error().code() == aether::errc::not_found) {
      bad_input(fmt::format("no cluster named '{}' at {} (it has no control stream; see --cluster)", cl.cluster,
                            aether::nats::redact_url(cl.server)));
    }
    fail(log.error(), "reading the control log");
  }

  struct shared {
    std::mutex mutex;
    std::condition_variable changed;
    view v;
    bool caught_up = false;
    std::optional<aether::error> failed;
  };
  auto s = std::make_shared<shared>();
  const auto started = std::chrono::steady_clock::now();
  aether::nats_heartbeat_transport heartbeats{conn, cl.cluster};
  std::unique_ptr<aether::heartbeat_subscription> hb_sub;
  if (listen.count() > 0) {
    hb_sub = need(heartbeats.subscribe([s](const aether::heartbeat& hb) {
      std::lock_guard lock{s->mutex};
      s->v.heartbeats[hb.from] = heard{hb.term, hb.epoch};
    }),
                  "listening for heartbeats");
  }
  aether::control_log_follower f;
  f.on_record = [s](aether::control_record r) {
    std::lock_guard lock{s->mutex};
    if (!s->caught_up) s->v.state.apply(r);
  };
  f.on_caught_up = [s] {
    std::lock_guard lock{s->mutex};
    s->caught_up = true;
    s->changed.notify_all();
  };
  f.on_error = [s](aether::error e) {
    std::lock_guard lock{s->mutex};
    s->failed = std::move(e);
    s->changed.notify_all();
  };
  auto follow = need((*log)->follow(std::move(f)), "following the control log");
  {
    std::unique_lock lock{s->mutex};
    if (!s->changed.wait_for(lock, read_timeout, [&] { return s->caught_up || s->failed; })) {
      throw failure{exit_failed, fmt::format("reading the control log of cluster '{}': no end within {} s", cl.cluster,
                                             read_timeout.count())};
    }
    if (s->failed && !s->caught_up) fail(*s->failed, "reading the control log");
  }
  follow.reset();
  if (hb_sub) {
    std::this_thread::sleep_until(started + listen);
    hb_sub.reset();
  }
  std::lock_guard lock{s->mutex};
  view out = std::move(s->v);
  out.listened = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  return out;
}

} // namespace

int run_status(const command_line& cl) {
  cl.expect(1, 0, 0, {"listen-ms"});
  const auto listen = std::chrono::milliseconds{number_option(cl, "listen-ms").value_or(500)};
  const auto v = read_cluster(cl, listen);
  const auto& st = v.state;
  const auto& map = st.map();
  status_json out;
  out.cluster = cl.cluster;
  out.leader = to_json(st.leader());
  out.term = st.term();
  out.map_epoch = map ? map->epoch() : 0;
  out.map_term = map ? map->term() : 0;
  out.shard_count = st.shard_count();
  out.control_sequence = st.last_sequence();
  out.listened_ms = static_cast<std::uint64_t>(v.listened.count());
  for (const auto& m : st.members()) {
    status_member_json j;
    j.node = m.id.node;
    j.incarnation = m.id.incarnation;
    j.status = std::string{aether::to_string(m.status)};
    if (auto it = v.heartbeats.find(m.id); it != v.heartbeats.end()) {
      j.heard = true;
      j.heard_term = it->second.term;
      j.heard_epoch = it->second.epoch;
    }
    j.shards = map ? map->count_of(m.id) : 0;
    out.members.push_back(std::move(j));
  }
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  std::size_t alive = 0;
  for (const auto& m : out.members) alive += m.status == "alive" ? 1 : 0;
  std::printf("cluster %s: %zu of %zu members alive, leader %s, term %llu, map epoch %llu, %u shards\n",
              cl.cluster.c_str(), alive, out.members.size(), show(st.leader()).c_str(),
              static_cast<unsigned long long>(out.term), static_cast<unsigned long long>(out.map_epoch),
              out.shard_count);
  std::vector<std::vector<std::string>> rows{
      {"NODE", "INCARNATION", "STATUS", fmt::format("HEARD({}ms)", out.listened_ms), "TERM", "EPOCH", "SHARDS"}};
  for (const auto& m : out.members) {
    rows.push_back({m.node, fmt::format("{:016x}", m.incarnation), m.status, m.heard ? "yes" : "no",
                    m.heard_term ? std::to_string(*m.heard_term) : "-",
                    m.heard_epoch ? std::to_string(*m.heard_epoch) : "-", std::to_string(m.shards)});
  }
  print_table(rows);
  return exit_ok;
}

int run_shards(const command_line& cl) {
  cl.expect(1, 0, 0, {});
  const auto v = read_cluster(cl, std::chrono::milliseconds{0});
  const auto& map = v.state.map();
  shards_json out;
  out.cluster = cl.cluster;
  out.map_epoch = map ? map->epoch() : 0;
  out.map_term = map ? map->term() : 0;
  out.shard_count = v.state.shard_count();
  const auto count = map ? map->shard_count() : 0U;
  for (std::uint32_t i = 0; i < count; ++i) out.shards.push_back({i, to_json(map->owner(i))});
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  std::printf("cluster %s: map epoch %llu (term %llu), %u shards\n", cl.cluster.c_str(),
              static_cast<unsigned long long>(out.map_epoch), static_cast<unsigned long long>(out.map_term),
              out.shard_count);
  // One row per run of shards with the same owner.
  std::vector<std::vector<std::string>> rows{{"SHARDS", "OWNER"}};
  for (std::uint32_t i = 0; i < count;) {
    std::uint32_t j = i;
    while (j + 1 < count && map->owner(j + 1) == map->owner(i)) ++j;
    rows.push_back({i == j ? std::to_string(i) : fmt::format("{}-{}", i, j), show(map->owner(i))});
    i = j + 1;
  }
  print_table(rows);
  return exit_ok;
}

} // namespace aetherctl
