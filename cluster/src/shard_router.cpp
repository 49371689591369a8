#include "shard_router.hpp"

#include "subjects.hpp"

#include <aether/runtime/log.hpp>

#include <algorithm>
#include <chrono>

namespace aether {

namespace {

using namespace std::chrono_literals;

/// How long an ask waits before it looks for an owner again.
constexpr executor::duration retry_backoff = 20ms;
constexpr executor::duration sweep_period = 1s;

/// The answer to an ask that came from another node: sent back to the
/// asking node's inbox with the ask's correlation.
class remote_reply_slot final : public detail::reply_slot {
public:
  remote_reply_slot(std::shared_ptr<shard_router> router, member_id asker, std::uint64_t correlation)
      : router_{std::move(router)}, asker_{std::move(asker)}, correlation_{correlation} {}

protected:
  void deliver(message&& answer) override {
    remote_envelope e;
    e.kind = remote_kind::answer;
    e.from = router_->self();
    e.correlation = correlation_;
    if (auto* err = answer.get_if<error>()) {
      e.failure = std::move(*err);
    } else if (auto* w = answer.get_if<wire_message>()) {
      e.type = std::move(w->name);
      e.payload = std::move(w->json);
    } else if (auto encoded = encode_wire(answer, e.payload); encoded) {
      e.type = std::string{answer.type_name()};
    } else {
      e.payload.clear();
      e.failure = encoded.error();
    }
    if (auto sent = router_->send(asker_, e); !sent) {
      log(log_level::warn, "answer to {} not sent: {}", asker_.to_string(), sent.error().to_string());
    }
  }

private:
  std::shared_ptr<shard_router> router_;
  member_id asker_;
  std::uint64_t correlation_;
};

std::uint64_t millis(executor::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

} // namespace

shard_router::shard_router(actor_system& system, executor& exec, std::size_t lane,
                           std::shared_ptr<nats::connection> conn, std::string cluster, std::uint32_t shard_count)
    : system_{system},
      exec_{exec},
      lane_{lane},
      conn_{std::move(conn)},
      cluster_{std::move(cluster)},
      shard_count_{shard_count},
      owned_{std::make_unique<std::atomic<bool>[]>(shard_count)} {
  for (std::uint32_t s = 0; s < shard_count_; ++s) owned_[s].store(false);
}

shard_router::~shard_router() = default;

void shard_router::apply(const cluster_snapshot& view) {
  std::vector<bool> owned(shard_count_, false);
  for (auto s : view.owned_shards) {
    if (s < shard_count_) owned[s] = true;
  }
  std::lock_guard lock{mutex_};
  if (stopped_) return;
  const bool new_self = !view_ || view_->self != view.self;
  view_ = std::make_shared<const cluster_snapshot>(view);
  for (std::uint32_t s = 0; s < shard_count_; ++s) owned_[s].store(owned[s], std::memory_order_relaxed);
  if (new_self) {
    // This incarnation's inbox (a node that rejoined has a new one).
    auto sub = conn_->subscribe(cluster_subjects::node_inbox(cluster_, view.self.node, view.self.incarnation),
                                [weak = weak_from_this()](const nats::message_view& m) {
                                  if (auto self = weak.lock()) self->on_inbox(m.data());
                                });
    if (!sub) {
      log(log_level::error, "cannot subscribe to this node's inbox: {}", sub.error().to_string());
    } else {
      inbox_.emplace(std::move(*sub));
    }
  }
  if (sweep_timer_ == 0) {
    sweep_timer_ = 1; // taken; the lane sets the real id
    exec_.post(lane_, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self) return;
      const auto id = self->exec_.start_timer(self->lane_, sweep_period, sweep_period, [weak = self->weak_from_this()] {
        if (auto s = weak.lock()) s->sweep();
      });
      std::lock_guard inner{self->mutex_};
      self->sweep_timer_ = id;
    });
  }
}

void shard_router::stop() {
  std::optional<nats::subscription> inbox;
  executor::timer_id timer = 0;
  {
    std::lock_guard lock{mutex_};
    stopped_ = true;
    inbox = std::move(inbox_);
    inbox_.reset();
    timer = std::exchange(sweep_timer_, 0);
  }
  if (timer > 1) exec_.post(lane_, [this, timer, self = shared_from_this()] { exec_.cancel_timer(lane_, timer); });
  inbox.reset();
}

member_id shard_router::self() const {
  std::lock_guard lock{mutex_};
  return view_ ? view_->self : member_id{};
}

bool shard_router::is_local(const actor_id& target) const noexcept {
  return owned_[target.shard(shard_count_)].load(std::memory_order_relaxed);
}

expected<void> shard_router::send(const member_id& to, const remote_envelope& e) {
  return conn_->publish(cluster_subjects::node_inbox(cluster_, to.node, to.incarnation), encode_envelope(e));
}

expected<void> shard_router::forward(outbound_message&& m) {
  std::string payload;
  if (auto encoded = encode_wire(m.payload, payload); !encoded) return encoded.error();
  const auto shard = m.target.shard(shard_count_);
  if (!m.reply) {
    std::shared_ptr<const cluster_snapshot> view;
    {
      std::lock_guard lock{mutex_};
      view = view_;
    }
    const member_id owner = view ? view->map->owner(shard) : member_id{};
    if (owner.empty() || !view || owner == view->self) {
      return error{errc::unavailable,
                   fmt::format("no node serves cluster shard {} of {}", shard, m.target.to_string())};
    }
    remote_envelope e;
    e.kind = remote_kind::tell;
    e.from = view->self;
    e.target = std::move(m.target);
    e.sender = std::move(m.sender);
    e.type = std::string{m.payload.type_name()};
    e.payload = std::move(payload);
    e.epoch = view->epoch();
    e.shard = shard;
    return send(owner, e);
  }
  const auto correlation = next_correlation_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock{mutex_};
    pending_.emplace(correlation,
                     pending_ask{std::move(m.reply), std::move(m.target), std::move(m.sender),
                                 std::string{m.payload.type_name()}, std::move(payload), exec_.now() + m.timeout});
  }
  route_ask(correlation);
  return {};
}

void shard_router::route_ask(std::uint64_t correlation) {
  remote_envelope e;
  member_id owner;
  {
    std::lock_guard lock{mutex_};
    auto it = pending_.find(correlation);
    if (it == pending_.end()) return;
    auto& p = it->second;
    if (p.reply->done() || exec_.now() >= p.deadline || stopped_) {
      pending_.erase(it); // its own timeout answers the asker
      return;
    }
    const auto shard = p.target.shard(shard_count_);
    if (view_) owner = view_->map->owner(shard);
    if (owner.empty() || !view_ || (owner == view_->self && !owned_[shard].load(std::memory_order_relaxed))) {
      // Nothing was sent: wait for a map that names a serving owner.
    } else if (owner == view_->self) {
      // The shard came here meanwhile.
      auto ask = std::move(p);
      pending_.erase(it);
      if (auto queued =
              system_.deliver(ask.target, ask.sender, message{wire_message{ask.type, ask.payload}}, ask.reply);
          !queued) {
        ask.reply->complete(message{queued.error()});
      }
      return;
    } else {
      e.kind = remote_kind::ask;
      e.from = view_->self;
      e.target = p.target;
      e.sender = p.sender;
      e.type = p.type;
      e.payload = p.payload;
      e.correlation = correlation;
      e.timeout_ms = millis(p.deadline - exec_.now());
      e.epoch = view_->epoch();
      e.shard = shard;
    }
  }
  if (owner.empty() || e.correlation == 0) {
    retry_later(correlation);
    return;
  }
  if (auto sent = send(owner, e); !sent) {
    intrusive_ptr<detail::reply_slot> reply;
    {
      std::lock_guard lock{mutex_};
      if (auto it = pending_.find(correlation); it != pending_.end()) {
        reply = std::move(it->second.reply);
        pending_.erase(it);
      }
    }
    if (reply) reply->complete(message{sent.error()});
  }
}

void shard_router::retry_later(std::uint64_t correlation) {
  exec_.post(lane_, [weak = weak_from_this(), correlation] {
    auto self = weak.lock();
    if (!self) return;
    self->exec_.start_timer(self->lane_, retry_backoff, executor::duration::zero(), [weak, correlation] {
      if (auto s = weak.lock()) s->route_ask(correlation);
    });
  });
}

void shard_router::sweep() {
  std::lock_guard lock{mutex_};
  std::erase_if(pending_, [](const auto& p) { return p.second.reply->done(); });
}

void shard_router::on_inbox(std::string_view bytes) {
  auto e = decode_envelope(bytes);
  if (!e) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    log(log_level::warn, "dropped a message from another node: {}", e.error().to_string());
    return;
  }
  if (e->kind == remote_kind::tell || e->kind == remote_kind::ask) {
    on_message(std::move(*e));
  } else {
    on_answer(std::move(*e));
  }
}

void shard_router::on_message(remote_envelope&& e) {
  if (!is_local(e.target)) {
    if (e.kind == remote_kind::ask) {
      remote_envelope no;
      no.kind = remote_kind::not_owner;
      no.correlation = e.correlation;
      {
        std::lock_guard lock{mutex_};
        if (view_) no.from = view_->self;
      }
      (void)send(e.from, no);
    } else {
      system_.report_dead_letter(e.target, e.type, errc::unavailable);
    }
    return;
  }
  intrusive_ptr<detail::reply_slot> reply;
  if (e.kind == remote_kind::ask) reply = make_intrusive<remote_reply_slot>(shared_from_this(), e.from, e.correlation);
  auto queued =
      system_.deliver(e.target, e.sender, message{wire_message{std::move(e.type), std::move(e.payload)}}, reply);
  if (!queued && reply) reply->complete(message{queued.error()});
}

void shard_router::on_answer(remote_envelope&& e) {
  intrusive_ptr<detail::reply_slot> reply;
  {
    std::lock_guard lock{mutex_};
    auto it = pending_.find(e.correlation);
    if (it == pending_.end()) return; // timed out and swept: a late answer
    if (e.kind == remote_kind::not_owner) {
      // Certainly not delivered: look for the owner again.
    } else {
      reply = std::move(it->second.reply);
      pending_.erase(it);
    }
  }
  if (e.kind == remote_kind::not_owner) {
    retry_later(e.correlation);
    return;
  }
  if (e.failure) {
    reply->complete(message{std::move(*e.failure)});
  } else {
    reply->complete(message{wire_message{std::move(e.type), std::move(e.payload)}});
  }
}

} // namespace aether
