#include "remote_envelope.hpp"

#include <aether/runtime/json.hpp>

#include <fmt/format.h>

namespace aether {

namespace {

/// An error as it travels: its code's name, detail and value.
struct wire_error {
  std::string code;
  std::string detail;
  std::uint64_t value = 0;
};
AETHER_JSON_FIELDS(wire_error, code, detail, value)

/// The JSON shape of `remote_envelope`; ids as text, checked on decode.
struct wire_envelope {
  std::string kind;
  std::string from_node;
  std::uint64_t from_incarnation = 0;
  std::optional<std::string> target;
  std::optional<std::string> sender;
  std::optional<std::string> type;
  json::raw payload;
  std::uint64_t correlation = 0;
  std::uint64_t timeout_ms = 0;
  std::uint64_t epoch = 0;
  std::uint32_t shard = 0;
  std::optional<std::uint32_t> hops;
  std::optional<wire_error> failure;
};
AETHER_JSON_FIELDS(wire_envelope, kind, from_node, from_incarnation, target, sender, type, payload, correlation,
                   timeout_ms, epoch, shard, hops, failure)

/// Envelopes bigger than this are refused before parsing.
constexpr std::size_t max_envelope_size = std::size_t{8} << 20;

std::optional<remote_kind> kind_of(std::string_view name) {
  for (auto k : {remote_kind::tell, remote_kind::ask, remote_kind::answer, remote_kind::not_owner,
                 remote_kind::released, remote_kind::query}) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

std::optional<errc> errc_of(std::string_view name) {
  for (int c = static_cast<int>(errc::invalid_id); c <= static_cast<int>(errc::permission_denied); ++c) {
    if (to_string(static_cast<errc>(c)) == name) return static_cast<errc>(c);
  }
  return std::nullopt;
}

error malformed(std::string_view what) { return error{errc::malformed_payload, fmt::format("envelope: {}", what)}; }

} // namespace

std::string_view to_string(remote_kind k) noexcept {
  switch (k) {
  case remote_kind::tell:
    return "tell";
  case remote_kind::ask:
    return "ask";
  case remote_kind::answer:
    return "answer";
  case remote_kind::not_owner:
    return "not_owner";
  case remote_kind::released:
    return "released";
  case remote_kind::query:
    return "query";
  }
  return "unknown";
}

std::string encode_envelope(const remote_envelope& e) {
  wire_envelope w;
  w.kind = std::string{to_string(e.kind)};
  w.from_node = e.from.node;
  w.from_incarnation = e.from.incarnation;
  if (!e.target.empty()) w.target = e.target.to_string();
  if (!e.sender.empty()) w.sender = e.sender.to_string();
  if (!e.type.empty()) w.type = e.type;
  w.payload.text = e.payload;
  w.correlation = e.correlation;
  w.timeout_ms = e.timeout_ms;
  w.epoch = e.epoch;
  w.shard = e.shard;
  if (e.hops != 0) w.hops = e.hops;
  if (e.failure)
    w.failure = wire_error{std::string{to_string(e.failure->code())}, e.failure->detail(), e.failure->value()};
  return json::encode(w);
}

expected<remote_envelope> decode_envelope(std::string_view bytes) {
  auto w = json::decode<wire_envelope>(bytes, max_envelope_size);
  if (!w) return w.error();
  remote_envelope e;
  const auto kind = kind_of(w->kind);
  if (!kind) return malformed(fmt::format("unknown kind '{}'", w->kind));
  e.kind = *kind;
  if (auto ok = actor_id::validate_part(w->from_node, "node id"); !ok) return malformed(ok.error().detail());
  e.from = member_id{w->from_node, w->from_incarnation};
  if (e.kind == remote_kind::tell || e.kind == remote_kind::ask) {
    if (!w->target) return malformed("a message without a target");
    auto target = actor_id::parse(*w->target);
    if (!target) return malformed(target.error().detail());
    e.target = std::move(*target);
    if (w->sender) {
      auto sender = actor_id::parse(*w->sender);
      if (!sender) return malformed(sender.error().detail());
      e.sender = std::move(*sender);
    }
  }
  if ((e.kind == remote_kind::ask || e.kind == remote_kind::answer || e.kind == remote_kind::not_owner) &&
      w->correlation == 0)
    return malformed("an ask or answer without a correlation");
  e.correlation = w->correlation;
  const bool carries_value =
      e.kind == remote_kind::tell || e.kind == remote_kind::ask || (e.kind == remote_kind::answer && !w->failure);
  if (carries_value) {
    if (!w->type || w->type->empty()) return malformed("a value without a type name");
    // Values of declared types are JSON objects.
    if (w->payload.text.empty() || w->payload.text.front() != '{')
      return malformed("a value without an object payload");
    e.type = std::move(*w->type);
    e.payload = std::move(w->payload.text);
  }
  if (w->failure) {
    const auto code = errc_of(w->failure->code);
    if (!code) return malformed(fmt::format("unknown error code '{}'", w->failure->code));
    e.failure.emplace(*code, std::move(w->failure->detail), w->failure->value);
  }
  e.timeout_ms = w->timeout_ms;
  e.epoch = w->epoch;
  e.shard = w->shard;
  e.hops = w->hops.value_or(0);
  return e;
}

} // namespace aether
