#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/actors/message.hpp>
#include <aether/actors/reply.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>

#include <chrono>
#include <optional>
#include <utility>

namespace aether {

namespace detail {
class shard;
struct cell;
struct envelope;
} // namespace detail

/// What a handler can do besides changing its actor's state: answer, send,
/// ask, set timers and stop. Handed to every handler; valid only during the
/// call (and inside `ask_handle::then` callbacks, which get their own).
///
/// Thread-safety: only on the running actor's turn.
class context {
public:
  using duration = executor::duration;
  using timer_id = executor::timer_id;

  /// The running actor.
  [[nodiscard]] const actor_id& self() const noexcept;
  /// The actor that sent the current message; empty when sent from outside.
  [[nodiscard]] const actor_id& sender() const noexcept;
  [[nodiscard]] executor::time_point now() const noexcept;

  /// Answers the current message: completes an ask, or tells the sending
  /// actor. A value or an `error`.
  template <class T>
  void reply(T&& value) {
    reply_message(message{std::forward<T>(value)});
  }

  /// Takes over answering the current message, to do it later.
  [[nodiscard]] response_promise promise();

  /// Sends `m` to `to` without waiting. Fails with `mailbox_full` or
  /// `shutting_down`; never blocks.
  template <class M>
  expected<void> tell(const actor_id& to, M&& m) {
    return tell_message(to, message{std::forward<M>(m)});
  }

  /// Asks `to` and expects an `R` within `timeout`; see `ask_handle::then`.
  template <class R, class M>
  [[nodiscard]] ask_handle<R> ask(const actor_id& to, M&& m, duration timeout) {
    return ask_handle<R>{ask_message(to, message{std::forward<M>(m)}, timeout)};
  }

  /// Sends `m` to this actor once after `delay`.
  template <class M>
  timer_id schedule_once(duration delay, M m) {
    return schedule(delay, duration::zero(), [m = std::move(m)] { return message{M{m}}; });
  }
  /// Sends `m` to this actor every `period`.
  template <class M>
  timer_id schedule_periodic(duration period, M m) {
    return schedule(period, period, [m = std::move(m)] { return message{M{m}}; });
  }
  /// Cancels a timer of this actor. All of them are cancelled when it stops.
  void cancel_timer(timer_id id);

  /// Waits for work done outside the actors (I/O): `first` is completed
  /// from any thread, `second.then(...)` runs on this actor's turn, or gets
  /// `timeout`. While an `exclusive` wait is pending, the actor takes no
  /// other message: they wait, in order, until its callbacks have run.
  template <class R>
  [[nodiscard]] std::pair<completion<R>, ask_handle<R>> await_completion(duration timeout, bool exclusive) {
    auto slot = await_slot(timeout, exclusive);
    return {completion<R>{slot}, ask_handle<R>{slot}};
  }

  /// Passivates this actor once the current handler returns.
  void stop() noexcept { stop_requested_ = true; }
  /// Passivates this actor once the current handler returns; messages
  /// waiting for it fail with `reason`.
  void stop(error reason) {
    stop_requested_ = true;
    stop_reason_.emplace(std::move(reason));
  }

private:
  friend class detail::shard;
  explicit context(detail::shard& s) noexcept : shard_{&s} {}

  void reply_message(message&& m);
  expected<void> tell_message(const actor_id& to, message&& m);
  intrusive_ptr<detail::actor_reply_slot> ask_message(const actor_id& to, message&& m, duration timeout);
  timer_id schedule(duration delay, duration period, unique_function<message()> make);
  intrusive_ptr<detail::actor_reply_slot> await_slot(duration timeout, bool exclusive);

  detail::shard* shard_;
  const actor_id* self_ = nullptr;
  detail::cell* cell_ = nullptr;
  detail::envelope* current_ = nullptr; // nullptr inside timer and answer callbacks
  bool replied_ = false;
  bool stop_requested_ = false;
  std::optional<error> stop_reason_;
};

} // namespace aether
