#include <aether/actors/actor_id.hpp>
#include <aether/cluster/control_records.hpp>
#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <charconv>
#include <map>
#include <vector>

namespace aether::control_records {

namespace wire {
struct config_body {
  std::uint32_t shards = 0;
};
AETHER_JSON_FIELDS(config_body, shards)

struct member_body {
  std::string node;
  std::uint64_t incarnation = 0;
};
AETHER_JSON_FIELDS(member_body, node, incarnation)

struct death_body {
  std::string node;
  std::uint64_t incarnation = 0;
  std::uint64_t term = 0;
};
AETHER_JSON_FIELDS(death_body, node, incarnation, term)

/// Owners are indexes into `members`; `members.size()` means no owner.
struct map_body {
  std::uint64_t epoch = 0;
  std::uint64_t term = 0;
  std::vector<member_body> members;
  std::vector<std::uint32_t> owners;
};
AETHER_JSON_FIELDS(map_body, epoch, term, members, owners)
} // namespace wire

namespace {

std::string hex(std::uint64_t v) { return fmt::format("{:016x}", v); }

wire::member_body body_of(const member_id& m) { return {m.node, m.incarnation}; }

error bad(std::string_view subject, std::string_view why) {
  return error{errc::malformed_payload, fmt::format("control record {}: {}", subject, why)};
}

/// The dot-separated tokens of a subject.
std::vector<std::string_view> tokens(std::string_view subject) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const auto dot = subject.find('.', start);
    out.push_back(subject.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

bool number(std::string_view text, std::uint64_t& out, int base = 10) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

/// A member named by a subject (`node`, `inc` in hex) and by its body must agree.
expected<member_id> member_of(std::string_view subject, std::string_view node, std::string_view inc,
                              const std::string& body_node, std::uint64_t body_inc) {
  std::uint64_t i = 0;
  if (!number(inc, i, 16)) return bad(subject, "the incarnation is not a hex number");
  if (auto r = actor_id::validate_part(node, "node id"); !r) return bad(subject, r.error().to_string());
  if (body_node != node || body_inc != i) return bad(subject, "the body names another member");
  return member_id{std::string{node}, i};
}

} // namespace

control_write config(std::uint32_t shards) { return {"config", json::encode(wire::config_body{shards})}; }

control_write join(const member_id& m) {
  return {fmt::format("member.{}.{}", m.node, hex(m.incarnation)), json::encode(body_of(m))};
}

control_write leave(const member_id& m) {
  return {fmt::format("left.{}.{}", m.node, hex(m.incarnation)), json::encode(body_of(m))};
}

control_write death(const member_id& m, std::uint64_t term) {
  return {fmt::format("dead.{}.{}.{}", m.node, hex(m.incarnation), term),
          json::encode(wire::death_body{m.node, m.incarnation, term})};
}

control_write term(std::uint64_t t, const member_id& candidate) {
  return {fmt::format("term.{}", t), json::encode(body_of(candidate))};
}

control_write map(const shard_map& m) {
  wire::map_body body;
  body.epoch = m.epoch();
  body.term = m.term();
  std::map<member_id, std::uint32_t> index;
  body.owners.reserve(m.shard_count());
  for (const auto& owner : m.owners()) {
    if (owner.empty()) {
      body.owners.push_back(UINT32_MAX);
      continue;
    }
    auto [it, fresh] = index.try_emplace(owner, static_cast<std::uint32_t>(body.members.size()));
    if (fresh) body.members.push_back(body_of(owner));
    body.owners.push_back(it->second);
  }
  // "No owner" is the index one past the members.
  for (auto& o : body.owners) {
    if (o == UINT32_MAX) o = static_cast<std::uint32_t>(body.members.size());
  }
  return {fmt::format("map.{}", m.epoch()), json::encode(body)};
}

expected<decoded> decode(std::string_view subject, std::string_view data) {
  const auto t = tokens(subject);
  decoded out;
  if (t[0] == "config" && t.size() == 1) {
    auto body = json::decode<wire::config_body>(data);
    if (!body) return bad(subject, body.error().to_string());
    if (body->shards == 0) return bad(subject, "zero shards");
    out.what = decoded::kind::config;
    out.number = body->shards;
    return out;
  }
  if ((t[0] == "member" || t[0] == "left") && t.size() == 3) {
    auto body = json::decode<wire::member_body>(data);
    if (!body) return bad(subject, body.error().to_string());
    auto m = member_of(subject, t[1], t[2], body->node, body->incarnation);
    if (!m) return m.error();
    out.what = t[0] == "member" ? decoded::kind::join : decoded::kind::leave;
    out.member = std::move(*m);
    return out;
  }
  if (t[0] == "dead" && t.size() == 4) {
    auto body = json::decode<wire::death_body>(data);
    if (!body) return bad(subject, body.error().to_string());
    auto m = member_of(subject, t[1], t[2], body->node, body->incarnation);
    if (!m) return m.error();
    std::uint64_t term_number = 0;
    if (!number(t[3], term_number) || term_number != body->term) return bad(subject, "bad term");
    out.what = decoded::kind::death;
    out.member = std::move(*m);
    out.number = term_number;
    return out;
  }
  if (t[0] == "term" && t.size() == 2) {
    auto body = json::decode<wire::member_body>(data);
    if (!body) return bad(subject, body.error().to_string());
    if (!number(t[1], out.number) || out.number == 0) return bad(subject, "bad term");
    if (auto r = actor_id::validate_part(body->node, "node id"); !r) return bad(subject, r.error().to_string());
    out.what = decoded::kind::term;
    out.member = member_id{body->node, body->incarnation};
    return out;
  }
  if (t[0] == "map" && t.size() == 2) {
    auto body = json::decode<wire::map_body>(data, std::size_t{16} << 20);
    if (!body) return bad(subject, body.error().to_string());
    std::uint64_t epoch = 0;
    if (!number(t[1], epoch) || epoch == 0 || epoch != body->epoch) return bad(subject, "bad epoch");
    std::vector<member_id> members;
    for (const auto& m : body->members) {
      if (auto r = actor_id::validate_part(m.node, "node id"); !r) return bad(subject, r.error().to_string());
      members.push_back(member_id{m.node, m.incarnation});
    }
    std::vector<member_id> owners;
    owners.reserve(body->owners.size());
    for (const auto o : body->owners) {
      if (o > members.size()) return bad(subject, "an owner index is out of range");
      owners.push_back(o == members.size() ? member_id{} : members[o]);
    }
    out.what = decoded::kind::map;
    out.map = shard_map{epoch, body->term, std::move(owners)};
    return out;
  }
  return bad(subject, "unknown subject");
}

} // namespace aether::control_records
