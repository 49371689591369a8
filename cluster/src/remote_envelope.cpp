#include "remote_envelope.hpp"

#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstring>

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
error bad_batch(std::string_view what) {
  return error{errc::malformed_payload, fmt::format("envelope batch: {}", what)};
}

void put(fmt::memory_buffer& out, std::string_view text) { json::detail::append(out, text); }

void put_number(fmt::memory_buffer& out, std::uint64_t n) {
  const fmt::format_int text{static_cast<unsigned long long>(n)};
  put(out, {text.data(), text.size()});
}

/// An actor id as a JSON string, or null; "ns/type/key" as `actor_id::to_string` spells it.
void put_id(fmt::memory_buffer& out, const actor_id& id) {
  if (id.empty()) {
    put(out, "null");
    return;
  }
  fmt::memory_buffer text; // on the stack for ids of usual length
  put(text, id.ns());
  text.push_back('/');
  put(text, id.type());
  text.push_back('/');
  put(text, id.key());
  json::detail::write_string(out, {text.data(), text.size()});
}

/// Room kept at the start of a batch for its header: "#" and up to 19 digits and "\n".
constexpr std::size_t header_room = 21;

/// Reads decimal digits up to a newline at `at`; moves `at` past the newline.
/// Empty when the digits are missing, too many, or not followed by a newline.
std::optional<std::uint64_t> read_line_number(std::string_view bytes, std::size_t& at) {
  const auto newline = bytes.find('\n', at);
  if (newline == std::string_view::npos || newline == at || newline - at > 12) return std::nullopt;
  std::uint64_t n = 0;
  const auto* first = bytes.data() + at;
  const auto* last = bytes.data() + newline;
  const auto [end, ec] = std::from_chars(first, last, n);
  if (ec != std::errc{} || end != last) return std::nullopt;
  at = newline + 1;
  return n;
}

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

void encode_envelope_to(fmt::memory_buffer& out, const remote_envelope& e) {
  // The shape of `wire_envelope` as json::encode writes it (the tests compare the two).
  put(out, R"({"kind":")");
  put(out, to_string(e.kind));
  put(out, R"(","from_node":)");
  json::detail::write_string(out, e.from.node);
  put(out, R"(,"from_incarnation":)");
  put_number(out, e.from.incarnation);
  put(out, R"(,"target":)");
  put_id(out, e.target);
  put(out, R"(,"sender":)");
  put_id(out, e.sender);
  put(out, R"(,"type":)");
  if (e.type.empty()) {
    put(out, "null");
  } else {
    json::detail::write_string(out, e.type);
  }
  put(out, R"(,"payload":)");
  put(out, e.payload.empty() ? std::string_view{"null"} : std::string_view{e.payload});
  put(out, R"(,"correlation":)");
  put_number(out, e.correlation);
  put(out, R"(,"timeout_ms":)");
  put_number(out, e.timeout_ms);
  put(out, R"(,"epoch":)");
  put_number(out, e.epoch);
  put(out, R"(,"shard":)");
  put_number(out, e.shard);
  put(out, R"(,"hops":)");
  if (e.hops == 0) {
    put(out, "null");
  } else {
    put_number(out, e.hops);
  }
  put(out, R"(,"failure":)");
  if (!e.failure) {
    put(out, "null");
  } else {
    put(out, R"({"code":)");
    json::detail::write_string(out, to_string(e.failure->code()));
    put(out, R"(,"detail":)");
    json::detail::write_string(out, e.failure->detail());
    put(out, R"(,"value":)");
    put_number(out, e.failure->value());
    out.push_back('}');
  }
  out.push_back('}');
}

std::string encode_envelope(const remote_envelope& e) {
  fmt::memory_buffer out;
  encode_envelope_to(out, e);
  return std::string{out.data(), out.size()};
}

// The reference encoding through the declared wire shape; the tests hold
// encode_envelope_to to it byte for byte.
std::string detail::encode_envelope_reference(const remote_envelope& e) {
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

namespace {

/// `text` parsed as an actor id, or the one `cached_text` names when it is the same text.
expected<actor_id> parse_id(std::string& text, std::string* cached_text, actor_id* cached) {
  if (cached != nullptr && !cached->empty() && text == *cached_text) return *cached;
  auto id = actor_id::parse(text);
  if (id && cached != nullptr) {
    *cached = *id;
    cached_text->swap(text);
  }
  return id;
}

} // namespace

expected<remote_envelope> decode_envelope(std::string_view bytes, envelope_ids* ids) {
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
    auto target = parse_id(*w->target, ids ? &ids->target_text : nullptr, ids ? &ids->target : nullptr);
    if (!target) return malformed(target.error().detail());
    e.target = std::move(*target);
    if (w->sender) {
      auto sender = parse_id(*w->sender, ids ? &ids->sender_text : nullptr, ids ? &ids->sender : nullptr);
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

envelope_batch::envelope_batch() { buffer_.resize(header_room); }

void envelope_batch::add(const remote_envelope& e) {
  scratch_.clear();
  encode_envelope_to(scratch_, e);
  add_encoded({scratch_.data(), scratch_.size()});
}

void envelope_batch::add_encoded(std::string_view json) {
  put_number(buffer_, json.size());
  buffer_.push_back('\n');
  if (count_ == 0) first_at_ = buffer_.size();
  put(buffer_, json);
  ++count_;
}

std::string_view envelope_batch::only() const noexcept {
  if (count_ != 1) return {};
  return {buffer_.data() + first_at_, buffer_.size() - first_at_};
}

std::size_t envelope_batch::size() const noexcept {
  if (count_ == 0) return 0;
  return buffer_.size() - header_room + 2 + fmt::formatted_size("{}", count_);
}

std::string_view envelope_batch::finish() {
  if (count_ == 0) return {};
  char header[header_room];
  const auto* end = fmt::format_to(header, "#{}\n", count_);
  const auto length = static_cast<std::size_t>(end - header);
  const auto start = header_room - length;
  std::memcpy(buffer_.data() + start, header, length);
  return {buffer_.data() + start, buffer_.size() - start};
}

void envelope_batch::clear() noexcept {
  buffer_.resize(header_room);
  count_ = 0;
}

expected<std::vector<std::string_view>> split_batch(std::string_view bytes) {
  if (bytes.size() > max_batch_size) {
    return error{errc::payload_too_large,
                 fmt::format("envelope batch: {} bytes, more than {}", bytes.size(), max_batch_size)};
  }
  if (!is_batch(bytes)) return bad_batch("does not start with '#'");
  std::size_t at = 1;
  const auto count = read_line_number(bytes, at);
  if (!count) return bad_batch("the header is not '#<count>' and a newline");
  if (*count == 0) return bad_batch("announces no envelopes");
  if (*count > max_batch_envelopes) {
    return bad_batch(fmt::format("announces {} envelopes, more than {}", *count, max_batch_envelopes));
  }
  std::vector<std::string_view> out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*count, bytes.size() / 3)));
  for (std::uint64_t i = 0; i < *count; ++i) {
    if (at == bytes.size()) return bad_batch(fmt::format("truncated: {} of {} envelopes", i, *count));
    const auto length = read_line_number(bytes, at);
    if (!length) return bad_batch(fmt::format("envelope {} of {}: no length and newline", i + 1, *count));
    if (*length > max_envelope_size) {
      return error{errc::payload_too_large, fmt::format("envelope batch: envelope {} of {} has {} bytes, more than {}",
                                                        i + 1, *count, *length, max_envelope_size)};
    }
    if (*length > bytes.size() - at) {
      return bad_batch(fmt::format("truncated: envelope {} of {} announces {} bytes, {} left", i + 1, *count, *length,
                                   bytes.size() - at));
    }
    const auto json = bytes.substr(at, static_cast<std::size_t>(*length));
    if (json.empty() || json.front() != '{') {
      return bad_batch(fmt::format("envelope {} of {} is not a JSON object", i + 1, *count));
    }
    out.push_back(json);
    at += json.size();
  }
  if (at != bytes.size()) {
    return bad_batch(fmt::format("{} bytes follow the {} envelopes announced", bytes.size() - at, *count));
  }
  return out;
}

} // namespace aether
