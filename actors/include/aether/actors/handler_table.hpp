#pragma once

#include <aether/actors/message.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace aether {
class actor;
class context;
} // namespace aether

namespace aether::detail {

/// How to call and free one stored handler.
struct handler_ops {
  void (*invoke)(void* storage, actor& self, message& m, context& ctx);
  void (*destroy)(void* storage) noexcept; // nullptr: nothing to free
};

/// One handler: the message type it takes and the callable. Callables of up
/// to 16 trivially copyable bytes (a lambda capturing `this`, a member
/// function pointer) live inline; others on the heap.
struct handler_entry {
  static constexpr std::size_t inline_size = 2 * sizeof(void*);
  const message_type* type;
  const handler_ops* ops;
  alignas(void*) unsigned char storage[inline_size];
};

/// An actor's handlers: an exact-size array searched linearly, which for the
/// handful of handlers an actor has beats hashing and keeps idle actors small.
///
/// Thread-safety: none; owned by one actor.
class handler_table {
public:
  handler_table() noexcept = default;
  handler_table(const handler_table&) = delete;
  handler_table& operator=(const handler_table&) = delete;
  ~handler_table() {
    for (std::uint32_t i = 0; i < size_; ++i) free_entry(entries_[i]);
    ::operator delete(entries_);
  }

  /// Stores `entry`, replacing an earlier handler of the same message type.
  void add(const handler_entry& entry) {
    if (auto* existing = find(entry.type)) {
      free_entry(*existing);
      *existing = entry;
      return;
    }
    auto* grown = static_cast<handler_entry*>(::operator new(sizeof(handler_entry) * (size_ + 1)));
    if (size_ != 0) std::memcpy(static_cast<void*>(grown), entries_, sizeof(handler_entry) * size_);
    grown[size_] = entry;
    ::operator delete(entries_);
    entries_ = grown;
    ++size_;
  }

  [[nodiscard]] handler_entry* find(const message_type* type) noexcept {
    for (std::uint32_t i = 0; i < size_; ++i) {
      if (entries_[i].type == type) return &entries_[i];
    }
    return nullptr;
  }

  /// The handler of the type named `name` (for messages in their wire form).
  [[nodiscard]] handler_entry* find_named(std::string_view name) noexcept {
    for (std::uint32_t i = 0; i < size_; ++i) {
      if (entries_[i].type->name == name) return &entries_[i];
    }
    return nullptr;
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
  static void free_entry(handler_entry& e) noexcept {
    if (e.ops->destroy) e.ops->destroy(e.storage);
  }

  handler_entry* entries_ = nullptr;
  std::uint32_t size_ = 0;
};

} // namespace aether::detail
