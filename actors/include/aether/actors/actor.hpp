#pragma once

#include <aether/actors/context.hpp>
#include <aether/actors/handler_table.hpp>
#include <aether/actors/message.hpp>
#include <aether/runtime/expected.hpp>

#include <tuple>
#include <type_traits>
#include <utility>

namespace aether {

namespace detail {
struct dispatcher;

template <class T>
struct callable_traits : callable_traits<decltype(&T::operator())> {};

template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> {
  using result = R;
  using class_type = C;
  using args = std::tuple<A...>;
  static constexpr std::size_t arity = sizeof...(A);
};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> : callable_traits<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) noexcept> : callable_traits<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const noexcept> : callable_traits<R (C::*)(A...)> {};

template <class T>
struct is_expected : std::false_type {};
template <class T>
struct is_expected<expected<T>> : std::true_type {};

/// Sends what a handler returned back to the sender: a value, or the value or
/// error of an `expected`.
template <class R>
void reply_with(R&& result, context& ctx) {
  using U = std::remove_cvref_t<R>;
  if constexpr (is_expected<U>::value) {
    if constexpr (std::is_void_v<typename U::value_type>) {
      if (!result) ctx.reply(result.error());
    } else if (result) {
      ctx.reply(std::move(*result));
    } else {
      ctx.reply(result.error());
    }
  } else {
    ctx.reply(std::forward<R>(result));
  }
}

/// Calls `fn` (a lambda or a member function bound to `self`) with the
/// message and, when it takes one, the context; replies with its result.
template <class Actor, class Fn, class Msg, bool TakesContext>
void call_handler(Fn& fn, actor& self, message& m, context& ctx) {
  auto& value = *static_cast<Msg*>(m.data());
  auto call = [&]() -> decltype(auto) {
    if constexpr (std::is_member_function_pointer_v<Fn>) {
      auto& target = static_cast<Actor&>(self);
      if constexpr (TakesContext) {
        return (target.*fn)(std::move(value), ctx);
      } else {
        return (target.*fn)(std::move(value));
      }
    } else if constexpr (TakesContext) {
      return fn(std::move(value), ctx);
    } else {
      return fn(std::move(value));
    }
  };
  if constexpr (std::is_void_v<decltype(call())>) {
    call();
  } else {
    reply_with(call(), ctx);
  }
}

template <class Actor, class Fn, class Msg, bool TakesContext>
handler_entry make_handler(Fn&& f) {
  using F = std::decay_t<Fn>;
  handler_entry e{};
  e.type = message_type_of<Msg>();
  if constexpr (sizeof(F) <= handler_entry::inline_size && alignof(F) <= alignof(void*) &&
                std::is_trivially_copyable_v<F>) {
    static constexpr handler_ops ops{[](void* s, actor& self, message& m, context& ctx) {
                                       call_handler<Actor, F, Msg, TakesContext>(*static_cast<F*>(s), self, m, ctx);
                                     },
                                     nullptr};
    ::new (static_cast<void*>(e.storage)) F(std::forward<Fn>(f));
    e.ops = &ops;
  } else {
    static constexpr handler_ops ops{[](void* s, actor& self, message& m, context& ctx) {
                                       call_handler<Actor, F, Msg, TakesContext>(**static_cast<F**>(s), self, m, ctx);
                                     },
                                     [](void* s) noexcept { delete *static_cast<F**>(s); }};
    *reinterpret_cast<F**>(e.storage) = new F(std::forward<Fn>(f));
    e.ops = &ops;
  }
  return e;
}

} // namespace detail

/// The base of user actors. A subclass registers one handler per message type
/// in its constructor with `on(...)`; the type is deduced from the handler's
/// first parameter:
///
///     on([this](const deposit& d) { balance_ += d.amount; });
///     on([this](const get_balance&, context& ctx) { ctx.reply(balance_); });
///     on(&account::handle_withdraw);            // int handle_withdraw(const withdraw&)
///
/// A handler that returns a value (or an `expected`) replies with it.
/// Handlers of one actor never run concurrently; they must not block.
///
/// Thread-safety: an actor is only touched on its shard's turn.
class actor {
public:
  virtual ~actor() = default;
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;

  /// Called after activation, before the first message.
  virtual void on_activate(context&) {}
  /// Called before the instance is dropped: idle passivation, `stop()`,
  /// a supervision restart or stop, and node shutdown.
  virtual void on_passivate(context&) {}

protected:
  actor() = default;

  /// Registers a handler: a lambda `R(const M&)`/`R(const M&, context&)`, or
  /// a member function of the subclass with one of those signatures.
  template <class F>
  void on(F&& f) {
    using D = std::decay_t<F>;
    using traits = detail::callable_traits<std::conditional_t<std::is_member_function_pointer_v<D>, D, D>>;
    static_assert(traits::arity == 1 || traits::arity == 2, "a handler takes (const M&) or (const M&, context&)");
    using msg = std::remove_cvref_t<std::tuple_element_t<0, typename traits::args>>;
    constexpr bool takes_context = traits::arity == 2;
    if constexpr (takes_context) {
      static_assert(std::is_same_v<std::tuple_element_t<1, typename traits::args>, context&>,
                    "the second handler parameter must be context&");
    }
    if constexpr (std::is_member_function_pointer_v<D>) {
      using self_type = typename traits::class_type;
      static_assert(std::is_base_of_v<actor, self_type>, "member handlers belong to an actor");
      handlers_.add(detail::make_handler<self_type, D, msg, takes_context>(std::forward<F>(f)));
    } else {
      handlers_.add(detail::make_handler<actor, D, msg, takes_context>(std::forward<F>(f)));
    }
  }

private:
  friend struct detail::dispatcher;
  detail::handler_table handlers_;
};

namespace detail {
/// The runtime's door into an actor's handler table.
struct dispatcher {
  /// Runs the handler for `m`; false when the actor has none for its type.
  static bool dispatch(actor& a, message& m, context& ctx) {
    auto* entry = a.handlers_.find(m.type());
    if (entry == nullptr) return false;
    entry->ops->invoke(entry->storage, a, m, ctx);
    return true;
  }
  /// Turns a `wire_message` into the type of the handler of that name:
  /// `unknown_message_type` when the actor has none, `malformed_payload`
  /// when the JSON does not decode.
  static expected<void> decode_wire(actor& a, message& m) {
    const auto& w = *m.get_if<wire_message>();
    const auto* entry = a.handlers_.find_named(w.name);
    if (entry == nullptr || entry->type->decode == nullptr) {
      return error{errc::unknown_message_type, fmt::format("no handler for {} from another node", w.name)};
    }
    auto done = entry->type->decode(w.json, m);
    if (!done) return error{errc::malformed_payload, fmt::format("{}: {}", entry->type->name, done.error().detail())};
    return {};
  }
};
} // namespace detail

} // namespace aether
