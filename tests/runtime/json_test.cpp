#include <aether/runtime/json.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bank {

struct deposit {
  static constexpr std::string_view type_name = "bank.deposit";
  std::int64_t cents = 0;
  std::string memo;
  std::optional<std::string> reference;
  std::vector<std::int64_t> tags;

  friend bool operator==(const deposit&, const deposit&) = default;
};
AETHER_JSON_FIELDS(deposit, cents, memo, reference, tags)

struct line_item {
  std::string sku;
  std::uint32_t quantity = 0;
  double price = 0;

  friend bool operator==(const line_item&, const line_item&) = default;
};
AETHER_JSON_FIELDS(line_item, sku, quantity, price)

struct order {
  std::string id;
  std::vector<line_item> items;
  std::map<std::string, std::string> labels;
  std::optional<line_item> gift;
  aether::json::raw payload;
  bool rush = false;
  float weight = 0;
  std::vector<std::vector<int>> grid;
  std::map<std::string, std::vector<line_item>> by_warehouse;
  std::optional<std::vector<std::optional<std::int64_t>>> sparse;

  friend bool operator==(const order&, const order&) = default;
};
AETHER_JSON_FIELDS(order, id, items, labels, gift, payload, rush, weight, grid, by_warehouse, sparse)

struct limits {
  std::int8_t i8 = 0;
  std::uint8_t u8 = 0;
  std::int16_t i16 = 0;
  std::uint16_t u16 = 0;
  std::int32_t i32 = 0;
  std::uint32_t u32 = 0;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  signed char sc = 0;
  unsigned char uc = 0;
  short s = 0;
  unsigned short us = 0;
  int i = 0;
  unsigned u = 0;
  long l = 0;
  unsigned long ul = 0;
  long long ll = 0;
  unsigned long long ull = 0;
  bool b = false;
  float f = 0;
  double d = 0;

  friend bool operator==(const limits&, const limits&) = default;
};
AETHER_JSON_FIELDS(limits, i8, u8, i16, u16, i32, u32, i64, u64, sc, uc, s, us, i, u, l, ul, ll, ull, b, f, d)

struct ping {
  friend bool operator==(const ping&, const ping&) = default;
};
AETHER_JSON_FIELDS(ping)

struct envelope {
  std::string kind;
  aether::json::raw body;
  std::optional<aether::json::raw> meta;

  friend bool operator==(const envelope&, const envelope&) = default;
};
AETHER_JSON_FIELDS(envelope, kind, body, meta)

struct text {
  std::string value;
};
AETHER_JSON_FIELDS(text, value)

} // namespace bank

namespace {

using aether::errc;
namespace json = aether::json;

template <class T>
T round_trip(const T& value) {
  const auto decoded = json::decode<T>(json::encode(value));
  REQUIRE_MESSAGE(decoded.has_value(), decoded.error().detail());
  return *decoded;
}

// The detail of a decode that must fail with malformed_payload.
template <class T>
std::string malformed(std::string_view input) {
  const auto decoded = json::decode<T>(input);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code() == errc::malformed_payload);
  return decoded.error().detail();
}

bank::order sample_order() {
  bank::order o;
  o.id = "o-17";
  o.items = {{"apple", 3, 0.25}, {"pear", 1, 1e-3}};
  o.labels = {{"env", "prod"}, {"", "empty key"}, {"quote\"key", "v"}};
  o.gift = bank::line_item{"card", 1, 0};
  o.payload = json::raw{R"({"free": ["form", 1, true, null]})"};
  o.rush = true;
  o.weight = 2.5f;
  o.grid = {{1, 2}, {}, {-3}};
  o.by_warehouse = {{"north", {{"apple", 10, 0.2}}}, {"south", {}}};
  o.sparse = std::vector<std::optional<std::int64_t>>{1, std::nullopt, 3};
  return o;
}

} // namespace

TEST_CASE("a declared type encodes to compact JSON with its fields in declaration order") {
  const bank::deposit d{5, "x", std::nullopt, {1, 2}};
  CHECK(json::encode(d) == R"({"cents":5,"memo":"x","reference":null,"tags":[1,2]})");
  const bank::deposit with_reference{-7, "", "r-1", {}};
  CHECK(json::encode(with_reference) == R"({"cents":-7,"memo":"","reference":"r-1","tags":[]})");
}

TEST_CASE("a declared type decodes from JSON in any field order and with whitespace") {
  const auto d = json::decode<bank::deposit>(R"( { "tags" : [ 3 ] , "memo":"m", "cents": 42 } )");
  REQUIRE_MESSAGE(d.has_value(), d.error().detail());
  CHECK(*d == bank::deposit{42, "m", std::nullopt, {3}});
}

TEST_CASE("encode_to appends to a buffer") {
  fmt::memory_buffer out;
  json::encode_to(out, bank::deposit{1, "a", std::nullopt, {}});
  out.push_back('\n');
  json::encode_to(out, bank::ping{});
  CHECK(fmt::to_string(out) == "{\"cents\":1,\"memo\":\"a\",\"reference\":null,\"tags\":[]}\n{}");
}

TEST_CASE("every supported field type survives a round trip") {
  const auto o = sample_order();
  CHECK(round_trip(o) == o);
  bank::order empty;
  CHECK(round_trip(empty).payload == json::raw{"null"});
}

TEST_CASE("a type with no fields is an empty object") {
  CHECK(json::encode(bank::ping{}) == "{}");
  CHECK(json::decode<bank::ping>(R"({"ignored": 1})").has_value());
}

TEST_CASE("a type with more than sixteen fields of every integer width round-trips at the limits") {
  bank::limits low;
  low.i8 = std::numeric_limits<std::int8_t>::min();
  low.i16 = std::numeric_limits<std::int16_t>::min();
  low.i32 = std::numeric_limits<std::int32_t>::min();
  low.i64 = std::numeric_limits<std::int64_t>::min();
  low.sc = std::numeric_limits<signed char>::min();
  low.s = std::numeric_limits<short>::min();
  low.i = std::numeric_limits<int>::min();
  low.l = std::numeric_limits<long>::min();
  low.ll = std::numeric_limits<long long>::min();
  low.f = -std::numeric_limits<float>::max();
  low.d = std::numeric_limits<double>::lowest();
  CHECK(round_trip(low) == low);

  bank::limits high;
  high.i8 = std::numeric_limits<std::int8_t>::max();
  high.u8 = std::numeric_limits<std::uint8_t>::max();
  high.i16 = std::numeric_limits<std::int16_t>::max();
  high.u16 = std::numeric_limits<std::uint16_t>::max();
  high.i32 = std::numeric_limits<std::int32_t>::max();
  high.u32 = std::numeric_limits<std::uint32_t>::max();
  high.i64 = std::numeric_limits<std::int64_t>::max();
  high.u64 = std::numeric_limits<std::uint64_t>::max();
  high.sc = std::numeric_limits<signed char>::max();
  high.uc = std::numeric_limits<unsigned char>::max();
  high.s = std::numeric_limits<short>::max();
  high.us = std::numeric_limits<unsigned short>::max();
  high.i = std::numeric_limits<int>::max();
  high.u = std::numeric_limits<unsigned>::max();
  high.l = std::numeric_limits<long>::max();
  high.ul = std::numeric_limits<unsigned long>::max();
  high.ll = std::numeric_limits<long long>::max();
  high.ull = std::numeric_limits<unsigned long long>::max();
  high.b = true;
  high.f = std::numeric_limits<float>::denorm_min();
  high.d = 0.1;
  CHECK(round_trip(high) == high);
}

TEST_CASE("doubles keep their exact value and non-finite ones encode as null") {
  bank::line_item item{"x", 1, 0.1 + 0.2};
  CHECK(round_trip(item).price == 0.1 + 0.2);
  item.price = 1e300;
  CHECK(round_trip(item).price == 1e300);
  item.price = std::numeric_limits<double>::infinity();
  CHECK(json::encode(item) == R"({"sku":"x","quantity":1,"price":null})");
  CHECK(malformed<bank::line_item>(json::encode(item)) == "price: expected a number, found null");
}

TEST_CASE("strings are escaped on encode and unescaped on decode") {
  const bank::text t{"quote\" backslash\\ slash/ newline\n tab\t nul" + std::string(1, '\0') + " bell\x07 del\x7f"};
  CHECK(json::encode(t) == R"({"value":"quote\" backslash\\ slash/ newline\u000a tab\u0009 nul\u0000 bell\u0007 del)"
                           "\x7f\"}");
  CHECK(round_trip(t).value == t.value);

  const auto escaped = json::decode<bank::text>(R"({"value":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"})");
  REQUIRE_MESSAGE(escaped.has_value(), escaped.error().detail());
  CHECK(escaped->value == "\"\\/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST_CASE("valid UTF-8 passes through and invalid UTF-8 is replaced when encoding") {
  const bank::text unicode{"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF"};
  CHECK(json::encode(unicode) == "{\"value\":\"" + unicode.value + "\"}");
  CHECK(round_trip(unicode).value == unicode.value);

  // A stray continuation byte, a truncated sequence, an overlong form, a surrogate, beyond U+10FFFF.
  const bank::text broken{"a\x80"
                          "b\xE2\x82"
                          "c\xC0\xAF"
                          "d\xED\xA0\x80"
                          "e\xF4\x90\x80\x80"};
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(json::encode(broken) == "{\"value\":\"a" + fffd + "b" + fffd + fffd + "c" + fffd + fffd + "d" + fffd + fffd +
                                    fffd + "e" + fffd + fffd + fffd + fffd + "\"}");
  CHECK(json::decode<bank::text>(json::encode(broken)).has_value());
}

TEST_CASE("a missing optional field and a null both decode as nullopt") {
  const auto missing = json::decode<bank::deposit>(R"({"cents":1,"memo":"","tags":[]})");
  REQUIRE(missing.has_value());
  CHECK_FALSE(missing->reference.has_value());
  const auto null = json::decode<bank::deposit>(R"({"cents":1,"memo":"","reference":null,"tags":[]})");
  REQUIRE(null.has_value());
  CHECK_FALSE(null->reference.has_value());
}

TEST_CASE("unknown fields are ignored, whatever their shape") {
  const auto d = json::decode<bank::deposit>(
      R"({"version":2,"cents":1,"extra":{"a":[1,{"b":null}],"c":"\u00e9"},"memo":"m","tags":[],"z":[true,false,-1.5e3]})");
  REQUIRE_MESSAGE(d.has_value(), d.error().detail());
  CHECK(*d == bank::deposit{1, "m", std::nullopt, {}});
}

TEST_CASE("a repeated field keeps its last value") {
  const auto d = json::decode<bank::deposit>(R"({"cents":1,"memo":"a","tags":[1,2],"cents":2,"tags":[3]})");
  REQUIRE(d.has_value());
  CHECK(d->cents == 2);
  CHECK(d->tags == std::vector<std::int64_t>{3});
}

TEST_CASE("raw values are copied through verbatim and captured as their exact text") {
  const bank::envelope e{"k", json::raw{R"({"a": [1, 2.50, "\u00e9"]})"}, json::raw{"[ ]"}};
  CHECK(json::encode(e) == R"({"kind":"k","body":{"a": [1, 2.50, "\u00e9"]},"meta":[ ]})");
  CHECK(round_trip(e) == e);

  const auto scalars = json::decode<std::vector<json::raw>>("[ \"s\\n\" , -0.5e1 ,true,null\n,{} ]");
  REQUIRE_MESSAGE(scalars.has_value(), scalars.error().detail());
  CHECK(*scalars == std::vector<json::raw>{{"\"s\\n\""}, {"-0.5e1"}, {"true"}, {"null"}, {"{}"}});

  const auto null_meta = json::decode<bank::envelope>(R"({"kind":"k","body":null,"meta":null})");
  REQUIRE(null_meta.has_value());
  CHECK(null_meta->body == json::raw{"null"});
  CHECK_FALSE(null_meta->meta.has_value());

  CHECK(json::encode(bank::envelope{}) == R"({"kind":"","body":null,"meta":null})");
}

TEST_CASE("vectors and maps decode at the root") {
  const auto list =
      json::decode<std::vector<bank::deposit>>(json::encode(std::vector<bank::deposit>{{1, "a", {}, {}}}));
  REQUIRE(list.has_value());
  CHECK(list->size() == 1);
  const auto map = json::decode<std::map<std::string, int>>(R"({"a":1,"b":2})");
  REQUIRE(map.has_value());
  CHECK(*map == std::map<std::string, int>{{"a", 1}, {"b", 2}});
}

TEST_CASE("input that is not JSON is a malformed payload") {
  CHECK(malformed<bank::deposit>("") == "invalid JSON: empty input");
  CHECK(malformed<bank::deposit>("  \n") == "invalid JSON: empty input");
  CHECK_FALSE(malformed<bank::deposit>("hello").empty());
  CHECK(malformed<bank::deposit>("5") == "expected an object or an array, found a number");
  CHECK(malformed<bank::deposit>("\"s\"") == "expected an object or an array, found a string");
  CHECK(malformed<bank::deposit>("[1]") == "expected an object, found an array");
  CHECK(malformed<bank::deposit>(R"({"cents" 1})") == "invalid JSON: malformed structure");
  CHECK(malformed<bank::deposit>(R"({"cents":1 "memo":""})") == "invalid JSON: malformed structure");
}

TEST_CASE("a field of the wrong type is a malformed payload naming the field") {
  CHECK(malformed<bank::deposit>(R"({"cents":"5","memo":"x","tags":[]})") ==
        "cents: expected an integer, found a string");
  CHECK(malformed<bank::deposit>(R"({"cents":1.5,"memo":"x","tags":[]})") ==
        "cents: expected an integer, found a number");
  CHECK(malformed<bank::deposit>(R"({"cents":1,"memo":null,"tags":[]})") == "memo: expected a string, found null");
  CHECK(malformed<bank::deposit>(R"({"cents":1,"memo":"","tags":{}})") == "tags: expected an array, found an object");
  CHECK(malformed<bank::deposit>(R"({"cents":1,"memo":"","tags":[1,"2"]})") ==
        "tags[1]: expected an integer, found a string");
  CHECK(malformed<bank::limits>(R"({"b":1})") == "b: expected true or false, found a number");
  CHECK(malformed<bank::limits>(R"({"b":tru})") == "b: expected true or false, found invalid literal tru");
  CHECK(malformed<bank::limits>(R"({"d":"1"})") == "d: expected a number, found a string");
}

TEST_CASE("an error in a nested value names the whole path") {
  auto o = json::encode(sample_order());
  const auto at = o.find(R"("quantity":1)");
  REQUIRE(at != std::string::npos);
  o.replace(at, 12, R"("quantity":"1")");
  CHECK(malformed<bank::order>(o) == "items[1].quantity: expected an integer, found a string");
  CHECK(malformed<bank::order>(R"({"labels":{"env":7}})") == "labels.env: expected a string, found a number");
  CHECK(malformed<bank::order>(R"({"by_warehouse":{"n":[{"sku":"a","quantity":1}]}})") ==
        "by_warehouse.n[0].price: missing required field");
  CHECK(malformed<bank::order>(R"({"sparse":[1,null,"x"]})") == "sparse[2]: expected an integer, found a string");
}

TEST_CASE("a missing required field is a malformed payload naming it") {
  CHECK(malformed<bank::deposit>(R"({"memo":"x","tags":[]})") == "cents: missing required field");
  CHECK(malformed<bank::deposit>(R"({"cents":1,"memo":"x"})") == "tags: missing required field");
  CHECK(malformed<bank::order>(R"({"gift":{}})") == "gift.sku: missing required field");
}

TEST_CASE("an integer that does not fit its field is a malformed payload") {
  CHECK(malformed<bank::limits>(R"({"i8":128})") == "i8: integer 128 out of range [-128, 127]");
  CHECK(malformed<bank::limits>(R"({"i8":-129})") == "i8: integer -129 out of range [-128, 127]");
  CHECK(malformed<bank::limits>(R"({"u8":-1})") == "u8: integer -1 out of range [0, 255]");
  CHECK(malformed<bank::limits>(R"({"u16":65536})") == "u16: integer 65536 out of range [0, 65535]");
  CHECK(malformed<bank::limits>(R"({"i64":9223372036854775808})") ==
        "i64: integer 9223372036854775808 out of range [-9223372036854775808, 9223372036854775807]");
  CHECK(malformed<bank::limits>(R"({"u64":18446744073709551616})") ==
        "u64: integer 18446744073709551616 out of range [0, 18446744073709551615]");
  CHECK(malformed<bank::limits>(R"({"i":123456789012345678901234567890123456789012345678901234567890})") ==
        "i: integer 1234567890123456789012345678901234567890... out of range [-2147483648, 2147483647]");
  CHECK(malformed<bank::limits>(R"({"f":1e39})") == "f: number out of range for a float");
  CHECK(malformed<bank::limits>(R"({"d":1e400})") == "d: invalid JSON: malformed or out-of-range number");
}

TEST_CASE("trailing content after the value is a malformed payload") {
  const std::string valid = R"({"cents":1,"memo":"","tags":[]})";
  CHECK(malformed<bank::deposit>(valid + " x") == "trailing content after the JSON value");
  CHECK(malformed<bank::deposit>(valid + "}") == "trailing content after the JSON value");
  CHECK(malformed<bank::deposit>(valid + valid) == "trailing content after the JSON value");
  CHECK(json::decode<bank::deposit>(valid + " \n\t\r").has_value());
}

TEST_CASE("every truncation of a valid payload is a malformed payload") {
  const auto full = json::encode(sample_order());
  REQUIRE(json::decode<bank::order>(full).has_value());
  for (std::size_t size = 0; size < full.size(); ++size) {
    CAPTURE(size);
    const auto decoded = json::decode<bank::order>(std::string_view{full}.substr(0, size));
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code() == errc::malformed_payload);
  }
}

TEST_CASE("invalid strings are a malformed payload") {
  CHECK(malformed<bank::text>("{\"value\":\"\xff\"}") == "invalid JSON: invalid UTF-8");
  CHECK(malformed<bank::text>("{\"value\":\"a\xC0\xAF\"}") == "invalid JSON: invalid UTF-8");
  CHECK(malformed<bank::text>("{\"ignored\":\"\xED\xA0\x80\",\"value\":\"\"}") == "invalid JSON: invalid UTF-8");
  CHECK(malformed<bank::text>(R"({"value":"\ud800"})") == "value: invalid JSON: invalid escape in a string");
  CHECK(malformed<bank::text>(R"({"value":"\udc00"})") == "value: invalid JSON: invalid escape in a string");
  CHECK(malformed<bank::text>(R"({"value":"\x"})") == "value: invalid JSON: invalid escape in a string");
  CHECK(malformed<bank::text>("{\"value\":\"a\nb\"}") == "invalid JSON: unescaped control character in a string");
  CHECK(malformed<bank::text>(R"({"value":"abc)") == "invalid JSON: unclosed string");
}

TEST_CASE("invalid JSON inside ignored fields and raw values is a malformed payload") {
  CHECK(malformed<bank::text>(R"({"junk":[1,tru],"value":""})") == "junk[1]: invalid JSON: invalid literal");
  CHECK(malformed<bank::text>(R"({"junk":{"a":nul},"value":""})") == "junk.a: invalid JSON: invalid literal");
  CHECK(malformed<bank::text>(R"({"junk":[01],"value":""})") ==
        "junk[0]: invalid JSON: malformed or out-of-range number");
  CHECK(malformed<bank::text>(R"({"junk":{"a" 1},"value":""})") == "junk: invalid JSON: malformed structure");
  CHECK(malformed<bank::envelope>(R"({"kind":"k","body":[1,-]})") ==
        "body[1]: invalid JSON: malformed or out-of-range number");
  CHECK(malformed<bank::envelope>(R"({"kind":"k","body":{"\q":1}})") ==
        "body: invalid JSON: invalid escape in a string");
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  CHECK(malformed<bank::text>(R"({"value":"","junk":)" + deep + "}").find("nesting deeper than 256 levels") !=
        std::string::npos);
}

TEST_CASE("input over the limit is too large a payload") {
  const std::string valid = R"({"cents":1,"memo":"","tags":[]})";
  const auto small = json::decode<bank::deposit>(valid, valid.size() - 1);
  REQUIRE_FALSE(small.has_value());
  CHECK(small.error().code() == errc::payload_too_large);
  CHECK(json::decode<bank::deposit>(valid, valid.size()).has_value());

  const std::string huge(json::default_max_size + 1, ' ');
  const auto over = json::decode<bank::deposit>(huge);
  REQUIRE_FALSE(over.has_value());
  CHECK(over.error().code() == errc::payload_too_large);
}

TEST_CASE("large inputs within the limit decode") {
  bank::deposit d{1, std::string(200'000, 'm'), std::nullopt, std::vector<std::int64_t>(10'000, -42)};
  CHECK(round_trip(d) == d);
}

TEST_CASE("a decode is not affected by the input of the previous one") {
  // The padded buffer is reused: the stale bytes of a longer input must not extend a shorter one.
  CHECK(json::decode<std::vector<int>>("[123456789]").has_value());
  const auto shorter = json::decode<std::vector<int>>("[1");
  CHECK_FALSE(shorter.has_value());
  CHECK(json::decode<std::vector<int>>("[123456789]").has_value());
  const auto next = json::decode<std::vector<int>>("[12]");
  REQUIRE(next.has_value());
  CHECK(*next == std::vector<int>{12});
}

TEST_CASE("the decoder runs simdjson's best kernel for the target: NEON on aarch64") {
  MESSAGE("simdjson kernel: ", json::kernel());
#if defined(__aarch64__)
  CHECK(json::kernel() == "arm64");
#elif defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                 \
    defined(__PCLMUL__)
  CHECK(json::kernel() == "icelake");
#elif defined(__x86_64__) && defined(__AVX2__) && defined(__BMI__) && defined(__PCLMUL__) && defined(__LZCNT__)
  CHECK(json::kernel() == "haswell");
#else
  CHECK_FALSE(json::kernel().empty());
#endif
}
