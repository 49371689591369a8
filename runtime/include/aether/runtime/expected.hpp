#pragma once

#include <aether/runtime/error.hpp>

#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace aether {

/// Thrown when `value()` is called on an `expected` that holds an error:
/// a programming error, so an exception.
class bad_expected_access : public std::logic_error {
public:
  explicit bad_expected_access(const error& e) : std::logic_error{e.to_string()}, error_{e} {}
  [[nodiscard]] const aether::error& err() const noexcept { return error_; }

private:
  aether::error error_;
};

template <class T>
class expected;

/// What converts into the value of an `expected<T>`.
template <class U, class T>
concept expected_value_for = std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, expected<T>> &&
                             !std::is_same_v<std::remove_cvref_t<U>, error>;

/// A value of type `T` or an `aether::error`.
template <class T>
class [[nodiscard]] expected {
public:
  using value_type = T;

  template <expected_value_for<T> U = T>
  expected(U&& v) : state_{std::in_place_index<0>, std::forward<U>(v)} {}
  expected(aether::error e) : state_{std::in_place_index<1>, std::move(e)} {}
  expected(errc c) : expected{aether::error{c}} {}

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  [[nodiscard]] T& value() & {
    check();
    return std::get<0>(state_);
  }
  [[nodiscard]] const T& value() const& {
    check();
    return std::get<0>(state_);
  }
  [[nodiscard]] T&& value() && {
    check();
    return std::get<0>(std::move(state_));
  }
  /// The value, or `fallback` when there is an error.
  template <class U>
  [[nodiscard]] T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }
  [[nodiscard]] const aether::error& error() const { return std::get<1>(state_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

private:
  void check() const {
    if (!has_value()) throw bad_expected_access{std::get<1>(state_)};
  }
  std::variant<T, aether::error> state_;
};

/// Success without a value, or an error.
template <>
class [[nodiscard]] expected<void> {
public:
  using value_type = void;

  expected() = default;
  expected(aether::error e) : error_{std::in_place, std::move(e)} {}
  expected(errc c) : expected{aether::error{c}} {}

  [[nodiscard]] bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (error_) throw bad_expected_access{*error_};
  }
  [[nodiscard]] const aether::error& error() const { return *error_; }

private:
  std::optional<aether::error> error_;
};

} // namespace aether
