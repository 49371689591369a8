#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace aether {

template <class Signature>
class unique_function;

/// A callable a `unique_function` of type `Self` can hold.
template <class F, class Self, class R, class... Args>
concept function_object_for =
    !std::is_same_v<std::decay_t<F>, Self> && std::is_invocable_r_v<R, std::decay_t<F>&, Args...>;

/// A move-only `std::function`: holds callables that capture move-only state
/// (envelopes, promises). Callables of up to `inline_size` bytes are stored
/// inline, larger ones on the heap.
///
/// Thread-safety: none; like any value, one thread at a time.
template <class R, class... Args>
class unique_function<R(Args...)> {
public:
  static constexpr std::size_t inline_size = 3 * sizeof(void*);

  unique_function() noexcept = default;
  unique_function(std::nullptr_t) noexcept {}

  template <function_object_for<unique_function, R, Args...> F>
  unique_function(F&& f) { // NOLINT(google-explicit-constructor): a function wrapper converts implicitly
    using fn = std::decay_t<F>;
    if constexpr (fits_inline<fn>) {
      ::new (static_cast<void*>(&storage_)) fn(std::forward<F>(f));
      ops_ = &inline_ops<fn>;
    } else {
      *reinterpret_cast<fn**>(&storage_) = new fn(std::forward<F>(f));
      ops_ = &heap_ops<fn>;
    }
  }

  unique_function(unique_function&& other) noexcept : ops_{other.ops_} {
    if (ops_) {
      ops_->relocate(&storage_, &other.storage_);
      other.ops_ = nullptr;
    }
  }

  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.ops_) {
        other.ops_->relocate(&storage_, &other.storage_);
        ops_ = std::exchange(other.ops_, nullptr);
      }
    }
    return *this;
  }

  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;
  ~unique_function() { reset(); }

  R operator()(Args... args) { return ops_->invoke(&storage_, std::forward<Args>(args)...); }
  explicit operator bool() const noexcept { return ops_ != nullptr; }

private:
  using storage_t = std::aligned_storage_t<inline_size, alignof(void*)>;
  struct ops {
    R (*invoke)(void*, Args&&...);
    void (*relocate)(void* dst, void* src) noexcept;
    void (*destroy)(void*) noexcept;
  };

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= inline_size &&
                                      alignof(F) <= alignof(void*) && std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr ops inline_ops{
      [](void* s, Args&&... a) -> R { return (*static_cast<F*>(s))(std::forward<Args>(a)...); },
      [](void* dst, void* src) noexcept {
        ::new (dst) F(std::move(*static_cast<F*>(src)));
        static_cast<F*>(src)->~F();
      },
      [](void* s) noexcept { static_cast<F*>(s)->~F(); }};

  template <class F>
  static constexpr ops heap_ops{
      [](void* s, Args&&... a) -> R { return (**static_cast<F**>(s))(std::forward<Args>(a)...); },
      [](void* dst, void* src) noexcept { *static_cast<F**>(dst) = *static_cast<F**>(src); },
      [](void* s) noexcept { delete *static_cast<F**>(s); }};

  void reset() noexcept {
    if (ops_) {
      ops_->destroy(&storage_);
      ops_ = nullptr;
    }
  }

  storage_t storage_;
  const ops* ops_ = nullptr;
};

} // namespace aether
