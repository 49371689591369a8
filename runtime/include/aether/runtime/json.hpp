#pragma once

#include <aether/runtime/error.hpp>
#include <aether/runtime/expected.hpp>

#include <fmt/format.h>

#include <bitset>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

/// JSON encoding and decoding of declared message and event types.
///
/// A type is declared once, after its definition and in its namespace:
///
///     struct deposit {
///       static constexpr std::string_view type_name = "bank.deposit";
///       std::int64_t cents;
///       std::string memo;
///       std::optional<std::string> reference;
///     };
///     AETHER_JSON_FIELDS(deposit, cents, memo, reference)
///
/// and then `aether::json::encode(d)` gives `{"cents":5,"memo":"x","reference":null}` and
/// `aether::json::decode<deposit>(text)` gives it back or `errc::malformed_payload` with a detail that
/// names the field path, e.g. "items[2].cents: expected an integer, found a string".
///
/// Field types: `bool`, integers (not the character types; range-checked on decode), `float`, `double`
/// (infinities and NaN encode as null), `std::string` (invalid UTF-8 encodes as U+FFFD), `std::vector<T>`,
/// `std::optional<T>` (null or missing is `nullopt`), `std::map<std::string, T>`, other declared types and
/// `json::raw`.
///
/// Decoding accepts exactly RFC 8259 JSON (also inside ignored fields and `raw` values) with one root value;
/// unknown fields are ignored, duplicate fields keep the last value. Numbers beyond the range of a double
/// (1e400) are rejected.
namespace aether::json {

/// The simdjson kernel that decodes: chosen when the runtime is compiled, from the target's instruction
/// set (simdjson's On-Demand API has no runtime dispatch). `arm64` (NEON) on aarch64; on x86-64
/// `fallback` for the generic target, `haswell` or `icelake` when built for such CPUs (e.g.
/// `-march=native`).
[[nodiscard]] std::string_view kernel() noexcept;

/// An already-encoded JSON value the runtime does not interpret: copied verbatim by `encode`, captured as
/// its exact text (trailing whitespace trimmed) by `decode`. An empty `text` encodes as `null`; any other
/// text must be one valid JSON value, which `encode` does not check.
struct raw {
  std::string text;

  friend bool operator==(const raw&, const raw&) = default;
};

/// The default limit of `decode`: larger input is `errc::payload_too_large`.
inline constexpr std::size_t default_max_size = std::size_t{1} << 20;

/// One declared field: its JSON name, the text that introduces it in an object (`,"name":`) and the member
/// it maps to.
template <class Class, class Member>
struct field {
  std::string_view name;
  std::string_view key;
  Member Class::*member;
};

/// Types declared with `AETHER_JSON_FIELDS`.
template <class T>
concept declared_type = requires {
  aether_json_fields(static_cast<const T*>(nullptr));
};

/// The declared fields of `T`: a tuple of `field`s in declaration order.
template <declared_type T>
inline constexpr auto fields_of = aether_json_fields(static_cast<const T*>(nullptr));

namespace detail {

/// A non-owning reference to a callable, for the decoder's callbacks.
template <class Signature>
class callback_ref;

/// A callable a `callback_ref` of type `Self` can refer to.
template <class F, class Self, class R, class... Args>
concept callback_for = !std::is_same_v<std::remove_cvref_t<F>, Self> && std::is_invocable_r_v<R, F&, Args...>;

template <class R, class... Args>
class callback_ref<R(Args...)> {
public:
  // Implicit: every call site passes a lambda.
  template <callback_for<callback_ref, R, Args...> F>
  callback_ref(F&& f) noexcept
      : object_{const_cast<void*>(static_cast<const void*>(std::addressof(f)))},
        call_{[](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }} {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

private:
  void* object_;
  R (*call_)(void*, Args...);
};

/// A cursor on one JSON value of the document being decoded, implemented in json.cpp so that the parser
/// stays out of this header. Every `read_*` and `skip` consumes the value once; on failure it records what
/// was wrong and returns false, and the containers around it add their path segment as the failure
/// unwinds.
///
/// Thread-safety: lives on the decoding thread's stack only.
class value_reader {
public:
  using element_visitor = callback_ref<bool(value_reader&)>;
  using member_visitor = callback_ref<bool(std::string_view key, value_reader&)>;

  /// Consumes the value and sets `is_null` if it is null; otherwise leaves it unread.
  [[nodiscard]] virtual bool read_null(bool& is_null) = 0;
  [[nodiscard]] virtual bool read_bool(bool& out) = 0;
  [[nodiscard]] virtual bool read_int(std::int64_t& out, std::int64_t min, std::int64_t max) = 0;
  [[nodiscard]] virtual bool read_uint(std::uint64_t& out, std::uint64_t max) = 0;
  [[nodiscard]] virtual bool read_double(double& out) = 0;
  [[nodiscard]] virtual bool read_string(std::string& out) = 0;
  [[nodiscard]] virtual bool read_raw(std::string& out) = 0;
  /// Calls `visit` for each element in order.
  [[nodiscard]] virtual bool read_array(element_visitor visit) = 0;
  /// Calls `visit` for each member in order with its unescaped key.
  [[nodiscard]] virtual bool read_object(member_visitor visit) = 0;
  /// Validates and consumes the value.
  [[nodiscard]] virtual bool skip() = 0;
  /// Records a failure of this value; returns false.
  virtual bool fail(std::string_view what) = 0;
  /// Records that member `name` of this object is missing; returns false.
  virtual bool fail_missing(std::string_view name) = 0;

protected:
  value_reader() = default;
  value_reader(const value_reader&) = default;
  value_reader& operator=(const value_reader&) = default;
  ~value_reader() = default;
};

/// Parses `json` (at most `max_size` bytes) and hands its root value, which must be an object or an array,
/// to `visit`; then checks that nothing but whitespace follows.
[[nodiscard]] expected<void> decode_document(std::string_view json, std::size_t max_size,
                                             value_reader::element_visitor visit);

/// Appends `text` as a JSON string: quoted, escaped, invalid UTF-8 replaced by U+FFFD.
void write_string(fmt::memory_buffer& out, std::string_view text);

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};

template <class T>
concept json_integer =
    std::integral<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
    !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;

template <class>
inline constexpr bool unsupported_type = false;

// Faster than fmt's generic append for the many short pieces of an encoding.
inline void append(fmt::memory_buffer& out, std::string_view text) {
  const auto size = out.size();
  out.resize(size + text.size());
  std::memcpy(out.data() + size, text.data(), text.size());
}

template <class T>
void write_value(fmt::memory_buffer& out, const T& value);

template <declared_type T, std::size_t... I>
void write_declared(fmt::memory_buffer& out, const T& value, std::index_sequence<I...>) {
  out.push_back('{');
  ((append(out, std::get<I>(fields_of<T>).key.substr(I == 0 ? 1 : 0)),
    write_value(out, value.*std::get<I>(fields_of<T>).member)),
   ...);
  out.push_back('}');
}

template <class T>
void write_value(fmt::memory_buffer& out, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    append(out, value ? "true" : "false");
  } else if constexpr (json_integer<T>) {
    if constexpr (std::is_signed_v<T>) {
      const fmt::format_int text{static_cast<long long>(value)};
      append(out, {text.data(), text.size()});
    } else {
      const fmt::format_int text{static_cast<unsigned long long>(value)};
      append(out, {text.data(), text.size()});
    }
  } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    // JSON has no infinities or NaN: they are written as null, which decodes as an error.
    if (std::isfinite(value)) {
      fmt::format_to(fmt::appender(out), "{}", value);
    } else {
      append(out, "null");
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    write_string(out, value);
  } else if constexpr (std::is_same_v<T, raw>) {
    append(out, value.text.empty() ? std::string_view{"null"} : std::string_view{value.text});
  } else if constexpr (is_optional<T>::value) {
    if (value) {
      write_value(out, *value);
    } else {
      append(out, "null");
    }
  } else if constexpr (is_vector<T>::value) {
    out.push_back('[');
    bool first = true;
    for (const auto& element : value) {
      if (!first) out.push_back(',');
      first = false;
      write_value(out, static_cast<const typename T::value_type&>(element));
    }
    out.push_back(']');
  } else if constexpr (is_string_map<T>::value) {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, element] : value) {
      if (!first) out.push_back(',');
      first = false;
      write_string(out, key);
      out.push_back(':');
      write_value(out, element);
    }
    out.push_back('}');
  } else if constexpr (declared_type<T>) {
    write_declared(out, value,
                   std::make_index_sequence<std::tuple_size_v<std::remove_const_t<decltype(fields_of<T>)>>>{});
  } else {
    static_assert(unsupported_type<T>, "aether::json: unsupported field type; declare it with AETHER_JSON_FIELDS");
  }
}

template <class T>
[[nodiscard]] bool read_value(value_reader& in, T& out);

template <declared_type T, std::size_t... I>
[[nodiscard]] bool read_member(value_reader& in, [[maybe_unused]] std::string_view key, T& out,
                               [[maybe_unused]] std::bitset<sizeof...(I)>& seen, std::index_sequence<I...>) {
  bool ok = true;
  const bool known = ((key == std::get<I>(fields_of<T>).name &&
                       (seen.set(I), ok = read_value(in, out.*std::get<I>(fields_of<T>).member), true)) ||
                      ...);
  return known ? ok : in.skip();
}

template <declared_type T, std::size_t... I>
[[nodiscard]] bool finish_members(value_reader& in, T& out, [[maybe_unused]] const std::bitset<sizeof...(I)>& seen,
                                  std::index_sequence<I...>) {
  [[maybe_unused]] const auto finish = [&](const auto& f, bool was_seen) {
    if (was_seen) return true;
    auto& member = out.*f.member;
    if constexpr (is_optional<std::remove_cvref_t<decltype(member)>>::value) {
      member.reset();
      return true;
    } else {
      return in.fail_missing(f.name);
    }
  };
  return (finish(std::get<I>(fields_of<T>), seen.test(I)) && ...);
}

template <declared_type T>
[[nodiscard]] bool read_declared(value_reader& in, T& out) {
  constexpr auto count = std::tuple_size_v<std::remove_const_t<decltype(fields_of<T>)>>;
  using indices = std::make_index_sequence<count>;
  std::bitset<count> seen;
  return in.read_object([&](std::string_view key, value_reader& member) {
    return read_member(member, key, out, seen, indices{});
  }) && finish_members(in, out, seen, indices{});
}

template <class T>
bool read_value(value_reader& in, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    return in.read_bool(out);
  } else if constexpr (json_integer<T>) {
    if constexpr (std::is_signed_v<T>) {
      std::int64_t value = 0;
      if (!in.read_int(value, std::numeric_limits<T>::min(), std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(value);
    } else {
      std::uint64_t value = 0;
      if (!in.read_uint(value, std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(value);
    }
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    return in.read_double(out);
  } else if constexpr (std::is_same_v<T, float>) {
    double value = 0;
    if (!in.read_double(value)) return false;
    // Halfway between the largest float and 2^128, and beyond, rounds to infinity.
    if (std::abs(value) >= 0x1.ffffffp127) return in.fail("number out of range for a float");
    out = static_cast<float>(value);
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return in.read_string(out);
  } else if constexpr (std::is_same_v<T, raw>) {
    return in.read_raw(out.text);
  } else if constexpr (is_optional<T>::value) {
    bool is_null = false;
    if (!in.read_null(is_null)) return false;
    if (is_null) {
      out.reset();
      return true;
    }
    if (!out) out.emplace();
    return read_value(in, *out);
  } else if constexpr (is_vector<T>::value) {
    out.clear();
    return in.read_array([&](value_reader& element) {
      typename T::value_type value{};
      if (!read_value(element, value)) return false;
      out.push_back(std::move(value));
      return true;
    });
  } else if constexpr (is_string_map<T>::value) {
    out.clear();
    return in.read_object([&](std::string_view key, value_reader& element) {
      typename T::mapped_type value{};
      if (!read_value(element, value)) return false;
      out.insert_or_assign(std::string{key}, std::move(value));
      return true;
    });
  } else if constexpr (declared_type<T>) {
    return read_declared(in, out);
  } else {
    static_assert(unsupported_type<T>, "aether::json: unsupported field type; declare it with AETHER_JSON_FIELDS");
  }
}

/// The values `decode` accepts at the root: JSON objects and arrays.
template <class T>
concept root_type = declared_type<T> || is_vector<T>::value || is_string_map<T>::value;

} // namespace detail

/// Appends the JSON encoding of `value` to `out`: the form for hot paths that reuse a buffer.
template <class T>
void encode_to(fmt::memory_buffer& out, const T& value) {
  detail::write_value(out, value);
}

/// The JSON encoding of `value`: compact, fields in declaration order, `nullopt` as null.
template <class T>
[[nodiscard]] std::string encode(const T& value) {
  fmt::memory_buffer out;
  detail::write_value(out, value);
  return std::string{out.data(), out.size()};
}

/// Decodes one `T` (a declared type, vector or map) from `json`.
///
/// Fails with `errc::payload_too_large` when `json` is over `max_size` bytes, and with
/// `errc::malformed_payload` when it is not one JSON value of the shape of `T`; the detail names the field
/// path and what was wrong. Never throws for any input (only `std::bad_alloc` when memory runs out) and
/// never reads outside `json`; the input is copied into a padded buffer of the calling thread.
///
/// Thread-safety: may be called from any number of threads at once.
template <detail::root_type T>
[[nodiscard]] expected<T> decode(std::string_view json, std::size_t max_size = default_max_size) {
  static_assert(std::is_default_constructible_v<T>, "aether::json::decode: the type needs a default constructor");
  T value{};
  if (auto done = detail::decode_document(json, max_size,
                                          [&](detail::value_reader& root) { return detail::read_value(root, value); });
      !done) {
    return done.error();
  }
  return value;
}

} // namespace aether::json

// AETHER_JSON_DETAIL_FOR_EACH(m, a, b, ...) expands to m(a), m(b), ... for up to 256 arguments.
#define AETHER_JSON_DETAIL_PARENS ()
#define AETHER_JSON_DETAIL_EXPAND(...)                                                                                 \
  AETHER_JSON_DETAIL_EXPAND4(                                                                                          \
      AETHER_JSON_DETAIL_EXPAND4(AETHER_JSON_DETAIL_EXPAND4(AETHER_JSON_DETAIL_EXPAND4(__VA_ARGS__))))
#define AETHER_JSON_DETAIL_EXPAND4(...)                                                                                \
  AETHER_JSON_DETAIL_EXPAND3(                                                                                          \
      AETHER_JSON_DETAIL_EXPAND3(AETHER_JSON_DETAIL_EXPAND3(AETHER_JSON_DETAIL_EXPAND3(__VA_ARGS__))))
#define AETHER_JSON_DETAIL_EXPAND3(...)                                                                                \
  AETHER_JSON_DETAIL_EXPAND2(                                                                                          \
      AETHER_JSON_DETAIL_EXPAND2(AETHER_JSON_DETAIL_EXPAND2(AETHER_JSON_DETAIL_EXPAND2(__VA_ARGS__))))
#define AETHER_JSON_DETAIL_EXPAND2(...)                                                                                \
  AETHER_JSON_DETAIL_EXPAND1(                                                                                          \
      AETHER_JSON_DETAIL_EXPAND1(AETHER_JSON_DETAIL_EXPAND1(AETHER_JSON_DETAIL_EXPAND1(__VA_ARGS__))))
#define AETHER_JSON_DETAIL_EXPAND1(...) __VA_ARGS__
#define AETHER_JSON_DETAIL_FOR_EACH(macro, ...)                                                                        \
  __VA_OPT__(AETHER_JSON_DETAIL_EXPAND(AETHER_JSON_DETAIL_FOR_EACH_HELPER(macro, __VA_ARGS__)))
#define AETHER_JSON_DETAIL_FOR_EACH_HELPER(macro, first, ...)                                                          \
  macro(first) __VA_OPT__(, AETHER_JSON_DETAIL_FOR_EACH_AGAIN AETHER_JSON_DETAIL_PARENS(macro, __VA_ARGS__))
#define AETHER_JSON_DETAIL_FOR_EACH_AGAIN() AETHER_JSON_DETAIL_FOR_EACH_HELPER
#define AETHER_JSON_DETAIL_NAME(member) #member
#define AETHER_JSON_DETAIL_KEY(member) ",\"" #member "\":"
#define AETHER_JSON_DETAIL_FIELD(member)                                                                               \
  ::aether::json::field<aether_json_type, decltype(aether_json_type::member)> {                                        \
    AETHER_JSON_DETAIL_NAME(member), AETHER_JSON_DETAIL_KEY(member), &aether_json_type::member                         \
  }

/// Declares the JSON fields of `Type`, by member name, for `aether::json::encode` and `decode`. Use it once
/// after the definition of `Type`, at namespace scope in the namespace of `Type` (the declaration is found
/// by argument-dependent lookup).
#define AETHER_JSON_FIELDS(Type, ...)                                                                                  \
  [[maybe_unused]] constexpr auto aether_json_fields(const Type*) noexcept {                                           \
    using aether_json_type [[maybe_unused]] = Type;                                                                    \
    return std::tuple{AETHER_JSON_DETAIL_FOR_EACH(AETHER_JSON_DETAIL_FIELD, __VA_ARGS__)};                             \
  }
