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
/// How often the handoff's deadlines are checked; answered asks are swept every tenth time.
constexpr executor::duration tick_period = 100ms;
/// How often a release looks again at actors with a write in flight (it
/// waits for them however long they take: the new owner waits meanwhile).
constexpr executor::duration release_retry = 5ms;
/// How long after the node started a message for an actor type not
/// registered yet waits for the program to register it.
constexpr executor::duration registration_grace = 5s;
/// A tell is sent on by nodes that no longer own its shard at most this often.
constexpr std::uint32_t max_hops = 3;

/// The answer to an ask that came from another node: sent back to the
/// asking node's inbox with the ask's correlation.
class remote_reply_slot final : public detail::reply_slot {
public:
  remote_reply_slot(std::shared_ptr<shard_router> router, member_id self, member_id asker, std::uint64_t correlation)
      : router_{std::move(router)}, self_{std::move(self)}, asker_{std::move(asker)}, correlation_{correlation} {}

protected:
  void deliver(message&& answer) override {
    remote_envelope e;
    e.kind = remote_kind::answer;
    e.from = self_;
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
  member_id self_;
  member_id asker_;
  std::uint64_t correlation_;
};

std::uint64_t millis(executor::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

error overflow(std::uint32_t shard) {
  return error{errc::unavailable, fmt::format("cluster shard {} is moving and its buffer is full", shard)};
}

} // namespace

shard_router::shard_router(actor_system& system, executor& exec, std::size_t lane,
                           std::shared_ptr<nats::connection> conn, std::string cluster, std::uint32_t shard_count,
                           options opts)
    : system_{system},
      exec_{exec},
      lane_{lane},
      conn_{std::move(conn)},
      cluster_{std::move(cluster)},
      shard_count_{shard_count},
      state_{std::make_unique<std::atomic<std::uint8_t>[]>(shard_count)},
      handoff_{shard_count, opts.release_timeout, opts.hold_limit},
      hold_limit_{opts.hold_limit},
      release_timeout_{opts.release_timeout},
      registration_until_{exec.now() + registration_grace},
      outs_(shard_count),
      fence_timeout_{opts.fence_timeout},
      fence_limit_{std::max(opts.fence_limit, opts.fence_timeout)} {
  for (std::uint32_t s = 0; s < shard_count_; ++s) state_[s].store(static_cast<std::uint8_t>(shard_state::remote));
  outbox_ = std::make_shared<outbox>(exec_, lane_, conn_, [cluster = cluster_](const member_id& m) {
    return cluster_subjects::node_inbox(cluster, m.node, m.incarnation);
  });
}

shard_router::~shard_router() = default;

void shard_router::sync_states() {
  for (std::uint32_t s = 0; s < shard_count_; ++s) {
    const auto st = handoff_.state(s);
    state_[s].store(st == shard_state::serving && outs_[s].settling ? settling_state : static_cast<std::uint8_t>(st),
                    std::memory_order_relaxed);
  }
}

void shard_router::listen(const member_id& self) {
  std::lock_guard lock{mutex_};
  if (stopped_ || listening_ == self) return;
  subscribe(self);
}

void shard_router::subscribe(const member_id& self) {
  auto sub = conn_->subscribe(cluster_subjects::node_inbox(cluster_, self.node, self.incarnation),
                              [weak = weak_from_this()](const nats::message_view& m) {
                                if (auto r = weak.lock()) r->on_inbox(m.data());
                              });
  if (!sub) {
    log(log_level::error, "cannot subscribe to this node's inbox: {}", sub.error().to_string());
    return;
  }
  inbox_.emplace(std::move(*sub));
  listening_ = self;
}

void shard_router::apply(const cluster_snapshot& view) {
  actions todo;
  bool replaying = false;
  {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    const bool new_self = !view_ || view_->self != view.self;
    view_ = std::make_shared<const cluster_snapshot>(view);
    const auto step = handoff_.apply(view, exec_.now());
    take_step(step, todo);
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
      auto& o = outs_[s];
      // A fence to a node that died will not pass: what it fenced goes on.
      if (o.fence != 0 && !reachable(o.fenced)) fence_passed(s, o.fence, todo);
      if (o.fence != 0 || o.dest.empty()) continue;
      // Tells went to a node that no longer owns the shard: the fence goes
      // now, while that node still runs (a node that left keeps its inbox
      // open a while), not with the shard's next message, which would wait
      // for one that can no longer pass.
      if (!reachable(o.dest)) {
        o.dest = member_id{};
      } else if (o.dest != owner_of(s)) {
        start_fence(s);
      }
    }
    // This incarnation's inbox (a node that rejoined has a new one), unless
    // it was opened before the node joined.
    if (new_self && listening_ != view.self) subscribe(view.self);
    replaying = !early_.empty() && !replaying_;
    if (replaying) replaying_ = true;
    if (sweep_timer_ == 0) {
      sweep_timer_ = 1; // taken; the lane sets the real id
      exec_.post(lane_, [weak = weak_from_this()] {
        auto self = weak.lock();
        if (!self) return;
        const auto id = self->exec_.start_timer(self->lane_, tick_period, tick_period, [weak = self->weak_from_this()] {
          if (auto s = weak.lock()) s->tick();
        });
        std::lock_guard inner{self->mutex_};
        if (self->stopped_) {
          self->exec_.cancel_timer(self->lane_, id);
        } else {
          self->sweep_timer_ = id;
        }
      });
    }
  }
  run(std::move(todo));
  // What came before this node knew its map, in arrival order (what comes
  // meanwhile queues behind it).
  while (replaying) {
    remote_envelope e;
    {
      std::lock_guard lock{mutex_};
      if (early_.empty() || stopped_) {
        replaying_ = false;
        break;
      }
      e = std::move(early_.front());
      early_.pop_front();
    }
    on_envelope(std::move(e));
  }
}

void shard_router::take_step(const handoff_step& given, actions& todo) {
  // A shard this node is to serve while tells it sent elsewhere for it may
  // still be on their way (sent on to it later): it waits for them behind a
  // fence. Its own tells meanwhile wait behind that fence too.
  handoff_step step = given;
  // What waits behind the fence stays there: tells sent before it may still
  // come back here, and go first.
  const auto hold_back = [&](std::uint32_t s) {
    start_fence(s);
    handoff_.hold_back(s);
  };
  std::erase_if(step.serve, [&](std::uint32_t s) {
    if (!needs_fence(s)) return false;
    hold_back(s);
    return true;
  });
  for (const auto& q : step.query) {
    if (needs_fence(q.first)) hold_back(q.first);
  }
  // A shard that stops being served here while it settles: what waited to
  // settle is older than anything its actors get from now on.
  std::deque<remote_envelope> unsettled;
  for (const auto* moved : {&step.drain, &step.drop}) {
    for (auto s : *moved) {
      auto& o = outs_[s];
      if (!o.settling) continue;
      o.settling = false;
      ++o.round;
      waiting_ -= o.settle.size();
      for (auto& e : std::exchange(o.settle, {})) unsettled.push_back(std::move(e));
    }
  }
  // Not local to the send path until it settled; its actors may activate.
  if (mailboxes_.load(std::memory_order_acquire) != nullptr) {
    for (auto s : step.serve) outs_[s].settling = true;
  }
  sync_states();
  for (auto& e : unsettled) deliver_settled(std::move(e), todo);
  for (auto s : step.serve) {
    // Each sender's epochs only grow: ordered by them (stably), what a
    // sender sent by an older map (to the old owner, which sent it on)
    // comes before what it sent here by a newer one, whichever came first.
    auto held = handoff_.take_held(s);
    std::stable_sort(held.begin(), held.end(),
                     [](const remote_envelope& x, const remote_envelope& y) { return x.epoch < y.epoch; });
    settle(s, std::move(held), todo);
  }
  for (auto s : step.rehome) {
    const auto owner = owner_of(s);
    if (!owner.empty() && owner != view_->self) forward_held(s, owner, todo);
  }
  for (const auto& [s, from] : step.query) {
    remote_envelope q;
    q.kind = remote_kind::query;
    q.from = view_->self;
    q.epoch = view_->epoch();
    q.shard = s;
    if (!from.empty()) {
      todo.sends.emplace_back(from, q);
      continue;
    }
    for (const auto& m : view_->members) {
      if (m.status == member_status::alive && m.id != view_->self) todo.sends.emplace_back(m.id, q);
    }
  }
  todo.drain.insert(todo.drain.end(), step.drain.begin(), step.drain.end());
  todo.drop.insert(todo.drop.end(), step.drop.begin(), step.drop.end());
  if (!step.drain.empty() || !step.drop.empty()) {
    log(log_level::info, "map {}: {} shards move away, {} stop here", view_ ? view_->epoch() : 0, step.drain.size(),
        step.drop.size());
  }
}

void shard_router::run(actions&& todo) {
  for (auto& [to, e] : todo.sends) (void)send(to, e);
  // On the thread that delivered the settling messages, behind them.
  for (const auto& [s, round] : todo.settle) {
    mailboxes_.load(std::memory_order_acquire)->barrier([weak = weak_from_this(), s = s, round = round] {
      if (auto r = weak.lock()) r->settled(s, round);
    });
  }
  for (auto& [reply, err] : todo.failures) reply->complete(message{std::move(err)});
  if (!todo.drain.empty()) release_shards(std::move(todo.drain), true, {});
  if (!todo.drop.empty()) release_shards(std::move(todo.drop), false, {});
}

void shard_router::leave(unique_function<void()> done) {
  actions todo;
  std::vector<std::uint32_t> shards;
  {
    std::lock_guard lock{mutex_};
    if (stopped_) {
      done();
      return;
    }
    auto step = handoff_.leave();
    shards = std::move(step.drain);
    step.drain.clear();
    take_step(step, todo);
  }
  run(std::move(todo));
  release_shards(std::move(shards), true, std::move(done));
}

void shard_router::release_shards(std::vector<std::uint32_t> shards, bool notify, unique_function<void()> done) {
  auto mask = std::make_shared<std::vector<bool>>(shard_count_, false);
  for (auto s : shards) mask->at(s) = true;
  auto moved = [mask, n = shard_count_](const actor_id& id) { return (*mask)[id.shard(n)]; };
  auto finish = std::make_shared<unique_function<void()>>(std::move(done));
  auto task = std::make_shared<release_task>();
  task->shards = std::move(shards);
  task->moved = moved;
  task->notify = notify;
  task->finish = finish;
  release_round(task);
}

void shard_router::release_round(const std::shared_ptr<release_task>& task) {
  // What is queued here is finished and the actors passivate; actors with a
  // write in flight are waited for, however long they take. Then the shards
  // stop being served here, anything activated meanwhile passivates too,
  // and the new owners hear that they may serve.
  system_.release(task->moved, [weak = weak_from_this(), task](std::size_t busy) {
    auto self = weak.lock();
    if (!self) {
      if (*task->finish) (*task->finish)();
      return;
    }
    if (busy > 0) {
      self->exec_.post(self->lane_, [weak, task] {
        auto s = weak.lock();
        if (!s) return;
        s->exec_.start_timer(s->lane_, release_retry, executor::duration::zero(), [weak, task] {
          if (auto r = weak.lock()) r->release_round(task);
        });
      });
      return;
    }
    if (task->phase == 0) {
      task->phase = 1;
      actions todo;
      {
        std::lock_guard lock{self->mutex_};
        const bool leaving = self->handoff_.leaving();
        for (auto s : task->shards) {
          auto to = self->handoff_.drained(s);
          // What came for the shard while it drained goes ahead of the
          // release, to the new owner (a node that leaves knows it once
          // that owner asked; until then it waits here for the question).
          if (const auto next = to ? *to : self->handoff_.forward_to(s); !next.empty()) {
            self->forward_held(s, next, todo);
          }
          if (!task->notify) continue;
          if (to) {
            task->to_notify.emplace_back(*to, s);
          } else if (leaving && self->view_) {
            // The new owners are not known here: every live member hears it.
            for (const auto& m : self->view_->members) {
              if (m.status == member_status::alive && m.id != self->view_->self) task->to_notify.emplace_back(m.id, s);
            }
          }
        }
        self->sync_states();
      }
      self->run(std::move(todo));
      self->release_round(task);
      return;
    }
    remote_envelope e;
    e.kind = remote_kind::released;
    {
      std::lock_guard lock{self->mutex_};
      if (self->view_) {
        e.from = self->view_->self;
        e.epoch = self->view_->epoch();
      }
    }
    for (const auto& [to, s] : task->to_notify) {
      if (e.from.empty()) break;
      e.shard = s;
      if (auto sent = self->send(to, e); !sent) {
        log(log_level::warn, "release of shard {} to {} not sent: {}", s, to.to_string(), sent.error().to_string());
      }
    }
    if (*task->finish) (*task->finish)();
  });
}

void shard_router::stop() {
  std::optional<nats::subscription> inbox;
  executor::timer_id timer = 0;
  actions todo;
  std::vector<intrusive_ptr<detail::reply_slot>> stranded;
  {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    // What still waits here cannot be delivered any more: asks were not,
    // so their askers look again; tells are counted dead letters.
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
      if (const auto to = handoff_.forward_to(s); !to.empty() && view_) {
        forward_held(s, to, todo); // released here, and its new owner is known
        continue;
      }
      for (auto& e : handoff_.take_held(s)) {
        if (is_fence(e)) continue;
        if (e.kind == remote_kind::ask && view_ && e.from != view_->self) {
          remote_envelope no;
          no.kind = remote_kind::not_owner;
          no.from = view_->self;
          no.correlation = e.correlation;
          todo.sends.emplace_back(e.from, std::move(no));
        } else {
          system_.report_dead_letter(e.target, e.type, errc::shutting_down);
        }
      }
    }
    // Tells behind a fence go on unfenced: this is their last chance.
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
      auto& o = outs_[s];
      o.fence = 0;
      auto to = owner_of(s);
      if (to.empty() || (view_ && to == view_->self)) to = handoff_.forward_to(s);
      for (auto& e : std::exchange(o.waiting, {})) {
        if (is_fence(e)) continue;
        if (!to.empty()) {
          (void)outbox_->send(to, e);
        } else {
          system_.report_dead_letter(e.target, e.type, errc::shutting_down);
        }
      }
    }
    // What waited for its shard to settle goes to the mailboxes (in order).
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
      auto& o = outs_[s];
      o.settling = false;
      for (auto& e : std::exchange(o.settle, {})) deliver_settled(std::move(e), todo);
    }
    waiting_ = 0;
    for (auto& e : std::exchange(early_, {})) {
      if (!is_fence(e)) system_.report_dead_letter(e.target, e.type, errc::shutting_down);
    }
    // Asks still looking for an owner will find none here any more.
    for (auto& [correlation, ask] : pending_) stranded.push_back(std::move(ask.reply));
    pending_.clear();
    stopped_ = true;
    inbox = std::move(inbox_);
    inbox_.reset();
    timer = std::exchange(sweep_timer_, 0);
  }
  if (timer > 1) exec_.post(lane_, [this, timer, self = shared_from_this()] { exec_.cancel_timer(lane_, timer); });
  run(std::move(todo));
  outbox_->flush(); // tells gathered for other nodes leave before the connection does
  inbox.reset();
  for (auto& reply : stranded) {
    if (reply) reply->complete(message{error{errc::shutting_down, "this node stopped before the ask found an owner"}});
  }
}

member_id shard_router::self() const {
  std::lock_guard lock{mutex_};
  return view_ ? view_->self : member_id{};
}

bool shard_router::is_local(const actor_id& target) const noexcept {
  return state_[target.shard(shard_count_)].load(std::memory_order_relaxed) ==
         static_cast<std::uint8_t>(shard_state::serving);
}

bool shard_router::may_activate(const actor_id& target) const noexcept {
  const auto s = state_[target.shard(shard_count_)].load(std::memory_order_relaxed);
  return s == static_cast<std::uint8_t>(shard_state::serving) ||
         s == static_cast<std::uint8_t>(shard_state::draining) || s == settling_state;
}

member_id shard_router::owner_of(std::uint32_t shard) const {
  if (!view_) return {};
  const auto& owner = view_->map->owner(shard);
  if (owner.empty()) return {};
  const bool alive = std::any_of(view_->members.begin(), view_->members.end(),
                                 [&](const member& m) { return m.id == owner && m.status == member_status::alive; });
  return alive ? owner : member_id{};
}

expected<void> shard_router::send(const member_id& to, const remote_envelope& e) { return outbox_->send(to, e); }

bool shard_router::no_one_to_send_to() const {
  return stopped_ || (handoff_.leaving() && view_ &&
                      std::none_of(view_->members.begin(), view_->members.end(), [&](const member& x) {
                        return x.status == member_status::alive && x.id != view_->self;
                      }));
}

expected<void> shard_router::forward(outbound_message&& m) {
  // A node that stops, or leaves a cluster with no other live member, has
  // no one to send to: it says so now rather than after a timeout (and
  // before anything else). Checked under the lock the routing takes anyway.
  const auto stopping = [](const actor_id& target) {
    return error{errc::shutting_down, "this node is stopping and no other node serves " + target.to_string()};
  };
  std::string type;
  std::string payload;
  if (auto* w = m.payload.get_if<wire_message>()) {
    // One that came from another node and was handed back by the mailbox
    // (its actor's shard moved on meanwhile) travels on as it came.
    type = std::move(w->name);
    payload = std::move(w->json);
  } else if (auto encoded = encode_wire(m.payload, payload); encoded) {
    type = std::string{m.payload.type_name()};
  } else {
    std::lock_guard lock{mutex_};
    if (no_one_to_send_to()) return stopping(m.target);
    return encoded.error();
  }
  const auto shard = m.target.shard(shard_count_);
  if (!m.reply) {
    remote_envelope e;
    e.kind = remote_kind::tell;
    e.target = std::move(m.target);
    e.sender = std::move(m.sender);
    e.type = std::move(type);
    e.payload = std::move(payload);
    e.shard = shard;
    member_id owner;
    actions todo;
    expected<void> sent;
    {
      std::lock_guard lock{mutex_};
      if (no_one_to_send_to()) return stopping(e.target);
      if (view_) {
        e.from = view_->self;
        e.epoch = view_->epoch();
      }
      const auto st = handoff_.state(shard);
      owner = owner_of(shard);
      if (st == shard_state::remote && (owner.empty() || owner == e.from)) owner = handoff_.forward_to(shard);
      if (st == shard_state::serving) {
        deliver_here(std::move(e), todo); // it became local meanwhile
      } else if (st == shard_state::incoming || owner.empty() || owner == e.from) {
        sent = keep(shard, std::move(e));
      } else {
        // Sent under the lock: the shard's tells leave in the order routed.
        sent = send_on(shard, owner, std::move(e));
      }
    }
    run(std::move(todo));
    return sent;
  }
  const auto correlation = next_correlation_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock{mutex_};
    if (no_one_to_send_to()) return stopping(m.target);
    pending_.emplace(correlation, pending_ask{std::move(m.reply), std::move(m.target), std::move(m.sender),
                                              std::move(type), std::move(payload), exec_.now() + m.timeout});
  }
  route_ask(correlation);
  return {};
}

void shard_router::route_ask(std::uint64_t correlation) {
  remote_envelope e;
  member_id owner;
  expected<void> sent;
  {
    std::lock_guard lock{mutex_};
    auto it = pending_.find(correlation);
    if (it == pending_.end()) return;
    auto& p = it->second;
    if (stopped_) {
      // It came in as this node stopped: no owner will be looked for.
      auto reply = std::move(p.reply);
      pending_.erase(it);
      reply->complete(message{error{errc::shutting_down, "this node stopped before the ask found an owner"}});
      return;
    }
    if (p.reply->done() || exec_.now() >= p.deadline) {
      pending_.erase(it); // its own timeout answers the asker
      return;
    }
    const auto shard = p.target.shard(shard_count_);
    owner = owner_of(shard);
    const auto st = handoff_.state(shard);
    if (st == shard_state::serving && !outs_[shard].settling) {
      // The shard came here meanwhile (and settled: a settling one is asked again shortly).
      auto ask = std::move(p);
      pending_.erase(it);
      if (auto queued =
              system_.deliver(ask.target, ask.sender, message{wire_message{ask.type, ask.payload}}, ask.reply);
          !queued) {
        ask.reply->complete(message{queued.error()});
      }
      return;
    }
    if (owner.empty() || owner == view_->self) {
      // Nothing was sent: wait for a map that names a live owner, or for
      // the shard to be released here.
      owner = {};
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
      // In order with the tells for the shard (behind its fence, if any).
      sent = send_on(shard, owner, std::move(e));
    }
  }
  if (owner.empty()) {
    retry_later(correlation);
    return;
  }
  if (!sent) {
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

void shard_router::tick() {
  actions todo;
  {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    const auto step = handoff_.expire(exec_.now());
    if (!step.serve.empty()) {
      std::string which;
      for (auto s : step.serve) {
        const auto& from = handoff_.releaser(s);
        which += fmt::format("{}{} ({})", which.empty() ? "" : ", ", s, from.empty() ? "any node" : from.to_string());
      }
      log(log_level::warn, "{}: shards not released and their old owners silent for {} ms, served anyway: {}",
          view_ ? view_->self.to_string() : std::string{}, millis(release_timeout_), which);
    }
    if (!step.empty()) take_step(step, todo);
    const auto now = exec_.now();
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
      auto& o = outs_[s];
      if (o.fence == 0 || now < o.deadline) continue;
      // A node that left still runs while it hands its shards over (and
      // keeps its inbox open a while after): it answers too.
      const bool running = reachable(o.fenced);
      if (running && now < o.limit) {
        // Slow, or the fence or its answer lost: ask again, wait on.
        o.deadline = now + fence_timeout_;
        send_fence(s);
        continue;
      }
      log(log_level::warn, "shard {}: no answer from {} to the fence behind its tells ({}); {} tells go on", s,
          o.fenced.to_string(), running ? fmt::format("within {} ms", millis(fence_limit_)) : "it is dead",
          o.waiting.size());
      fence_passed(s, o.fence, todo);
    }
    if (!types_settled_) (void)registered({}, todo);
    if (++ticks_ % 10 == 0) std::erase_if(pending_, [](const auto& p) { return p.second.reply->done(); });
  }
  run(std::move(todo));
}

void shard_router::on_inbox(std::string_view bytes) {
  std::vector<remote_envelope> envelopes;
  if (is_batch(bytes)) {
    // Envelopes gathered by the sender: each as if it had come alone, in order.
    auto parts = split_batch(bytes);
    if (!parts) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      log(log_level::warn, "dropped a batch from another node: {}", parts.error().to_string());
      return;
    }
    envelopes.reserve(parts->size());
    envelope_ids ids; // a batch's envelopes mostly name the same actors
    for (auto one : *parts) {
      auto e = decode_envelope(one, &ids);
      if (!e) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        log(log_level::warn, "dropped a message from another node: {}", e.error().to_string());
        continue;
      }
      envelopes.push_back(std::move(*e));
    }
  } else {
    auto e = decode_envelope(bytes);
    if (!e) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      log(log_level::warn, "dropped a message from another node: {}", e.error().to_string());
      return;
    }
    envelopes.push_back(std::move(*e));
  }
  take(std::move(envelopes));
}

void shard_router::take(std::vector<remote_envelope>&& envelopes) {
  actions todo;
  std::unique_lock lock{mutex_};
  if ((!view_ || replaying_) && !stopped_) {
    // The inbox opened before the node joined: it waits for the first map.
    for (auto& e : envelopes) {
      if (early_.size() < hold_limit_) {
        early_.push_back(std::move(e));
      } else {
        // No view yet to answer from: a counted dead letter (an asker times out).
        overflowed_.fetch_add(1, std::memory_order_relaxed);
        system_.report_dead_letter(e.target, e.type, errc::unavailable);
      }
    }
    return;
  }
  for (auto& e : envelopes) {
    if (e.kind == remote_kind::tell || e.kind == remote_kind::ask || is_fence(e)) {
      // A fence is routed in order with the tells before and after it.
      if (stopped_ || !view_) continue;
      route_message(std::move(e), todo);
      continue;
    }
    // Handoff messages and answers take the lock themselves: what was found
    // for the messages before them is done first.
    lock.unlock();
    run(std::move(todo));
    todo = actions{};
    on_envelope(std::move(e));
    lock.lock();
  }
  lock.unlock();
  run(std::move(todo));
}

void shard_router::on_envelope(remote_envelope&& envelope) {
  auto e = &envelope;
  switch (e->kind) {
  case remote_kind::tell:
  case remote_kind::ask:
    on_message(std::move(*e));
    break;
  case remote_kind::released: {
    actions todo;
    {
      std::lock_guard lock{mutex_};
      if (stopped_) return;
      if (e->correlation != 0) {
        fence_passed(e->shard, e->correlation, todo); // where a fence of this node arrived
      } else {
        take_step(handoff_.released(e->shard, e->from, e->epoch), todo);
      }
    }
    run(std::move(todo));
    break;
  }
  case remote_kind::query:
    if (is_fence(*e)) {
      on_message(std::move(*e));
    } else {
      on_query(std::move(*e));
    }
    break;
  case remote_kind::answer:
  case remote_kind::not_owner:
    on_answer(std::move(*e));
    break;
  }
}

void shard_router::on_query(remote_envelope&& e) {
  actions todo;
  {
    std::lock_guard lock{mutex_};
    if (stopped_ || !view_ || e.shard >= shard_count_ || e.from == view_->self) return;
    if (e.hops > 0) {
      // An answer: the node asked still serves or drains the shard.
      handoff_.waiting(e.shard, e.from);
      return;
    }
    // The sender waits for the shard as its owner.
    handoff_.learned_owner(e.shard, e.from);
    if (handoff_.released_to(e.shard, e.from)) {
      // Released here already (the sender may not have listened then, or
      // this node left and did not know the new owner): what waits here for
      // the shard goes first, then `released` again, on one connection, so
      // the new owner has it all before it serves.
      forward_held(e.shard, e.from, todo);
      remote_envelope again;
      again.kind = remote_kind::released;
      again.from = view_->self;
      again.epoch = view_->epoch();
      again.shard = e.shard;
      todo.sends.emplace_back(e.from, std::move(again));
    } else if (const auto st = handoff_.state(e.shard); st == shard_state::serving || st == shard_state::draining) {
      // Still here: the sender waits on rather than serving it too.
      remote_envelope wait;
      wait.kind = remote_kind::query;
      wait.from = view_->self;
      wait.epoch = view_->epoch();
      wait.shard = e.shard;
      wait.hops = 1;
      todo.sends.emplace_back(e.from, std::move(wait));
    }
  }
  run(std::move(todo));
}

void shard_router::forward_held(std::uint32_t shard, const member_id& to, actions& todo) {
  for (auto& e : handoff_.take_held(shard)) {
    if (e.kind == remote_kind::ask) {
      // Certainly not delivered: the asker looks again.
      remote_envelope no;
      no.kind = remote_kind::not_owner;
      no.from = view_->self;
      no.correlation = e.correlation;
      todo.sends.emplace_back(e.from, std::move(no));
    } else {
      // Another node's tell keeps the epoch it was sent by: the new owner
      // orders what it held by it. This node's own go by the map it sends
      // them by, as its next tells will: a receiver that has not applied
      // that map yet keeps them rather than sending them back by an older
      // one. A fence keeps its sender.
      if (!is_fence(e)) {
        if (e.from == view_->self) e.epoch = view_->epoch();
        e.from = view_->self;
      }
      (void)send_on(shard, to, std::move(e));
    }
  }
}

void shard_router::deliver_here(remote_envelope&& e, actions& todo) {
  if (const auto s = is_fence(e) ? e.shard : e.target.shard(shard_count_); s < shard_count_ && outs_[s].settling) {
    outs_[s].settle.push_back(std::move(e)); // behind what settles the shard, bounded by the hold limit
    ++waiting_;
    return;
  }
  deliver_settled(std::move(e), todo);
}

void shard_router::settle(std::uint32_t shard, std::deque<remote_envelope>&& held, actions& todo) {
  auto& o = outs_[shard];
  if (mailboxes_.load(std::memory_order_acquire) == nullptr) {
    for (auto& e : held) deliver_settled(std::move(e), todo);
    return;
  }
  for (auto& e : held) o.settle.push_back(std::move(e));
  waiting_ += held.size();
  settle_round(shard, todo);
}

void shard_router::settle_round(std::uint32_t shard, actions& todo) {
  auto& o = outs_[shard];
  auto batch = std::exchange(o.settle, {});
  waiting_ -= batch.size();
  for (auto& e : batch) deliver_settled(std::move(e), todo);
  todo.settle.emplace_back(shard, ++o.round);
}

void shard_router::settled(std::uint32_t shard, std::uint64_t round) {
  actions todo;
  {
    std::lock_guard lock{mutex_};
    auto& o = outs_[shard];
    if (stopped_ || !o.settling || o.round != round) return;
    if (o.settle.empty()) {
      // Every message delivered while it settled is handled: the send path
      // may queue the shard's messages straight into the mailboxes now.
      o.settling = false;
      sync_states();
      return;
    }
    settle_round(shard, todo); // what came meanwhile, from this thread, and another barrier
  }
  run(std::move(todo));
}

void shard_router::deliver_settled(remote_envelope&& e, actions& todo) {
  if (is_fence(e)) {
    answer_fence(std::move(e), todo);
    return;
  }
  if (!types_settled_ && !registered(e.target.type(), todo)) {
    // The node started moments ago and its program has not registered the
    // actor's type yet: the message waits for it (in order) rather than
    // failing with unknown_actor_type.
    if (unregistered_.size() >= hold_limit_) {
      fail_held(e.target.shard(shard_count_), std::move(e), todo);
      return;
    }
    unregistered_.push_back(std::move(e));
    return;
  }
  deliver_now(std::move(e), todo);
}

bool shard_router::registered(std::string_view type, actions& todo) {
  if (known_types_.contains(type)) return true;
  for (auto& t : system_.detail_metrics().types) known_types_.insert(std::move(t.type));
  const bool late = exec_.now() >= registration_until_;
  // What waited for types registered meanwhile goes first, in order.
  std::deque<remote_envelope> still;
  for (auto& w : unregistered_) {
    if (late || known_types_.contains(w.target.type())) {
      deliver_now(std::move(w), todo);
    } else {
      still.push_back(std::move(w));
    }
  }
  unregistered_ = std::move(still);
  if (late && unregistered_.empty()) types_settled_ = true;
  return late || known_types_.contains(type);
}

void shard_router::deliver_now(remote_envelope&& e, actions& todo) {
  intrusive_ptr<detail::reply_slot> reply;
  if (e.kind == remote_kind::ask) {
    reply =
        make_intrusive<remote_reply_slot>(shared_from_this(), view_ ? view_->self : member_id{}, e.from, e.correlation);
  }
  const auto type = e.type;
  auto queued =
      system_.deliver(e.target, e.sender, message{wire_message{std::move(e.type), std::move(e.payload)}}, reply);
  if (!queued) {
    if (reply) {
      todo.failures.emplace_back(std::move(reply), queued.error());
    } else {
      system_.report_dead_letter(e.target, type, queued.error().code());
    }
  }
}

void shard_router::hold(std::uint32_t shard, remote_envelope&& e, actions& todo) {
  if (shard < shard_count_ && handoff_.can_hold()) {
    (void)handoff_.hold(shard, std::move(e));
    return;
  }
  fail_held(shard, std::move(e), todo);
}

void shard_router::fail_held(std::uint32_t shard, remote_envelope&& e, actions& todo) {
  if (is_fence(e)) return; // its sender gives it up in time
  overflowed_.fetch_add(1, std::memory_order_relaxed);
  system_.report_dead_letter(e.target, e.type, errc::unavailable);
  if (e.kind == remote_kind::ask) {
    remote_envelope answer;
    answer.kind = remote_kind::answer;
    answer.from = view_ ? view_->self : member_id{};
    answer.correlation = e.correlation;
    answer.failure = overflow(shard);
    todo.sends.emplace_back(e.from, std::move(answer));
  }
}

void shard_router::on_message(remote_envelope&& e) {
  actions todo;
  {
    std::lock_guard lock{mutex_};
    if (stopped_ || !view_) return;
    route_message(std::move(e), todo);
  }
  run(std::move(todo));
}

void shard_router::route_message(remote_envelope&& e, actions& todo) {
  const auto shard = is_fence(e) ? e.shard : e.target.shard(shard_count_);
  if (shard >= shard_count_) return; // a fence for no shard
  switch (handoff_.state(shard)) {
  case shard_state::serving:
    deliver_here(std::move(e), todo); // a fence is answered there
    break;
  case shard_state::draining: {
    // The mailboxes finish what they hold for the shard; what comes now
    // goes on to the new owner, which holds it until the release (or waits
    // here, in order, until that node is known). A fence has passed once
    // what came before it is in the mailboxes here or sent there.
    auto to = owner_of(shard);
    if (to.empty() || to == view_->self) to = handoff_.forward_to(shard);
    if (to.empty() || e.kind == remote_kind::ask) {
      hold(shard, std::move(e), todo);
      break;
    }
    forward_held(shard, to, todo);
    if (is_fence(e)) {
      answer_fence(std::move(e), todo);
    } else {
      e.from = view_->self;
      ++e.hops;
      (void)send_on(shard, to, std::move(e));
    }
    break;
  }
  case shard_state::incoming:
    if (is_fence(e) && e.from == view_->self) {
      // This node's own fence came back to it as the shard's new owner:
      // what it sent before is held here, ahead of what it holds next.
      fence_passed(shard, e.correlation, todo);
    } else {
      hold(shard, std::move(e), todo);
    }
    break;
  case shard_state::remote:
    if (e.kind != remote_kind::ask && !handoff_.leaving() &&
        (e.epoch > view_->epoch() || (!is_fence(e) && e.from == owner_of(shard)))) {
      // Sent here by a map this node has not applied yet (it names this
      // node, or it did when the tell was sent on; or the node this one's
      // map names sent it on, having a newer one): it waits for that map
      // here rather than going back by an older one, where the sender's
      // next tells, sent here, would overtake it.
      hold(shard, std::move(e), todo);
    } else if (e.kind == remote_kind::ask) {
      // Certainly not delivered: the asker looks for the owner again.
      remote_envelope no;
      no.kind = remote_kind::not_owner;
      no.correlation = e.correlation;
      no.from = view_->self;
      todo.sends.emplace_back(e.from, std::move(no));
    } else {
      route_on(shard, std::move(e), todo);
    }
    break;
  }
}

void shard_router::route_on(std::uint32_t shard, remote_envelope&& e, actions& todo) {
  const auto owner = owner_of(shard);
  const auto to = owner.empty() || owner == view_->self ? handoff_.forward_to(shard) : owner;
  if (to.empty()) {
    hold(shard, std::move(e), todo);
    return;
  }
  if (e.hops >= max_hops) {
    if (!is_fence(e)) system_.report_dead_letter(e.target, e.type, errc::unavailable);
    return; // a fence that goes round: its sender gives it up in time
  }
  // A tell sent by an older map: on to the owner in this node's (or the one
  // that asked for the shard this node released). It keeps the epoch it was
  // sent by; a fence keeps its sender, who hears where it arrived.
  if (!is_fence(e)) e.from = view_->self;
  ++e.hops;
  (void)send_on(shard, to, std::move(e));
}

bool shard_router::reachable(const member_id& m) const {
  return view_ && std::any_of(view_->members.begin(), view_->members.end(), [&](const member& x) {
           return x.id == m && (x.status == member_status::alive || x.status == member_status::left);
         });
}

bool shard_router::needs_fence(std::uint32_t shard) const {
  const auto& o = outs_[shard];
  return o.fence != 0 || (!o.dest.empty() && reachable(o.dest));
}

expected<void> shard_router::send_on(std::uint32_t shard, const member_id& to, remote_envelope&& e) {
  auto& o = outs_[shard];
  // Tells that went elsewhere before may still be on their way to where
  // they are handed on from: what follows waits until a fence sent behind
  // them passed.
  if (o.fence == 0 && !o.dest.empty() && o.dest != to && reachable(o.dest)) start_fence(shard);
  if (o.fence != 0) {
    if (waiting_ + handoff_.held() >= hold_limit_) {
      overflowed_.fetch_add(1, std::memory_order_relaxed);
      if (is_fence(e)) return {};
      system_.report_dead_letter(e.target, e.type, errc::unavailable);
      return overflow(shard);
    }
    o.waiting.push_back(std::move(e));
    ++waiting_;
    return {};
  }
  o.dest = to;
  return outbox_->send(to, e);
}

expected<void> shard_router::keep(std::uint32_t shard, remote_envelope&& e) {
  const bool fenced = needs_fence(shard);
  if (waiting_ + handoff_.held() >= hold_limit_) {
    overflowed_.fetch_add(1, std::memory_order_relaxed);
    if (is_fence(e)) return {};
    system_.report_dead_letter(e.target, e.type, errc::unavailable);
    return overflow(shard);
  }
  if (!fenced) {
    (void)handoff_.hold(shard, std::move(e));
    return {};
  }
  // Tells for the shard that this node sent elsewhere may come back here:
  // what it keeps now goes after them.
  start_fence(shard);
  outs_[shard].waiting.push_back(std::move(e));
  ++waiting_;
  return {};
}

void shard_router::start_fence(std::uint32_t shard) {
  auto& o = outs_[shard];
  if (o.fence != 0 || o.dest.empty() || !view_) return;
  o.fence = next_correlation_.fetch_add(1, std::memory_order_relaxed);
  o.fenced = o.dest;
  o.deadline = exec_.now() + fence_timeout_;
  o.limit = exec_.now() + fence_limit_;
  send_fence(shard);
}

void shard_router::send_fence(std::uint32_t shard) {
  const auto& o = outs_[shard];
  remote_envelope f;
  f.kind = remote_kind::query;
  f.from = view_->self;
  f.epoch = view_->epoch();
  f.shard = shard;
  f.correlation = o.fence;
  // Behind the shard's tells sent there, on the same connection.
  if (auto sent = outbox_->send(o.fenced, f); !sent) {
    log(log_level::warn, "fence for shard {} to {} not sent: {}", shard, o.fenced.to_string(),
        sent.error().to_string());
  }
}

void shard_router::answer_fence(remote_envelope&& e, actions& todo) {
  if (e.from == view_->self) {
    fence_passed(e.shard, e.correlation, todo);
    return;
  }
  // What the sender sent before the fence was delivered here (or waits here
  // to be, ahead of anything it sends next).
  remote_envelope passed;
  passed.kind = remote_kind::released;
  passed.from = view_->self;
  passed.epoch = view_->epoch();
  passed.shard = e.shard;
  passed.correlation = e.correlation;
  todo.sends.emplace_back(e.from, std::move(passed));
}

void shard_router::fence_passed(std::uint32_t shard, std::uint64_t correlation, actions& todo) {
  if (shard >= shard_count_) return;
  auto& o = outs_[shard];
  if (o.fence == 0 || o.fence != correlation) return; // given up before
  o.fence = 0;
  o.fenced = member_id{};
  o.dest = member_id{};
  auto waiting = std::exchange(o.waiting, {});
  waiting_ -= waiting.size();
  // A shard held back for the fence is served now (if released): what it
  // held goes first.
  if (handoff_.held_back(shard)) take_step(handoff_.unfence(shard), todo);
  for (auto& e : waiting) {
    switch (handoff_.state(shard)) {
    case shard_state::serving:
      deliver_here(std::move(e), todo);
      break;
    case shard_state::draining:
    case shard_state::incoming:
      hold(shard, std::move(e), todo);
      break;
    case shard_state::remote: {
      const auto owner = owner_of(shard);
      const auto to = owner.empty() || owner == view_->self ? handoff_.forward_to(shard) : owner;
      if (to.empty()) {
        hold(shard, std::move(e), todo);
      } else {
        (void)send_on(shard, to, std::move(e));
      }
      break;
    }
    }
  }
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
