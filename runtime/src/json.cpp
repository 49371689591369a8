// The non-template halves of aether::json: string escaping for the encoder, and the value_reader over
// simdjson On-Demand for the decoder.
#include <aether/runtime/json.hpp>

#include <simdjson.h>

#include <algorithm>
#include <cstring>

namespace aether::json::detail {

namespace {

// Bytes that can be copied into a JSON string as they are: printable ASCII but the quote and the backslash.
[[nodiscard]] constexpr bool plain_ascii(unsigned char c) noexcept {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

[[nodiscard]] constexpr bool continuation(unsigned char c) noexcept { return (c & 0xC0) == 0x80; }

// The length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF) at `p`, whose first byte is not ASCII, or 0 if it is ill-formed.
[[nodiscard]] std::size_t utf8_sequence_length(const unsigned char* p, const unsigned char* end) noexcept {
  const auto left = static_cast<std::size_t>(end - p);
  const unsigned char c = p[0];
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && continuation(p[1]) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !continuation(p[1]) || !continuation(p[2])) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0; // overlong
    if (c == 0xED && p[1] > 0x9F) return 0; // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !continuation(p[1]) || !continuation(p[2]) || !continuation(p[3])) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0; // overlong
    if (c == 0xF4 && p[1] > 0x8F) return 0; // over U+10FFFF
    return 4;
  }
  return 0;
}

} // namespace

void write_string(fmt::memory_buffer& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  static constexpr std::string_view replacement = "\xEF\xBF\xBD"; // U+FFFD
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  const auto* run = p; // start of the bytes not yet copied
  const auto flush = [&] { out.append(reinterpret_cast<const char*>(run), reinterpret_cast<const char*>(p)); };
  out.push_back('"');
  while (p != end) {
    const unsigned char c = *p;
    if (plain_ascii(c)) {
      ++p;
    } else if (c >= 0x80) {
      if (const auto length = utf8_sequence_length(p, end); length != 0) {
        p += length;
      } else {
        flush();
        append(out, replacement);
        run = ++p;
      }
    } else {
      flush();
      if (c == '"' || c == '\\') {
        const char escaped[] = {'\\', static_cast<char>(c)};
        out.append(escaped, escaped + 2);
      } else {
        const char escaped[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(escaped, escaped + 6);
      }
      run = ++p;
    }
  }
  flush();
  out.push_back('"');
}

namespace {

namespace od = simdjson::ondemand;

// Deeper values inside ignored fields and raw values are refused rather than risk the stack.
constexpr int max_nesting = 256;
// Inputs up to this size are parsed with the calling thread's reusable buffers; larger ones get their own.
constexpr std::size_t thread_buffer_limit = std::size_t{64} << 10;
// Values quoted in error details are cut to this length.
constexpr std::size_t max_quote = 40;

[[nodiscard]] std::string_view describe(simdjson::error_code e) noexcept {
  switch (e) {
  case simdjson::EMPTY:
    return "empty input";
  case simdjson::UTF8_ERROR:
    return "invalid UTF-8";
  case simdjson::UNCLOSED_STRING:
    return "unclosed string";
  case simdjson::UNESCAPED_CHARS:
    return "unescaped control character in a string";
  case simdjson::STRING_ERROR:
    return "invalid escape in a string";
  case simdjson::NUMBER_ERROR:
    return "malformed or out-of-range number";
  case simdjson::T_ATOM_ERROR:
  case simdjson::F_ATOM_ERROR:
  case simdjson::N_ATOM_ERROR:
  case simdjson::INCORRECT_TYPE:
    return "invalid literal";
  case simdjson::TAPE_ERROR:
    return "malformed structure";
  case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
    return "truncated input";
  case simdjson::DEPTH_ERROR:
    return "nesting too deep";
  default:
    return simdjson::error_message(e);
  }
}

[[nodiscard]] std::string_view type_name(od::json_type type) noexcept {
  switch (type) {
  case od::json_type::array:
    return "an array";
  case od::json_type::object:
    return "an object";
  case od::json_type::number:
    return "a number";
  case od::json_type::string:
    return "a string";
  case od::json_type::boolean:
    return "a boolean";
  case od::json_type::null:
    return "null";
  }
  return "an unknown value";
}

[[nodiscard]] std::string_view trim_right(std::string_view text) noexcept {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

[[nodiscard]] std::string quote(std::string_view text) {
  if (text.size() <= max_quote) return std::string{text};
  return fmt::format("{}...", text.substr(0, max_quote));
}

// An optional minus sign and digits only: a JSON integer, whatever its size.
[[nodiscard]] bool integer_literal(std::string_view token) noexcept {
  if (!token.empty() && token.front() == '-') token.remove_prefix(1);
  return !token.empty() && std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What went wrong in one decode: the innermost message and the path to it.
struct decode_context {
  const char* input_end; // end of the input, padding excluded
  std::string what;
  std::vector<std::string> path; // innermost segment first

  bool fail(std::string message) {
    what = std::move(message);
    return false;
  }
  bool fail(simdjson::error_code e) { return fail(fmt::format("invalid JSON: {}", describe(e))); }

  [[nodiscard]] std::string detail() const {
    std::string out;
    for (auto segment = path.rbegin(); segment != path.rend(); ++segment) out += *segment;
    if (!out.empty() && out.front() == '.') out.erase(0, 1);
    if (out.empty()) return what;
    return fmt::format("{}: {}", out, what);
  }
};

class ondemand_reader final : public value_reader {
public:
  ondemand_reader(od::value value, decode_context& context) noexcept : value_{value}, context_{&context} {}

  bool read_null(bool& is_null) override {
    if (auto e = value_.is_null().get(is_null)) return context_->fail(e);
    return true;
  }

  bool read_bool(bool& out) override {
    if (auto e = value_.get_bool().get(out)) return mismatch(e, "true or false");
    return true;
  }

  bool read_int(std::int64_t& out, std::int64_t min, std::int64_t max) override {
    std::int64_t value = 0;
    if (auto e = value_.get_int64().get(value)) return integer_mismatch(e, min, max);
    if (value < min || value > max) return out_of_range(fmt::format_int{value}.str(), min, max);
    out = value;
    return true;
  }

  bool read_uint(std::uint64_t& out, std::uint64_t max) override {
    std::uint64_t value = 0;
    if (auto e = value_.get_uint64().get(value)) return integer_mismatch(e, 0, max);
    if (value > max) return out_of_range(fmt::format_int{value}.str(), 0, max);
    out = value;
    return true;
  }

  bool read_double(double& out) override {
    if (auto e = value_.get_double().get(out)) return mismatch(e, "a number");
    return true;
  }

  bool read_string(std::string& out) override {
    std::string_view text;
    if (auto e = value_.get_string().get(text)) return mismatch(e, "a string");
    out.assign(text);
    return true;
  }

  bool read_raw(std::string& out) override {
    const char* const start = value_.raw_json_token().data();
    if (!skip_value(value_, 0)) return false;
    // Consuming the value moved the shared iterator to the next token, or past the last one.
    const char* end = context_->input_end;
    if (auto next = value_.current_location(); !next.error()) end = next.value_unsafe();
    out.assign(trim_right(std::string_view{start, static_cast<std::size_t>(end - start)}));
    return true;
  }

  bool read_array(element_visitor visit) override {
    od::array array;
    if (auto e = value_.get_array().get(array)) return mismatch(e, "an array");
    return visit_elements(array, visit);
  }

  bool read_object(member_visitor visit) override {
    od::object object;
    if (auto e = value_.get_object().get(object)) return mismatch(e, "an object");
    return visit_members(object, visit);
  }

  bool skip() override { return skip_value(value_, 0); }

  bool fail(std::string_view what) override { return context_->fail(std::string{what}); }

  bool fail_missing(std::string_view name) override {
    context_->path.push_back(fmt::format(".{}", name));
    return context_->fail("missing required field");
  }

private:
  template <class Visit>
  bool for_each_element(od::array& array, Visit& visit) {
    std::size_t index = 0;
    for (auto element : array) {
      od::value value;
      auto e = element.get(value);
      if (e) context_->fail(e);
      if (e || !visit(value)) {
        context_->path.push_back(fmt::format("[{}]", index));
        return false;
      }
      ++index;
    }
    return true;
  }

  template <class Visit>
  bool for_each_member(od::object& object, Visit& visit) {
    for (auto member : object) {
      od::field field;
      std::string_view key;
      if (auto e = std::move(member).get(field)) return context_->fail(e);
      if (auto e = field.unescaped_key().get(key)) return context_->fail(e);
      if (!visit(key, field.value())) {
        context_->path.push_back(fmt::format(".{}", key));
        return false;
      }
    }
    return true;
  }

  bool visit_elements(od::array& array, element_visitor& visit) {
    const auto call = [&](od::value& value) {
      ondemand_reader element{value, *context_};
      return visit(element);
    };
    return for_each_element(array, call);
  }

  bool visit_members(od::object& object, member_visitor& visit) {
    const auto call = [&](std::string_view key, od::value& value) {
      ondemand_reader member{value, *context_};
      return visit(key, member);
    };
    return for_each_member(object, call);
  }

  // Consumes `value` after checking that it is valid JSON all the way down.
  bool skip_value(od::value& value, int depth) {
    if (depth > max_nesting) return context_->fail(fmt::format("nesting deeper than {} levels", max_nesting));
    od::json_type type;
    if (auto e = value.type().get(type)) return context_->fail(e);
    simdjson::error_code e = simdjson::SUCCESS;
    switch (type) {
    case od::json_type::array: {
      od::array array;
      if ((e = value.get_array().get(array))) break;
      auto skip_element = [&](od::value& element) { return skip_value(element, depth + 1); };
      return for_each_element(array, skip_element);
    }
    case od::json_type::object: {
      od::object object;
      if ((e = value.get_object().get(object))) break;
      auto skip_member = [&](std::string_view, od::value& member) { return skip_value(member, depth + 1); };
      return for_each_member(object, skip_member);
    }
    case od::json_type::number: {
      double number = 0;
      e = value.get_double().get(number);
      if (e == simdjson::INCORRECT_TYPE) e = simdjson::NUMBER_ERROR;
      break;
    }
    case od::json_type::string: {
      std::string_view text;
      e = value.get_string().get(text);
      break;
    }
    case od::json_type::boolean: {
      bool flag = false;
      e = value.get_bool().get(flag);
      break;
    }
    case od::json_type::null: {
      bool is_null = false;
      e = value.is_null().get(is_null);
      if (!e && !is_null) e = simdjson::N_ATOM_ERROR;
      break;
    }
    }
    return e ? context_->fail(e) : true;
  }

  // A typed read failed with `e`: a value of another type, or invalid JSON.
  bool mismatch(simdjson::error_code e, std::string_view expected) {
    if (e != simdjson::INCORRECT_TYPE) return context_->fail(e);
    return context_->fail(fmt::format("expected {}, found {}", expected, found()));
  }

  // A failed integer read, which left the value unread: an integer beyond 64 bits, another type or invalid.
  bool integer_mismatch(simdjson::error_code e, std::int64_t min, std::uint64_t max) {
    const auto token = trim_right(value_.raw_json_token());
    if (e == simdjson::INCORRECT_TYPE && integer_literal(token)) return out_of_range(token, min, max);
    return mismatch(e, "an integer");
  }

  bool out_of_range(std::string_view token, std::int64_t min, std::uint64_t max) {
    return context_->fail(fmt::format("integer {} out of range [{}, {}]", quote(token), min, max));
  }

  // What the value is, for an error detail.
  [[nodiscard]] std::string found() {
    od::json_type type;
    if (value_.type().get(type)) return "an invalid token";
    if (type == od::json_type::boolean || type == od::json_type::null) {
      const auto token = trim_right(value_.raw_json_token());
      if (token != "true" && token != "false" && token != "null")
        return fmt::format("invalid literal {}", quote(token));
    }
    if (type == od::json_type::number) {
      double number = 0;
      if (value_.get_double().get(number)) return "a malformed number";
    }
    return std::string{type_name(type)};
  }

  od::value value_;
  decode_context* context_;
};

// A parser and the padded copy of the input it reads.
struct parse_buffers {
  od::parser parser;
  std::unique_ptr<char[]> bytes;
  std::size_t capacity = 0; // bytes of input that fit, padding excluded

  // Copies `json` followed by zeroed padding, reusing the buffer when it is large enough.
  simdjson::padded_string_view copy(std::string_view json) {
    if (!bytes || json.size() > capacity) {
      capacity = std::max({json.size(), 2 * capacity, std::size_t{4096}});
      bytes.reset(new char[capacity + simdjson::SIMDJSON_PADDING]);
    }
    std::memcpy(bytes.get(), json.data(), json.size());
    std::memset(bytes.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    return simdjson::padded_string_view{bytes.get(), json.size(), capacity + simdjson::SIMDJSON_PADDING};
  }
};

bool decode_root(parse_buffers& buffers, std::string_view json, value_reader::element_visitor& visit,
                 decode_context& context) {
  const auto input = buffers.copy(json);
  context.input_end = input.data() + input.size();
  od::document document;
  if (auto e = buffers.parser.iterate(input).get(document)) return context.fail(e);
  od::value root;
  if (auto e = document.get_value().get(root)) {
    od::json_type type;
    if (e != simdjson::SCALAR_DOCUMENT_AS_VALUE || document.type().get(type)) return context.fail(e);
    return context.fail(fmt::format("expected an object or an array, found {}", type_name(type)));
  }
  ondemand_reader reader{root, context};
  if (!visit(reader)) return false;
  if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return context.fail("trailing content after the JSON value");
  }
  return true;
}

} // namespace

expected<void> decode_document(std::string_view json, std::size_t max_size, value_reader::element_visitor visit) {
  if (json.size() > max_size) {
    return error{errc::payload_too_large, fmt::format("{} bytes, over the limit of {}", json.size(), max_size)};
  }
  decode_context context{};
  bool ok = false;
  if (json.size() <= thread_buffer_limit) {
    thread_local parse_buffers buffers;
    ok = decode_root(buffers, json, visit, context);
  } else {
    parse_buffers buffers; // freed again: one large input should not pin memory to the thread
    ok = decode_root(buffers, json, visit, context);
  }
  if (ok) return {};
  return error{errc::malformed_payload, context.detail()};
}

} // namespace aether::json::detail

namespace aether::json {

#define AETHER_JSON_NAME_OF(x) AETHER_JSON_NAME_OF_(x)
#define AETHER_JSON_NAME_OF_(x) #x
std::string_view kernel() noexcept { return AETHER_JSON_NAME_OF(SIMDJSON_BUILTIN_IMPLEMENTATION); }
#undef AETHER_JSON_NAME_OF_
#undef AETHER_JSON_NAME_OF

} // namespace aether::json
