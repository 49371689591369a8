#include "shard.hpp"

#include <aether/runtime/log.hpp>

#include <algorithm>
#include <exception>
#include <thread>

namespace aether::detail {

namespace {
thread_local shard* running_shard = nullptr;

/// Sets the running shard for the duration of a turn.
class turn_scope {
public:
  explicit turn_scope(shard* s) noexcept : previous_{std::exchange(running_shard, s)} {}
  ~turn_scope() { running_shard = previous_; }
  turn_scope(const turn_scope&) = delete;
  turn_scope& operator=(const turn_scope&) = delete;

private:
  shard* previous_;
};

/// How long the placement keeps trying to place an ask rerouted from here;
/// the asker's own timeout ends it first.
constexpr executor::duration reroute_timeout = std::chrono::seconds{60};

executor::duration sweep_interval(const system_config& cfg) {
  using namespace std::chrono;
  const executor::duration idle = cfg.idle_timeout;
  if (idle <= executor::duration::zero()) return seconds{1}; // only per-type timeouts
  return std::clamp<executor::duration>(idle / 4, milliseconds{1}, seconds{1});
}
/// One mailbox's part of a barrier: the last one reached runs `done`.
class barrier_slot final : public reply_slot {
public:
  struct shared {
    std::atomic<std::size_t> remaining{0};
    unique_function<void()> done;
  };
  explicit barrier_slot(std::shared_ptr<shared> all) noexcept : all_{std::move(all)} {}

protected:
  void deliver(message&&) override {
    if (all_->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && all_->done) all_->done();
  }

private:
  std::shared_ptr<shared> all_;
};
} // namespace

void system_mailboxes::barrier(unique_function<void()> done) { core_.barrier(std::move(done)); }

void system_core::barrier(unique_function<void()> done) {
  auto all = std::make_shared<barrier_slot::shared>();
  all->remaining.store(shards.size(), std::memory_order_relaxed);
  all->done = std::move(done);
  for (auto& s : shards) {
    // Unbounded: never refused for a full mailbox; a closing one passes it at once.
    (void)s->enqueue(envelope{{}, {}, make_intrusive<barrier_slot>(all), message{}, envelope_kind::barrier}, false);
  }
}

shard::shard(system_core& core, std::uint32_t index)
    : core_{core}, index_{index}, lane_{index % core.exec.lane_count()}, consumer_{queue_}, ctx_{*this} {
  producers_.resize(core.config.shard_count);
}

shard::~shard() = default;

void shard::start() {
  sweep_timer_ =
      core_.exec.start_timer(lane_, sweep_interval(core_.config), sweep_interval(core_.config), [this] { sweep(); });
}

expected<void> shard::enqueue(envelope&& env, bool bounded) {
  if (closing_.load(std::memory_order_acquire)) {
    if (env.kind == envelope_kind::barrier) {
      env.reply->complete(message{}); // nothing will be handled here any more
      return {};
    }
    // An answer is dropped here: its callbacks, and any promise they hold,
    // are released, which answers whoever waits on them.
    core_.fail(env, error{errc::shutting_down, env.target.to_string()});
    return error{errc::shutting_down, env.target.to_string()};
  }
  // A bounded send takes its slot first (a compare-and-swap that never
  // moves the count past the capacity), so the bound is exact however many
  // senders race, and a send is refused only when the mailbox is full. The
  // send that took the count from zero schedules the drain, after its
  // message is in the queue. Unbounded traffic (answers, runtime messages)
  // enqueues first and counts after, as it never fails.
  std::size_t before = 0;
  if (bounded) {
    before = count_.load(std::memory_order_relaxed);
    do {
      if (before >= core_.config.mailbox_capacity) {
        counters::bump(core_.stats.mailbox_full);
        return error{errc::mailbox_full, env.target.to_string()};
      }
    } while (!count_.compare_exchange_weak(before, before + 1, std::memory_order_acq_rel, std::memory_order_relaxed));
  }
  shard* from = running_shard;
  const bool queued =
      from != nullptr ? queue_.enqueue(from->producer_for(*this), std::move(env)) : queue_.enqueue(std::move(env));
  if (!queued) {
    if (bounded && count_.fetch_sub(1, std::memory_order_acq_rel) != 1 && before == 0) schedule();
    counters::bump(core_.stats.mailbox_full);
    return error{errc::mailbox_full, "out of memory"};
  }
  if (!bounded) before = count_.fetch_add(1, std::memory_order_acq_rel);
  if (before == 0) schedule();
  return {};
}

moodycamel::ProducerToken& shard::producer_for(shard& target) {
  auto& token = producers_[target.index_];
  if (!token) token = std::make_unique<moodycamel::ProducerToken>(target.queue_);
  return *token;
}

void shard::schedule() {
  core_.exec.post(lane_, [this] { drain(); });
}

void shard::drain() {
  turn_scope turn{this};
  const auto limit = core_.config.drain_batch;
  now_ = core_.exec.now();
  std::size_t n = 0;
  envelope env;
  auto* const timed = core_.handling ? &core_.handling[index_] : nullptr; // opt-in: two clock reads a message
  while (n < limit && queue_.try_dequeue(consumer_, env)) {
    ++n;
    if (timed != nullptr) [[unlikely]] {
      const auto start = std::chrono::steady_clock::now();
      handle(env);
      timed->observe_ns(static_cast<std::uint64_t>((std::chrono::steady_clock::now() - start).count()));
      env = envelope{};
      continue;
    }
    handle(env);
    env = envelope{}; // release the message and ids before the next one runs
  }
  local_counters::add(counts_.messages, n);
  if (count_.fetch_sub(n, std::memory_order_acq_rel) != n) {
    // More is counted than was found: new messages, or a bounded sender
    // between taking its slot and enqueueing. If nothing was found, let that
    // sender run (it may share this core) before looking again.
    if (n == 0) std::this_thread::yield();
    schedule();
  }
}

void shard::handle(envelope& env) {
  if (env.kind == envelope_kind::deliver && !closed_) [[likely]] {
    deliver(env);
  } else if (env.kind == envelope_kind::barrier) {
    env.reply->complete(message{}); // what was queued before it here is handled
  } else if (closed_) {
    core_.fail(env, error{errc::shutting_down, env.target.to_string()});
  } else {
    answer(env);
  }
}

void shard::deliver(envelope& env) {
  cell* c = nullptr;
  if (auto it = directory_.find(env.target); it != directory_.end()) {
    c = &it->second;
  } else {
    if (auto* p = core_.placement_.load(std::memory_order_acquire); p != nullptr && !p->may_activate(env.target)) {
      reroute(env);
      return;
    }
    auto activated = activate(env.target);
    if (!activated) {
      core_.fail(env, activated.error());
      return;
    }
    c = *activated;
  }
  if (c->restarting || c->suspended > 0) {
    stash(*c, std::move(env));
    return;
  }
  invoke(*c, env, true);
}

void shard::reroute(envelope& env) {
  // The actor's shard is served elsewhere now: the placement takes it there.
  // An asker still waits on its own timeout; the placement retries no longer.
  auto reply = env.reply;
  const auto target = env.target;
  const std::string type{env.payload.type_name()};
  if (auto sent = core_.send(std::move(env), false, reroute_timeout); !sent) {
    if (reply) {
      reply->complete(message{sent.error()});
    } else {
      core_.dead_letter(target, type, sent.error().code());
    }
  }
}

std::size_t shard::release(const std::function<bool(const actor_id&)>& moved) {
  turn_scope turn{this};
  if (closed_) return 0;
  // What is queued now is handled here first, as on close.
  const auto limit = core_.config.drain_batch;
  for (auto rounds = count_.load(std::memory_order_acquire) / limit + 1; rounds > 0 && !idle(); --rounds) drain();
  now_ = core_.exec.now();
  std::size_t busy = 0;
  for (auto it = directory_.begin(); it != directory_.end();) {
    if (!moved(it->first)) {
      ++it;
    } else if (it->second.suspended > 0 || it->second.restarting) {
      // Waiting (a write in flight): it passivates on a later round.
      ++busy;
      ++it;
    } else {
      it = passivate(it, error{errc::unavailable, fmt::format("{} moved to another node", it->first.to_string())});
    }
  }
  return busy;
}

void shard::stash(cell& c, envelope&& env) {
  auto& waiting = c.ext().stash;
  if (waiting.size() < core_.config.mailbox_capacity) {
    waiting.push_back(std::move(env));
    return;
  }
  // Full: the message is a dead letter, and an asker hears why at once.
  counters::bump(core_.stats.mailbox_full);
  const error full{errc::mailbox_full, fmt::format("{} is waiting or restarting and already holds {} messages",
                                                   env.target.to_string(), waiting.size())};
  if (env.reply) {
    env.reply->complete(message{full});
    env.reply = {};
  }
  core_.dead_letter(env.target, env.payload.type_name(), errc::mailbox_full);
}

expected<cell*> shard::activate(const actor_id& id) {
  const type_entry* type = core_.find_type(id.type());
  if (type == nullptr) return error{errc::unknown_actor_type, std::string{id.type()}};
  std::unique_ptr<actor> instance;
  try {
    instance = type->factory(id);
  } catch (const std::exception& e) {
    return error{errc::handler_failed, fmt::format("activating {}: {}", id.to_string(), e.what())};
  }
  if (!instance) return error{errc::handler_failed, fmt::format("the factory of {} made nothing", id.type())};
  auto [it, inserted] = directory_.try_emplace(id);
  cell& c = it->second;
  c.instance = std::move(instance);
  c.type = type;
  c.incarnation = next_incarnation_++;
  c.last_active = now_;
  local_counters::add(counts_.activations);
  counts_.active.store(counts_.active.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (!run_hook(it->first, c, true)) {
    directory_.erase(it);
    counts_.active.store(counts_.active.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    return error{errc::handler_failed, fmt::format("on_activate of {} threw", id.to_string())};
  }
  type->counts[index_].activated();
  return &c;
}

void shard::enter(const actor_id* self, cell* c, envelope* env) noexcept {
  ctx_.self_ = self;
  ctx_.cell_ = c;
  ctx_.current_ = env;
  ctx_.replied_ = false;
  ctx_.stop_requested_ = false;
  ctx_.stop_reason_.reset();
}

bool shard::run_hook(const actor_id& id, cell& c, bool activate) {
  enter(&id, &c, nullptr);
  try {
    if (activate) {
      c.instance->on_activate(ctx_);
    } else {
      c.instance->on_passivate(ctx_);
    }
  } catch (const std::exception& e) {
    log(log_level::warn, "{} of a {} threw: {}", activate ? "on_activate" : "on_passivate", c.type->name, e.what());
    enter(nullptr, nullptr, nullptr);
    return false;
  } catch (...) {
    enter(nullptr, nullptr, nullptr);
    return false;
  }
  enter(nullptr, nullptr, nullptr);
  return true;
}

void shard::invoke(cell& c, envelope& env, bool touch) {
  if (touch) c.last_active = now_;
  enter(&env.target, &c, &env);
  bool handled = false;
  try {
    handled = dispatcher::dispatch(*c.instance, env.payload, ctx_);
    if (!handled && env.payload.is<wire_message>()) {
      // From another node: decoded here, where the handler's type is known.
      if (auto decoded = dispatcher::decode_wire(*c.instance, env.payload); !decoded) {
        // The asker gets the error and it counts as a dead letter; a tell is
        // counted by fail.
        if (env.reply) core_.dead_letter(env.target, env.payload.get_if<wire_message>()->name, decoded.error().code());
        core_.fail(env, decoded.error());
        finish_turn(env.target);
        return;
      }
      handled = dispatcher::dispatch(*c.instance, env.payload, ctx_);
    }
  } catch (const std::exception& e) {
    on_failure(env.target, c, &env, e.what());
    return;
  } catch (...) {
    on_failure(env.target, c, &env, "a non-standard exception");
    return;
  }
  if (!handled) {
    core_.fail(env, error{errc::unknown_message_type,
                          fmt::format("{} has no handler for {}", env.target.to_string(), env.payload.type_name())});
  } else if (env.reply) {
    // An ask the handler neither answered nor promised to answer.
    env.reply->complete(message{error{errc::no_reply, std::string{env.payload.type_name()}}});
    env.reply = {};
  }
  finish_turn(env.target);
}

void shard::finish_turn(const actor_id& id) {
  const bool stop = ctx_.stop_requested_;
  auto reason = std::move(ctx_.stop_reason_);
  enter(nullptr, nullptr, nullptr);
  if (stop) passivate(id, reason ? *reason : error{errc::actor_stopped, id.to_string()});
}

void shard::answer(envelope& env) {
  auto* slot = static_cast<actor_reply_slot*>(env.reply.get());
  if (slot->timer != 0) core_.exec.cancel_timer(lane_, std::exchange(slot->timer, 0));
  auto it = directory_.find(env.target);
  if (it == directory_.end() || it->second.incarnation != slot->incarnation()) {
    // The asker stopped or restarted: its callbacks die with it.
    system_core::drop_answer(env);
    core_.dead_letter(env.target, env.payload.type_name(), errc::actor_stopped);
    return;
  }
  cell& c = it->second;
  if (c.pending_asks > 0) --c.pending_asks;
  if (slot->exclusive() && c.suspended > 0) --c.suspended;
  if (slot->on_answer) {
    enter(&it->first, &c, nullptr);
    try {
      slot->on_answer(env.payload, ctx_);
    } catch (const std::exception& e) {
      on_failure(env.target, c, nullptr, e.what());
      return;
    } catch (...) {
      on_failure(env.target, c, nullptr, "a non-standard exception");
      return;
    }
    finish_turn(env.target);
  }
  resume(env.target);
}

void shard::resume(const actor_id& id) {
  // Hand over what waited, in order, until the actor waits, fails or stops again.
  for (;;) {
    auto it = directory_.find(id);
    if (it == directory_.end() || it->second.restarting || it->second.suspended > 0 || !it->second.extras) return;
    if (it->second.extras->stash.empty()) {
      // Nothing waits any more: an actor that waited once (every event-sourced
      // activation does) would otherwise keep ~1.2 KB of empty deques.
      const auto& x = *it->second.extras;
      if (x.timers.empty() && x.failures.empty() && x.restart_timer == 0) it->second.extras.reset();
      return;
    }
    auto env = std::move(it->second.extras->stash.front());
    it->second.extras->stash.pop_front();
    invoke(it->second, env, true);
  }
}

void shard::on_failure(const actor_id& id, cell& c, envelope* env, std::string_view what) {
  enter(nullptr, nullptr, nullptr);
  counters::bump(core_.stats.handler_failures);
  counters::bump(c.type->handler_failures);
  const std::string detail = fmt::format("{} failed on {}: {}", id.to_string(),
                                         env ? env->payload.type_name() : std::string_view{"an ask callback"}, what);
  log(log_level::warn, "{}", detail);
  if (env && env->reply) {
    env->reply->complete(message{error{errc::handler_failed, detail}});
    env->reply = {};
  }
  auto it = directory_.find(id);
  if (it == directory_.end()) return;

  const auto& opts = c.type->options;
  switch (opts.on_failure) {
  case supervision::resume:
    return;
  case supervision::stop:
    passivate(it, error{errc::actor_stopped, detail});
    return;
  case supervision::restart:
    break;
  }
  auto& x = c.ext();
  const auto now = core_.exec.now();
  std::erase_if(x.failures, [&](executor::time_point t) { return now - t > opts.restart.window; });
  x.failures.push_back(now);
  if (x.failures.size() > opts.restart.max_restarts) {
    log(log_level::warn, "{} failed {} times within {} ms: stopped", it->first.to_string(), x.failures.size(),
        opts.restart.window.count());
    passivate(it, error{errc::handler_failed, detail});
    return;
  }
  // Backoff doubles per failure in the window, capped.
  auto backoff = std::chrono::duration_cast<executor::duration>(opts.restart.min_backoff);
  for (std::size_t i = 1; i < x.failures.size() && backoff < opts.restart.max_backoff; ++i) backoff *= 2;
  backoff = std::min<executor::duration>(backoff, opts.restart.max_backoff);

  run_hook(it->first, c, false);
  c.instance.reset();
  for (auto t : x.timers) core_.exec.cancel_timer(lane_, t);
  x.timers.clear();
  c.restarting = true;
  c.pending_asks = 0;
  c.suspended = 0;
  c.incarnation = next_incarnation_++; // answers to the old instance are dropped
  counters::bump(core_.stats.restarts);
  counters::bump(c.type->restarts);
  x.restart_timer = core_.exec.start_timer(lane_, backoff, executor::duration::zero(),
                                           [this, id = it->first, inc = c.incarnation] { restart(id, inc); });
}

void shard::restart(const actor_id& id, std::uint32_t incarnation) {
  turn_scope turn{this};
  now_ = core_.exec.now();
  auto it = directory_.find(id);
  if (it == directory_.end() || it->second.incarnation != incarnation || !it->second.restarting) return;
  cell& c = it->second;
  c.ext().restart_timer = 0;
  try {
    c.instance = c.type->factory(id);
  } catch (const std::exception& e) {
    log(log_level::warn, "restarting {}: {}", id.to_string(), e.what());
  }
  c.restarting = false;
  c.last_active = now_;
  if (!c.instance || !run_hook(it->first, c, true)) {
    passivate(it, error{errc::handler_failed, fmt::format("restarting {} failed", id.to_string())});
    return;
  }
  resume(id);
}

void shard::passivate(const actor_id& id, const error& stash_reason) {
  if (auto it = directory_.find(id); it != directory_.end()) passivate(it, stash_reason);
}

shard::directory::iterator shard::passivate(directory::iterator it, const error& stash_reason) {
  cell& c = it->second;
  if (c.extras) {
    for (auto t : c.extras->timers) core_.exec.cancel_timer(lane_, t);
    if (c.extras->restart_timer != 0) core_.exec.cancel_timer(lane_, c.extras->restart_timer);
    for (auto& env : c.extras->stash) core_.fail(env, stash_reason);
  }
  if (c.instance) run_hook(it->first, c, false);
  local_counters::add(counts_.passivations);
  if (c.type != nullptr) c.type->counts[index_].passivated();
  counts_.active.store(counts_.active.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  return directory_.erase(it);
}

void shard::sweep() {
  turn_scope turn{this};
  now_ = core_.exec.now();
  for (auto it = directory_.begin(); it != directory_.end();) {
    const cell& c = it->second;
    const auto idle = c.type->idle_timeout;
    if (idle > executor::duration::zero() && !c.restarting && c.pending_asks == 0 && now_ - c.last_active >= idle) {
      it = passivate(it, error{errc::actor_stopped, "idle"});
    } else {
      ++it;
    }
  }
}

void shard::discard_queued() {
  envelope env;
  while (queue_.try_dequeue(consumer_, env)) {
    if (env.kind == envelope_kind::barrier) {
      env.reply->complete(message{});
      env = envelope{};
      continue;
    }
    core_.fail(env, error{errc::shutting_down, env.target.to_string()});
    env = envelope{};
  }
}

void shard::fire_timer(const actor_id& target, std::uint32_t incarnation, executor::timer_id id, bool once,
                       message&& m) {
  turn_scope turn{this};
  now_ = core_.exec.now();
  auto it = directory_.find(target);
  if (it == directory_.end() || it->second.incarnation != incarnation || it->second.restarting) return;
  if (once && it->second.extras) std::erase(it->second.extras->timers, id);
  envelope env{target, {}, {}, std::move(m), envelope_kind::deliver};
  if (it->second.suspended > 0) {
    stash(it->second, std::move(env)); // delivered when the wait ends
    return;
  }
  local_counters::add(counts_.messages);
  // Timer ticks do not count as activity: an actor kept busy only by its own
  // timers still passivates when idle.
  invoke(it->second, env, false);
}

void shard::close() {
  turn_scope turn{this};
  if (closed_) return;
  closing_.store(true, std::memory_order_release);
  // What is queued now still gets handled; a bounded number of rounds, since
  // actors may keep messaging each other.
  const auto limit = core_.config.drain_batch;
  for (auto rounds = count_.load(std::memory_order_acquire) / limit + 1; rounds > 0 && !idle(); --rounds) drain();
  closed_ = true;
  if (sweep_timer_ != 0) core_.exec.cancel_timer(lane_, std::exchange(sweep_timer_, 0));
  for (auto it = directory_.begin(); it != directory_.end();) it = passivate(it, error{errc::shutting_down});
}

} // namespace aether::detail
