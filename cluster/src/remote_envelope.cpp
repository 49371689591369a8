#include "remote_envelope.hpp"

#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace aether {

namespace {

/// An error as it travels: its code's name, detail and value.
template <class Text>
struct basic_wire_error {
  Text code;
  Text detail;
  std::uint64_t value = 0;
};

/// The JSON shape of `remote_envelope`, ids as text, checked on decode;
/// over the type of its text: owning (`wire_envelope`, for `json::encode`
/// and the general decoder) or views into the input (`wire_view`, for the
/// fast reader). Both end in the same checks (`check`), so they decide alike.
template <class Text, class Raw>
struct basic_wire_envelope {
  Text kind;
  Text from_node;
  std::uint64_t from_incarnation = 0;
  std::optional<Text> target;
  std::optional<Text> sender;
  std::optional<Text> type;
  Raw payload;
  std::uint64_t correlation = 0;
  std::uint64_t timeout_ms = 0;
  std::uint64_t epoch = 0;
  std::uint32_t shard = 0;
  std::optional<std::uint32_t> hops;
  std::optional<basic_wire_error<Text>> failure;
};

using wire_error = basic_wire_error<std::string>;
AETHER_JSON_FIELDS(wire_error, code, detail, value)
using wire_envelope = basic_wire_envelope<std::string, json::raw>;
AETHER_JSON_FIELDS(wire_envelope, kind, from_node, from_incarnation, target, sender, type, payload, correlation,
                   timeout_ms, epoch, shard, hops, failure)
using wire_view = basic_wire_envelope<std::string_view, std::string_view>;

std::string_view text_of(const json::raw& payload) noexcept { return payload.text; }
std::string_view text_of(std::string_view payload) noexcept { return payload; }

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
  constexpr std::size_t max_digits = 12;
  const auto end = std::min(bytes.size(), at + max_digits + 1);
  std::uint64_t n = 0;
  auto i = at;
  for (; i < end && bytes[i] >= '0' && bytes[i] <= '9'; ++i) n = n * 10 + static_cast<std::uint64_t>(bytes[i] - '0');
  if (i == at || i - at > max_digits || i == bytes.size() || bytes[i] != '\n') return std::nullopt;
  at = i + 1;
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

namespace {

/// The envelope's JSON up to the payload: `{"kind":...,"payload":`.
void put_head(fmt::memory_buffer& out, const remote_envelope& e) {
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
}

void put_payload(fmt::memory_buffer& out, const remote_envelope& e) {
  put(out, e.payload.empty() ? std::string_view{"null"} : std::string_view{e.payload});
}

/// The envelope's JSON after the payload: `,"correlation":...}`.
void put_tail(fmt::memory_buffer& out, const remote_envelope& e) {
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

void put_buffer(fmt::memory_buffer& out, const fmt::memory_buffer& bytes) { put(out, {bytes.data(), bytes.size()}); }

} // namespace

void encode_envelope_to(fmt::memory_buffer& out, const remote_envelope& e) {
  put_head(out, e);
  put_payload(out, e);
  put_tail(out, e);
}

void envelope_encoder::encode(fmt::memory_buffer& out, const remote_envelope& e) {
  if (head_.size() == 0 || e.kind != kind_ || e.target != target_ || e.sender != sender_ || e.type != type_ ||
      e.from != from_) {
    head_.clear();
    put_head(head_, e);
    kind_ = e.kind;
    from_ = e.from;
    target_ = e.target;
    sender_ = e.sender;
    type_ = e.type;
  }
  put_buffer(out, head_);
  put_payload(out, e);
  if (e.failure) {
    put_tail(out, e);
    return;
  }
  if (tail_.size() == 0 || e.correlation != correlation_ || e.timeout_ms != timeout_ms_ || e.epoch != epoch_ ||
      e.shard != shard_ || e.hops != hops_) {
    tail_.clear();
    put_tail(tail_, e);
    correlation_ = e.correlation;
    timeout_ms_ = e.timeout_ms;
    epoch_ = e.epoch;
    shard_ = e.shard;
    hops_ = e.hops;
  }
  put_buffer(out, tail_);
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
expected<actor_id> parse_id(std::string_view text, std::string* cached_text, actor_id* cached) {
  if (cached != nullptr && !cached->empty() && text == *cached_text) return *cached;
  auto id = actor_id::parse(text);
  if (id && cached != nullptr) {
    *cached = *id;
    cached_text->assign(text);
  }
  return id;
}

/// Checks the fields before the payload (kind, sending node, ids) into `e`:
/// what `check` looks at first.
template <class Wire>
expected<void> check_head(const Wire& w, envelope_ids* ids, remote_envelope& e) {
  const auto kind = kind_of(w.kind);
  if (!kind) return malformed(fmt::format("unknown kind '{}'", w.kind));
  e.kind = *kind;
  if (auto ok = actor_id::validate_part(w.from_node, "node id"); !ok) return malformed(ok.error().detail());
  e.from = member_id{std::string{w.from_node}, w.from_incarnation};
  if (e.kind == remote_kind::tell || e.kind == remote_kind::ask) {
    if (!w.target) return malformed("a message without a target");
    auto target = parse_id(*w.target, ids ? &ids->target_text : nullptr, ids ? &ids->target : nullptr);
    if (!target) return malformed(target.error().detail());
    e.target = std::move(*target);
    if (w.sender) {
      auto sender = parse_id(*w.sender, ids ? &ids->sender_text : nullptr, ids ? &ids->sender : nullptr);
      if (!sender) return malformed(sender.error().detail());
      e.sender = std::move(*sender);
    }
  }
  return {};
}

/// Checks the rest into `e`, whose head is checked; `type` is the head's type name.
template <class Wire>
expected<void> check_rest(const Wire& w, std::optional<std::string_view> type, remote_envelope& e) {
  if ((e.kind == remote_kind::ask || e.kind == remote_kind::answer || e.kind == remote_kind::not_owner) &&
      w.correlation == 0)
    return malformed("an ask or answer without a correlation");
  e.correlation = w.correlation;
  const bool carries_value =
      e.kind == remote_kind::tell || e.kind == remote_kind::ask || (e.kind == remote_kind::answer && !w.failure);
  if (carries_value) {
    if (!type || type->empty()) return malformed("a value without a type name");
    // Values of declared types are JSON objects.
    const std::string_view payload = text_of(w.payload);
    if (payload.empty() || payload.front() != '{') return malformed("a value without an object payload");
    e.type.assign(*type);
    e.payload.assign(payload);
  }
  if (w.failure) {
    const auto code = errc_of(w.failure->code);
    if (!code) return malformed(fmt::format("unknown error code '{}'", w.failure->code));
    e.failure.emplace(*code, std::string{w.failure->detail}, w.failure->value);
  }
  e.timeout_ms = w.timeout_ms;
  e.epoch = w.epoch;
  e.shard = w.shard;
  e.hops = w.hops.value_or(0);
  return {};
}

/// The envelope `w` describes, or why it is not one.
template <class Wire>
expected<remote_envelope> check(const Wire& w, envelope_ids* ids) {
  remote_envelope e;
  if (auto ok = check_head(w, ids, e); !ok) return ok.error();
  std::optional<std::string_view> type;
  if (w.type) type = *w.type;
  if (auto ok = check_rest(w, type, e); !ok) return ok.error();
  return e;
}

/// Reads the envelope in exactly the shape `encode_envelope_to` writes:
/// the fields in their order, no whitespace, strings without escapes,
/// integers in plain decimal, and a payload of plain JSON (no whitespace,
/// no \u escapes, no exponents, at most 64 levels deep). Anything else is
/// declined (not refused) and left to the general decoder, so what this
/// reader accepts the general decoder accepts with the same fields (the fuzz
/// target checks it); errors are only ever the general decoder's.
class fast_reader {
public:
  explicit fast_reader(std::string_view bytes) noexcept
      : at_{bytes.data()}, end_{bytes.data() + bytes.size()}, begin_{bytes.data()} {}

  /// The fields before the payload, through `"payload":`.
  bool head(wire_view& w) noexcept {
    return literal(R"({"kind":)") && string(w.kind) && literal(R"(,"from_node":)") && string(w.from_node) &&
           literal(R"(,"from_incarnation":)") && number(w.from_incarnation) && literal(R"(,"target":)") &&
           string_or_null(w.target) && literal(R"(,"sender":)") && string_or_null(w.sender) && literal(R"(,"type":)") &&
           string_or_null(w.type) && literal(R"(,"payload":)");
  }

  bool payload(wire_view& w) noexcept {
    const char* const first = at_;
    if (!value(0)) return false;
    w.payload = {first, static_cast<std::size_t>(at_ - first)};
    return true;
  }

  /// The fields after the payload, through the closing brace.
  bool tail(wire_view& w) noexcept {
    std::uint64_t shard = 0;
    if (!(literal(R"(,"correlation":)") && number(w.correlation) && literal(R"(,"timeout_ms":)") &&
          number(w.timeout_ms) && literal(R"(,"epoch":)") && number(w.epoch) && literal(R"(,"shard":)") &&
          number(shard, std::numeric_limits<std::uint32_t>::max()) && literal(R"(,"hops":)")))
      return false;
    w.shard = static_cast<std::uint32_t>(shard);
    if (!literal("null")) {
      std::uint64_t hops = 0;
      if (!number(hops, std::numeric_limits<std::uint32_t>::max())) return false;
      w.hops = static_cast<std::uint32_t>(hops);
    }
    if (!literal(R"(,"failure":)")) return false;
    if (!literal("null")) {
      auto& f = w.failure.emplace();
      if (!(literal(R"({"code":)") && string(f.code) && literal(R"(,"detail":)") && string(f.detail) &&
            literal(R"(,"value":)") && number(f.value) && literal("}")))
        return false;
    }
    return literal("}");
  }

  /// True when everything was read, and the bytes above 0x7f that were
  /// read (they only occur inside strings here) are UTF-8.
  [[nodiscard]] bool finished() const noexcept { return at_ == end_ && ((high_ & 0x80) == 0 || valid_utf8()); }

  /// Moves past `n` bytes known to be well-formed (read before).
  void skip(std::size_t n) noexcept { at_ += n; }
  [[nodiscard]] std::size_t offset() const noexcept { return static_cast<std::size_t>(at_ - begin_); }

private:
  static constexpr int max_depth = 64;
  static constexpr std::ptrdiff_t max_number = 40;

  /// The bytes of `text` (a string literal: its length is known here, so the comparison is inlined).
  template <std::size_t N>
  bool literal(const char (&text)[N]) noexcept {
    constexpr std::size_t size = N - 1;
    if (static_cast<std::size_t>(end_ - at_) < size || std::memcmp(at_, text, size) != 0) return false;
    at_ += size;
    return true;
  }

  /// A string without escapes or control characters.
  bool string(std::string_view& out) noexcept {
    if (at_ == end_ || *at_ != '"') return false;
    const char* const first = ++at_;
    for (; at_ != end_; ++at_) {
      const auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        out = {first, static_cast<std::size_t>(at_ - first)};
        ++at_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
      high_ |= c;
    }
    return false;
  }

  bool string_or_null(std::optional<std::string_view>& out) noexcept {
    if (literal("null")) return true;
    std::string_view text;
    if (!string(text)) return false;
    out = text;
    return true;
  }

  /// Plain decimal digits (no sign, no leading zero) up to `max`.
  bool number(std::uint64_t& out, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) noexcept {
    const char* const first = at_;
    std::uint64_t n = 0;
    while (at_ != end_ && *at_ >= '0' && *at_ <= '9') {
      const auto digit = static_cast<std::uint64_t>(*at_ - '0');
      if (n > (max - digit) / 10) return false;
      n = n * 10 + digit;
      ++at_;
    }
    if (at_ == first || (*first == '0' && at_ - first > 1)) return false;
    out = n;
    return true;
  }

  /// A JSON value of the plain kind described above; moves past it.
  bool value(int depth) noexcept {
    if (at_ == end_) return false;
    switch (*at_) {
    case '{':
      return object(depth + 1);
    case '[':
      return array(depth + 1);
    case '"':
      return payload_string();
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default:
      return payload_number();
    }
  }

  bool object(int depth) noexcept {
    if (depth > max_depth) return false;
    ++at_;
    if (literal("}")) return true;
    for (;;) {
      if (!payload_string() || !literal(":") || !value(depth)) return false;
      if (literal("}")) return true;
      if (!literal(",")) return false;
    }
  }

  bool array(int depth) noexcept {
    if (depth > max_depth) return false;
    ++at_;
    if (literal("]")) return true;
    for (;;) {
      if (!value(depth)) return false;
      if (literal("]")) return true;
      if (!literal(",")) return false;
    }
  }

  /// A string whose escapes, if any, are of one character (no \u).
  bool payload_string() noexcept {
    if (at_ == end_ || *at_ != '"') return false;
    for (++at_; at_ != end_; ++at_) {
      const auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      high_ |= c;
      if (c == '\\') {
        if (++at_ == end_) return false;
        switch (*at_) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        default:
          return false;
        }
      }
    }
    return false;
  }

  /// -?(0|[1-9][0-9]*)(\.[0-9]+)? of at most `max_number` characters.
  bool payload_number() noexcept {
    const char* const first = at_;
    if (*at_ == '-') ++at_;
    auto digits = [&] {
      const char* const from = at_;
      while (at_ != end_ && *at_ >= '0' && *at_ <= '9') ++at_;
      return at_ - from;
    };
    const char* const integer = at_;
    const auto n = digits();
    if (n == 0 || (*integer == '0' && n > 1)) return false;
    if (at_ != end_ && *at_ == '.') {
      ++at_;
      if (digits() == 0) return false;
    }
    if (at_ != end_ && (*at_ == 'e' || *at_ == 'E')) return false;
    return at_ - first <= max_number;
  }

  /// The whole input is well-formed UTF-8 (Unicode's table 3-7: no overlong
  /// forms, no surrogates, nothing above U+10FFFF).
  [[nodiscard]] bool valid_utf8() const noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(begin_);
    const auto* const end = reinterpret_cast<const unsigned char*>(end_);
    auto in = [](unsigned char c, unsigned char low, unsigned char high) { return c >= low && c <= high; };
    while (p != end) {
      const unsigned char c = *p;
      if (c < 0x80) {
        ++p;
        continue;
      }
      std::ptrdiff_t n = 0;
      unsigned char low = 0x80;
      unsigned char high = 0xbf;
      if (in(c, 0xc2, 0xdf)) {
        n = 1;
      } else if (in(c, 0xe0, 0xef)) {
        n = 2;
        if (c == 0xe0) low = 0xa0;
        if (c == 0xed) high = 0x9f;
      } else if (in(c, 0xf0, 0xf4)) {
        n = 3;
        if (c == 0xf0) low = 0x90;
        if (c == 0xf4) high = 0x8f;
      } else {
        return false;
      }
      if (end - p <= n || !in(p[1], low, high)) return false;
      for (std::ptrdiff_t i = 2; i <= n; ++i) {
        if (!in(p[i], 0x80, 0xbf)) return false;
      }
      p += n + 1;
    }
    return true;
  }

  const char* at_;
  const char* end_;
  const char* begin_;
  unsigned high_ = 0;
};

} // namespace

std::optional<expected<remote_envelope>> detail::decode_envelope_fast(std::string_view bytes, envelope_ids* ids) {
  if (bytes.size() > max_envelope_size) return std::nullopt;
  fast_reader r{bytes};
  wire_view w;
  // Bytes that repeat the last envelope's before or after the payload say
  // what they said then: they are neither read nor checked again.
  auto* const head = ids != nullptr ? &ids->last_head : nullptr;
  const bool head_known = head != nullptr && !head->text.empty() && bytes.starts_with(head->text);
  if (head_known) {
    r.skip(head->text.size());
  } else if (!r.head(w)) {
    return std::nullopt;
  }
  const auto head_size = r.offset();
  if (!r.payload(w)) return std::nullopt;
  const auto rest = bytes.substr(r.offset());
  auto* const tail = ids != nullptr ? &ids->last_tail : nullptr;
  const bool tail_known = tail != nullptr && !tail->text.empty() && rest == tail->text;
  if (tail_known) {
    r.skip(rest.size());
    w.correlation = tail->correlation;
    w.timeout_ms = tail->timeout_ms;
    w.epoch = tail->epoch;
    w.shard = tail->shard;
    w.hops = tail->hops;
  } else if (!r.tail(w)) {
    return std::nullopt;
  }
  if (!r.finished()) return std::nullopt;

  remote_envelope e;
  std::optional<std::string_view> type = w.type;
  if (head_known) {
    e.kind = head->kind;
    e.from = head->from;
    e.target = head->target;
    e.sender = head->sender;
    if (head->type) type = *head->type;
  } else {
    if (auto ok = check_head(w, ids, e); !ok) return expected<remote_envelope>{ok.error()};
    if (head != nullptr) {
      head->text.assign(bytes.substr(0, head_size));
      head->kind = e.kind;
      head->from = e.from;
      head->target = e.target;
      head->sender = e.sender;
      if (w.type) {
        head->type.emplace(*w.type);
      } else {
        head->type.reset();
      }
    }
  }
  if (auto ok = check_rest(w, type, e); !ok) return expected<remote_envelope>{ok.error()};
  if (tail != nullptr && !tail_known && !w.failure) {
    tail->text.assign(rest);
    tail->correlation = w.correlation;
    tail->timeout_ms = w.timeout_ms;
    tail->epoch = w.epoch;
    tail->shard = w.shard;
    tail->hops = w.hops;
  }
  return expected<remote_envelope>{std::move(e)};
}

expected<remote_envelope> decode_envelope(std::string_view bytes, envelope_ids* ids) {
  if (auto fast = detail::decode_envelope_fast(bytes, ids)) return std::move(*fast);
  return detail::decode_envelope_general(bytes, ids);
}

expected<remote_envelope> detail::decode_envelope_general(std::string_view bytes, envelope_ids* ids) {
  auto w = json::decode<wire_envelope>(bytes, max_envelope_size);
  if (!w) return w.error();
  return check(*w, ids);
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
  std::size_t digits = 1;
  for (auto n = count_; n >= 10; n /= 10) ++digits;
  return buffer_.size() - header_room + 2 + digits;
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
