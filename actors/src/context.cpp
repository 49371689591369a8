#include "shard.hpp"
#include "system_core.hpp"

#include <aether/actors/context.hpp>

#include <memory>

namespace aether {

using detail::envelope;
using detail::envelope_kind;

namespace {
const actor_id none;
}

const actor_id& context::self() const noexcept { return self_ ? *self_ : none; }
const actor_id& context::sender() const noexcept { return current_ ? current_->sender : none; }
executor::time_point context::now() const noexcept { return shard_->now(); }

void context::reply_message(message&& m) {
  auto& core = shard_->core();
  replied_ = true;
  if (current_ && current_->reply) {
    auto slot = std::move(current_->reply);
    if (!slot->complete(std::move(m))) detail::counters::bump(core.stats.late_replies);
    return;
  }
  if (current_ && !current_->sender.empty()) {
    envelope env{current_->sender, self(), {}, std::move(m)};
    const auto type = env.payload.type_name();
    if (!core.send(std::move(env), true)) core.dead_letter(current_->sender, type, errc::mailbox_full);
    return;
  }
  // Nobody asked and no actor sent it: there is no one to answer.
}

response_promise context::promise() {
  replied_ = true;
  if (current_ == nullptr) return response_promise{shard_->core().link, {}, self(), {}};
  return response_promise{shard_->core().link, std::move(current_->reply), self(), current_->sender};
}

expected<void> context::tell_message(const actor_id& to, message&& m) {
  return shard_->core().send(envelope{to, self(), {}, std::move(m)}, true);
}

intrusive_ptr<detail::actor_reply_slot> context::ask_message(const actor_id& to, message&& m, duration timeout) {
  auto& core = shard_->core();
  auto slot = make_intrusive<detail::actor_reply_slot>(core.link, self(), cell_->incarnation);
  ++cell_->pending_asks;
  slot->timer = core.exec.start_timer(shard_->lane(), timeout, duration::zero(), [slot, &core] {
    slot->timer = 0;
    if (slot->complete(message{error{errc::timeout}})) detail::counters::bump(core.stats.ask_timeouts);
  });
  // A failed send answers through the asker's mailbox, like any answer.
  if (auto sent = core.send(envelope{to, self(), slot, std::move(m)}, true, timeout); !sent) {
    slot->complete(message{sent.error()});
  }
  return slot;
}

intrusive_ptr<detail::actor_reply_slot> context::await_slot(duration timeout, bool exclusive) {
  auto& core = shard_->core();
  auto slot = make_intrusive<detail::actor_reply_slot>(core.link, self(), cell_->incarnation, exclusive);
  ++cell_->pending_asks;
  if (exclusive) ++cell_->suspended;
  slot->timer = core.exec.start_timer(shard_->lane(), timeout, duration::zero(), [slot] {
    slot->timer = 0;
    slot->complete(message{error{errc::timeout, "the awaited work did not complete in time"}});
  });
  return slot;
}

executor::timer_id context::schedule(duration delay, duration period, unique_function<message()> make) {
  auto& core = shard_->core();
  const bool once = period == duration::zero();
  auto id_holder = std::make_shared<timer_id>(0);
  const auto id = core.exec.start_timer(
      shard_->lane(), delay, period,
      [s = shard_, target = self(), inc = cell_->incarnation, once, id_holder, make = std::move(make)]() mutable {
        s->fire_timer(target, inc, *id_holder, once, make());
      });
  *id_holder = id;
  cell_->ext().timers.push_back(id);
  return id;
}

void context::cancel_timer(timer_id id) {
  shard_->core().exec.cancel_timer(shard_->lane(), id);
  if (cell_ && cell_->extras) std::erase(cell_->extras->timers, id);
}

void response_promise::deliver_message(message&& m) {
  if (!link_) return;
  const auto link = std::move(link_);
  if (slot_) {
    if (!slot_->complete(std::move(m))) {
      if (detail::entered_core core{*link}) detail::counters::bump(core->stats.late_replies);
    }
    slot_ = {};
    return;
  }
  if (!sender_.empty()) {
    detail::entered_core core{*link};
    if (!core) return; // the system is gone, and the sender with it
    const auto type = m.type_name();
    if (!core->send(envelope{sender_, self_, {}, std::move(m)}, true)) {
      core->dead_letter(sender_, type, errc::mailbox_full);
    }
    return;
  }
  // Nobody asked and no actor sent it: there is no one to answer.
}

void response_promise::abandon() noexcept {
  if (!link_) return;
  link_ = {};
  if (slot_) {
    // Dropped unanswered: its actor stopped, or the node shut down, while
    // work it started (a persist, say) may still take effect.
    slot_->complete(message{error{errc::no_reply, "the response promise was dropped; what the handler started may "
                                                  "or may not have taken effect"}});
    slot_ = {};
  }
}

} // namespace aether
