#pragma once

#include <aether/runtime/expected.hpp>
#include <aether/runtime/json.hpp>

#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace aether {

class message;

/// What Aether knows of a C++ message type: its name and how to move and
/// destroy a value of it. One constant per type; its address is the type's
/// identity for handler lookup.
///
/// A type names itself with a `static constexpr std::string_view type_name`
/// member (the name later used on the wire); otherwise the compiler's
/// spelling of the type is used. A self-named type declared with
/// `AETHER_JSON_FIELDS` has a wire form (`encode`, `decode`) and may cross
/// nodes; for any other type both are nullptr.
struct message_type {
  std::string_view name;
  bool stored_inline;
  void (*relocate)(void* dst, void* src) noexcept;
  void (*destroy)(void* storage) noexcept;
  /// Appends the value's JSON to `out`.
  void (*encode)(const void* value, std::string& out);
  /// Decodes `json` into a message of this type.
  expected<void> (*decode)(std::string_view json, message& out);
};

/// A message as it arrived from another node: its type name and JSON,
/// decoded where the C++ type is known (the handler of the target actor, or
/// the asker's expected reply type).
///
/// Thread-safety: a value type.
struct wire_message {
  std::string name;
  std::string json;
};

namespace detail {

template <class T>
constexpr std::string_view compiler_type_name() noexcept {
  std::string_view p = __PRETTY_FUNCTION__;
  const auto start = p.find("T = ") + 4;
  const auto end = p.find_first_of(";]", start);
  return p.substr(start, end - start);
}

template <class T>
concept self_named = requires {
  { T::type_name } -> std::convertible_to<std::string_view>;
};

inline constexpr std::size_t message_inline_size = 3 * sizeof(void*);

template <class T>
inline constexpr bool message_inline = sizeof(T) <= message_inline_size &&
                                       alignof(T) <= alignof(void*) && std::is_nothrow_move_constructible_v<T>;

template <class T>
constexpr std::string_view message_name() noexcept {
  if constexpr (self_named<T>) {
    return T::type_name;
  } else {
    return compiler_type_name<T>();
  }
}

template <class T>
void relocate_message(void* dst, void* src) noexcept {
  if constexpr (message_inline<T>) {
    ::new (dst) T(std::move(*static_cast<T*>(src)));
    static_cast<T*>(src)->~T();
  } else {
    *static_cast<T**>(dst) = *static_cast<T**>(src);
  }
}

template <class T>
void destroy_message(void* storage) noexcept {
  if constexpr (message_inline<T>) {
    static_cast<T*>(storage)->~T();
  } else {
    delete *static_cast<T**>(storage);
  }
}

/// Types that may cross nodes: named for the wire, with declared JSON fields.
template <class T>
concept wire_type = self_named<T> && json::declared_type<T>;

template <class T>
void encode_message(const void* value, std::string& out);
template <class T>
expected<void> decode_message(std::string_view json, message& out);

template <class T>
constexpr auto encoder_of() noexcept -> void (*)(const void*, std::string&) {
  if constexpr (wire_type<T>) {
    return &encode_message<T>;
  } else {
    return nullptr;
  }
}
template <class T>
constexpr auto decoder_of() noexcept -> expected<void> (*)(std::string_view, message&) {
  if constexpr (wire_type<T>) {
    return &decode_message<T>;
  } else {
    return nullptr;
  }
}

template <class T>
inline constexpr message_type message_type_v{message_name<T>(),   message_inline<T>, &relocate_message<T>,
                                             &destroy_message<T>, encoder_of<T>(),   decoder_of<T>()};

} // namespace detail

/// Any value a `message` can hold: anything but a `message`.
template <class T>
concept message_value = !std::is_same_v<std::remove_cvref_t<T>, message>;

/// The descriptor of message type `T`.
template <class T>
[[nodiscard]] constexpr const message_type* message_type_of() noexcept {
  return &detail::message_type_v<std::remove_cvref_t<T>>;
}

/// A type-erased message value: small values (up to three pointers) inline,
/// larger ones on the heap. Move-only.
///
/// Thread-safety: a value type; may be moved to another thread.
class message {
public:
  message() noexcept = default;

  template <message_value T>
  explicit message(T&& value) : type_{message_type_of<T>()} {
    using U = std::remove_cvref_t<T>;
    if constexpr (detail::message_inline<U>) {
      ::new (static_cast<void*>(&storage_)) U(std::forward<T>(value));
    } else {
      *reinterpret_cast<U**>(&storage_) = new U(std::forward<T>(value));
    }
  }

  message(message&& other) noexcept : type_{other.type_} {
    if (type_) {
      type_->relocate(&storage_, &other.storage_);
      other.type_ = nullptr;
    }
  }

  message& operator=(message&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.type_) {
        other.type_->relocate(&storage_, &other.storage_);
        type_ = std::exchange(other.type_, nullptr);
      }
    }
    return *this;
  }

  message(const message&) = delete;
  message& operator=(const message&) = delete;
  ~message() { reset(); }

  /// The type of the value, or nullptr when empty.
  [[nodiscard]] const message_type* type() const noexcept { return type_; }
  [[nodiscard]] std::string_view type_name() const noexcept { return type_ ? type_->name : "<empty>"; }
  [[nodiscard]] bool empty() const noexcept { return type_ == nullptr; }

  template <class T>
  [[nodiscard]] bool is() const noexcept {
    return type_ == message_type_of<T>();
  }

  /// The value as a `T`, or nullptr when it holds another type.
  template <class T>
  [[nodiscard]] T* get_if() noexcept {
    if (!is<T>()) return nullptr;
    return static_cast<T*>(data());
  }
  template <class T>
  [[nodiscard]] const T* get_if() const noexcept {
    return const_cast<message*>(this)->get_if<T>();
  }

  /// Untyped access for dispatch code that checked `type()` already.
  [[nodiscard]] void* data() noexcept {
    if (type_ == nullptr) return nullptr;
    return type_->stored_inline ? static_cast<void*>(&storage_) : *reinterpret_cast<void**>(&storage_);
  }

private:
  void reset() noexcept {
    if (type_) {
      type_->destroy(&storage_);
      type_ = nullptr;
    }
  }

  const message_type* type_ = nullptr;
  std::aligned_storage_t<detail::message_inline_size, alignof(void*)> storage_;
};

namespace detail {

template <class T>
void encode_message(const void* value, std::string& out) {
  out += json::encode(*static_cast<const T*>(value));
}

template <class T>
expected<void> decode_message(std::string_view text, message& out) {
  auto value = json::decode<T>(text);
  if (!value) return value.error();
  out = message{std::move(*value)};
  return {};
}

} // namespace detail

/// The wire form of `m`'s value into `out`; `no_wire_form` when its type has none.
[[nodiscard]] inline expected<void> encode_wire(const message& m, std::string& out) {
  if (m.empty() || m.type()->encode == nullptr) {
    return error{errc::no_wire_form, std::string{m.type_name()} + " has no type_name and AETHER_JSON_FIELDS"};
  }
  m.type()->encode(const_cast<message&>(m).data(), out);
  return {};
}

/// Turns `m`, when it holds a `wire_message` named like `T`, into a `T`; an
/// undecodable payload becomes a `malformed_payload` error value. Anything
/// else stays as it is.
template <class T>
void decode_wire_as(message& m) {
  auto* w = m.get_if<wire_message>();
  if (w == nullptr) return;
  const auto* type = message_type_of<T>();
  if (type->decode == nullptr || w->name != type->name) return;
  if (auto done = type->decode(w->json, m); !done) {
    m = message{error{errc::malformed_payload, fmt::format("{}: {}", type->name, done.error().detail())}};
  }
}

} // namespace aether
