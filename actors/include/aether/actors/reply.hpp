#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/actors/message.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/ref_counted.hpp>
#include <aether/runtime/unique_function.hpp>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <future>
#include <mutex>
#include <optional>
#include <type_traits>

namespace aether {

class context;

namespace detail {

class system_core;
class core_link;
class reply_slot;

/// Takes a completed external ask off its system's deadlines, if the system
/// still lives: its timeout will not fire.
void forget_deadline(core_link& link, reply_slot& slot) noexcept;

/// How slots and promises that may outlive their system reach it: its core
/// while the system lives, nothing after. An answer that comes late from
/// outside (a store's acknowledgement after the node closed) finds the link
/// closed and is dropped instead of touching a system that is gone.
///
/// Thread-safety: `enter`/`leave` from any threads; `close` once, by the
/// system's destructor, which waits for those inside.
class core_link final : public ref_counted {
public:
  explicit core_link(system_core& core) noexcept : core_{&core} {}

  /// The core, alive until the matching `leave`; nullptr once closed.
  system_core* enter() noexcept {
    users_.fetch_add(1);
    if (open_.load()) return core_;
    users_.fetch_sub(1);
    return nullptr;
  }
  void leave() noexcept { users_.fetch_sub(1); }
  /// Turns away whoever comes next and waits for those inside.
  void close() noexcept;

private:
  system_core* core_;
  std::atomic<std::uint32_t> users_{0};
  std::atomic<bool> open_{true};
};

/// Where the answer to one ask goes. Completed at most once: by the reply, by
/// the timeout or by an error; whatever comes second is a late reply.
///
/// Thread-safety: `complete` may race from any threads; exactly one wins.
class reply_slot : public ref_counted {
public:
  /// Hands over `answer` (a value, or an `error`); false when already completed.
  bool complete(message&& answer) {
    if (done_.exchange(true, std::memory_order_acq_rel)) return false;
    deliver(std::move(answer));
    return true;
  }
  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }

  /// The timeout of an ask made by an actor, on the lane that runs it;
  /// touched on that lane only.
  executor::timer_id timer = 0;
  /// Where an ask made from outside waits among its system's deadlines
  /// (`ask_deadlines`); touched under their lock only.
  executor::time_point deadline{};
  std::uint64_t deadline_seq = 0; // 0: not waiting there

protected:
  virtual void deliver(message&& answer) = 0;

private:
  std::atomic<bool> done_{false};
};

/// The slot of an ask made by an actor: the answer travels back through the
/// asker's mailbox and runs `on_answer` on the asker's turn.
class actor_reply_slot final : public reply_slot {
public:
  using continuation = unique_function<void(message&, context&)>;

  actor_reply_slot(intrusive_ptr<core_link> link, actor_id asker, std::uint32_t incarnation,
                   bool exclusive = false) noexcept
      : link_{std::move(link)}, asker_{std::move(asker)}, incarnation_{incarnation}, exclusive_{exclusive} {}

  continuation on_answer; // set on the asker's turn, run there
  [[nodiscard]] std::uint32_t incarnation() const noexcept { return incarnation_; }
  /// While an exclusive slot is pending, its actor takes no other message.
  [[nodiscard]] bool exclusive() const noexcept { return exclusive_; }

protected:
  void deliver(message&& answer) override;

private:
  intrusive_ptr<core_link> link_;
  actor_id asker_;
  std::uint32_t incarnation_;
  bool exclusive_;
};

/// Converts an answer into what `ask<R>` promises.
template <class R>
expected<R> take_answer(message& answer) {
  decode_wire_as<R>(answer);
  if (auto* v = answer.get_if<R>()) return std::move(*v);
  if (auto* e = answer.get_if<error>()) return std::move(*e);
  return error{errc::unexpected_reply, std::string{answer.type_name()}};
}

/// The slot of an ask made from outside any actor.
template <class R>
class external_reply_slot final : public reply_slot {
public:
  using continuation = unique_function<void(expected<R>)>;

  external_reply_slot(intrusive_ptr<core_link> link, executor& exec, std::size_t lane) noexcept
      : link_{std::move(link)}, exec_{exec}, lane_{lane} {}

  [[nodiscard]] std::size_t lane() const noexcept { return lane_; }
  [[nodiscard]] executor& exec() const noexcept { return exec_; }

  /// Blocks until the answer is there and takes it.
  expected<R> wait() {
    std::unique_lock lock{mutex_};
    ready_.wait(lock, [this] { return result_.has_value(); });
    return take();
  }

  /// Runs `fn` with the answer on the slot's lane (at once if it is there).
  void on_answer(continuation fn) {
    std::unique_lock lock{mutex_};
    if (result_) {
      lock.unlock();
      post(std::move(fn));
      return;
    }
    continuation_ = std::move(fn);
  }

  /// For `co_await`: false when the answer is already there.
  bool suspend(std::coroutine_handle<> h) {
    std::lock_guard lock{mutex_};
    if (result_) return false;
    continuation_ = [this, h](expected<R> r) {
      {
        std::lock_guard inner{mutex_};
        result_.emplace(std::move(r));
      }
      h.resume();
    };
    return true;
  }

  expected<R> take() { return std::move(*result_); }

protected:
  void deliver(message&& answer) override {
    auto r = take_answer<R>(answer);
    continuation fn;
    {
      std::lock_guard lock{mutex_};
      if (continuation_) {
        fn = std::move(continuation_);
      } else {
        result_.emplace(std::move(r));
      }
    }
    if (fn) {
      post(std::move(fn), std::move(r));
    } else {
      ready_.notify_all();
    }
    // The timeout is no longer needed (no hop to any lane: it is a lock).
    forget_deadline(*link_, *this);
  }

private:
  void post(continuation fn) {
    on_lane([self = intrusive_ptr<external_reply_slot>{this}, fn = std::move(fn)]() mutable { fn(self->take()); });
  }
  void post(continuation fn, expected<R> r) {
    on_lane([fn = std::move(fn), r = std::move(r)]() mutable { fn(std::move(r)); });
  }
  /// Runs `f` on the slot's lane while the system lives. Once it is gone
  /// (an answer that came late from outside) `f` is dropped: its executor
  /// may be gone too. `get()` still returns the answer.
  template <class F>
  void on_lane(F&& f) {
    if (link_->enter() == nullptr) return;
    exec_.post(lane_, std::forward<F>(f));
    link_->leave();
  }

  intrusive_ptr<core_link> link_;
  executor& exec_;
  std::size_t lane_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::optional<expected<R>> result_;
  continuation continuation_;
};

template <class F, class Arg>
void invoke_with_context(F& f, Arg&& arg, context& ctx) {
  if constexpr (std::is_invocable_v<F&, Arg&&, context&>) {
    f(std::forward<Arg>(arg), ctx);
  } else {
    f(std::forward<Arg>(arg));
  }
}

} // namespace detail

/// The pending answer to an ask made by an actor (`context::ask`). Call
/// `then` before the handler returns; both callbacks run later on the asker's
/// turn, with the asker's context, exactly one of them exactly once.
template <class R>
class [[nodiscard]] ask_handle {
public:
  explicit ask_handle(intrusive_ptr<detail::actor_reply_slot> slot) noexcept : slot_{std::move(slot)} {}

  /// `on_ok(const R&[, context&])` gets the reply, `on_error(const error&[, context&])`
  /// a timeout, an unknown target type, a full mailbox or a failed handler.
  template <class OnOk, class OnError>
  void then(OnOk on_ok, OnError on_error) {
    if (!slot_) return;
    slot_->on_answer = [ok = std::move(on_ok), err = std::move(on_error)](message& m, context& ctx) mutable {
      decode_wire_as<R>(m);
      if (auto* v = m.get_if<R>()) {
        detail::invoke_with_context(ok, static_cast<const R&>(*v), ctx);
      } else if (auto* e = m.get_if<error>()) {
        detail::invoke_with_context(err, static_cast<const error&>(*e), ctx);
      } else {
        detail::invoke_with_context(err, error{errc::unexpected_reply, std::string{m.type_name()}}, ctx);
      }
    };
  }

private:
  intrusive_ptr<detail::actor_reply_slot> slot_;
};

/// Completes work an actor waits for (`context::await_completion`), from any
/// thread, once: with a value or an error. Later completions are ignored.
template <class R>
class completion {
public:
  explicit completion(intrusive_ptr<detail::actor_reply_slot> slot) noexcept : slot_{std::move(slot)} {}
  /// Delivers the value; false when already completed (or timed out).
  bool complete(R value) const { return slot_->complete(message{std::move(value)}); }
  /// Delivers the error; false when already completed (or timed out).
  bool fail(error e) const { return slot_->complete(message{std::move(e)}); }

private:
  intrusive_ptr<detail::actor_reply_slot> slot_;
};

/// The pending answer to an ask made from outside the actors (`node::ask`).
/// Consume it once, in one of three ways: `get()` blocks the calling thread,
/// `then(fn)` runs `fn(expected<R>)` on a runtime thread, and `co_await`
/// resumes the coroutine on a runtime thread. Never block a runtime thread on
/// `get()`.
template <class R>
class [[nodiscard]] pending {
public:
  using slot_type = detail::external_reply_slot<R>;

  explicit pending(intrusive_ptr<slot_type> slot) noexcept : slot_{std::move(slot)} {}

  /// Blocks until the reply or the error.
  expected<R> get() { return slot_->wait(); }

  /// A `std::future` of the answer.
  std::future<expected<R>> to_future() {
    auto promise = std::make_shared<std::promise<expected<R>>>();
    auto future = promise->get_future();
    slot_->on_answer([promise](expected<R> r) { promise->set_value(std::move(r)); });
    return future;
  }

  /// Runs `fn(expected<R>)` when the answer is there, on a runtime thread.
  template <class F>
  void then(F fn) {
    slot_->on_answer([fn = std::move(fn)](expected<R> r) mutable { fn(std::move(r)); });
  }

  struct awaiter {
    intrusive_ptr<slot_type> slot;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) { return slot->suspend(h); }
    expected<R> await_resume() { return slot->take(); }
  };
  awaiter operator co_await() && { return awaiter{std::move(slot_)}; }

private:
  intrusive_ptr<slot_type> slot_;
};

/// A promise to answer the message being handled later, e.g. after asking
/// other actors. Taken with `context::promise()`. An ask whose promise is
/// dropped unanswered fails with `errc::no_reply` at once.
///
/// Thread-safety: deliver from one thread (any thread).
class response_promise {
public:
  response_promise() noexcept = default;
  response_promise(intrusive_ptr<detail::core_link> link, intrusive_ptr<detail::reply_slot> slot, actor_id self,
                   actor_id sender) noexcept
      : link_{std::move(link)}, slot_{std::move(slot)}, self_{std::move(self)}, sender_{std::move(sender)} {}
  response_promise(response_promise&&) noexcept = default;
  response_promise& operator=(response_promise&& o) noexcept {
    if (this != &o) {
      abandon();
      link_ = std::move(o.link_);
      slot_ = std::move(o.slot_);
      self_ = std::move(o.self_);
      sender_ = std::move(o.sender_);
    }
    return *this;
  }
  ~response_promise() { abandon(); }

  /// Sends the answer (a value, or an `error`) to whoever asked or told.
  template <class T>
  void deliver(T&& value) {
    deliver_message(message{std::forward<T>(value)});
  }
  /// Sends an already wrapped answer.
  void deliver_message(message&& m);
  /// True until delivered.
  [[nodiscard]] bool pending() const noexcept { return static_cast<bool>(link_); }

private:
  void abandon() noexcept;

  intrusive_ptr<detail::core_link> link_;
  intrusive_ptr<detail::reply_slot> slot_;
  actor_id self_;
  actor_id sender_;
};

} // namespace aether
