#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace aether {

/// Base of objects shared through `intrusive_ptr`: one atomic count in the
/// object itself, so a shared handle is one pointer wide.
///
/// Thread-safety: the count is atomic; the object itself is not protected.
class ref_counted {
public:
  ref_counted() noexcept = default;
  ref_counted(const ref_counted&) = delete;
  ref_counted& operator=(const ref_counted&) = delete;

  void add_ref() const noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() const noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

protected:
  virtual ~ref_counted() = default;
  /// Frees the object; override when it was not allocated with plain `new`.
  virtual void destroy() const noexcept { delete this; }

private:
  mutable std::atomic<std::uint32_t> refs_{0};
};

/// A shared pointer to a `ref_counted` object.
template <class T>
class intrusive_ptr {
public:
  intrusive_ptr() noexcept = default;
  explicit intrusive_ptr(T* p) noexcept : p_{p} {
    if (p_) p_->add_ref();
  }
  intrusive_ptr(const intrusive_ptr& o) noexcept : intrusive_ptr{o.p_} {}
  intrusive_ptr(intrusive_ptr&& o) noexcept : p_{std::exchange(o.p_, nullptr)} {}
  template <std::derived_from<T> U>
  intrusive_ptr(intrusive_ptr<U> o) noexcept : p_{o.detach()} {} // NOLINT: converts like shared_ptr
  intrusive_ptr& operator=(intrusive_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~intrusive_ptr() {
    if (p_) p_->release();
  }

  [[nodiscard]] T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  /// Gives up ownership without releasing.
  [[nodiscard]] T* detach() noexcept { return std::exchange(p_, nullptr); }

  friend bool operator==(const intrusive_ptr& a, const intrusive_ptr& b) noexcept { return a.p_ == b.p_; }

private:
  T* p_ = nullptr;
};

template <class T, class... Args>
[[nodiscard]] intrusive_ptr<T> make_intrusive(Args&&... args) {
  return intrusive_ptr<T>{new T(std::forward<Args>(args)...)};
}

} // namespace aether
