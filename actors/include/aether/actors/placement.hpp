#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/actors/message.hpp>
#include <aether/actors/reply.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/expected.hpp>

namespace aether {

/// A message for an actor that runs on another node, as the send path hands
/// it to the placement.
struct outbound_message {
  actor_id target;
  /// The sending actor (empty from outside the actors): the receiver's `ctx.sender()`.
  actor_id sender;
  message payload;
  /// Set for an ask: where the answer (or an error) goes.
  intrusive_ptr<detail::reply_slot> reply;
  /// For an ask: how long the asker waits.
  executor::duration timeout{};
};

/// What the actors offer a placement about their mailboxes.
class mailboxes {
public:
  virtual ~mailboxes() = default;
  /// Calls `done` (on a runtime thread) once every mailbox has handled what
  /// the calling thread queued in it before the call: delivered it, or
  /// handed it to the placement. A mailbox keeps the order of one thread's
  /// sends, not the order across threads, so this says nothing about what
  /// other threads queued. A closed mailbox counts as passed.
  virtual void barrier(unique_function<void()> done) = 0;
};

/// The step of the send path that decides where an actor runs. Every tell,
/// ask and reply to an actor asks `is_local` first; a message for an actor
/// elsewhere goes to `forward` instead of a local mailbox. Without one (the
/// embedded default) every actor is local. The cluster implements it;
/// answers to asks made on this node never pass through it.
///
/// Thread-safety: both from any thread, concurrently.
class placement {
public:
  virtual ~placement() = default;
  /// True when `target` runs on this node. On every send: cheap and lock-free.
  [[nodiscard]] virtual bool is_local(const actor_id& target) const noexcept = 0;
  /// Takes over a message for an actor elsewhere. An error is the send's
  /// result (`no_wire_form`, `unavailable`, ...); once accepted, an ask's
  /// answer or error arrives through its reply slot.
  virtual expected<void> forward(outbound_message&& m) = 0;
  /// True when this node may activate `target`: it serves the actor's shard,
  /// or is finishing what was queued for it before handing it over. Asked
  /// only when an actor is activated; a message for an actor that may not
  /// be activated here goes to `forward`.
  [[nodiscard]] virtual bool may_activate(const actor_id& target) const noexcept { return is_local(target); }
  /// Given the system's mailboxes when the placement is installed; valid
  /// while it is.
  virtual void attach(mailboxes& m) noexcept { (void)m; }
};

} // namespace aether
