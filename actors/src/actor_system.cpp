#include "shard.hpp"
#include "system_core.hpp"

#include <aether/runtime/log.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <fmt/format.h>

#include <future>
#include <mutex>
#include <thread>

namespace aether {

expected<void> system_config::validate() const {
  if (shard_count == 0) return error{errc::invalid_argument, "shard_count must be at least 1"};
  if (mailbox_capacity == 0) return error{errc::invalid_argument, "mailbox_capacity must be at least 1"};
  if (drain_batch == 0) return error{errc::invalid_argument, "drain_batch must be at least 1"};
  if (idle_timeout.count() < 0) return error{errc::invalid_argument, "idle_timeout must not be negative"};
  return {};
}

namespace detail {

system_core::system_core(system_config cfg, executor& ex) : config{std::move(cfg)}, exec{ex} {
  config.validate().value();
  shards.reserve(config.shard_count);
  for (std::uint32_t i = 0; i < config.shard_count; ++i) shards.push_back(std::make_unique<shard>(*this, i));
  if (config.measure_handling) handling = std::make_unique<latency_histogram[]>(config.shard_count);
  for (auto& s : shards) exec.post(s->lane(), [p = s.get()] { p->start(); });
}

system_core::~system_core() { link->close(); }

std::size_t system_core::lane_of(const actor_id& id) const noexcept {
  return shards[id.shard(config.shard_count)]->lane();
}

expected<void> system_core::forward(placement& p, envelope&& env, executor::duration timeout) {
  return p.forward(outbound_message{std::move(env.target), std::move(env.sender), std::move(env.payload),
                                    std::move(env.reply), timeout});
}

expected<void> system_core::send_local(envelope&& env, bool bounded) {
  if (env.target.empty()) return error{errc::invalid_id, "the target id is empty"};
  return shards[env.target.shard(config.shard_count)]->enqueue(std::move(env), bounded);
}

void system_core::fail(envelope& env, const error& e) {
  if (env.kind == envelope_kind::deliver && env.reply) {
    env.reply->complete(message{e});
    env.reply = {};
    return;
  }
  if (env.kind == envelope_kind::answer) drop_answer(env);
  dead_letter(env.target, env.payload.type_name(), e.code());
}

void system_core::drop_answer(envelope& env) noexcept {
  // The asker is gone: release its callbacks now (a timer may keep the slot
  // alive a while), so a promise they hold answers whoever waits on it.
  // Safe off the lane: the slot is completed, and nothing else runs them.
  if (env.reply) static_cast<actor_reply_slot&>(*env.reply).on_answer = nullptr;
}

void system_core::dead_letter(const actor_id& target, std::string_view type, errc reason) {
  counters::bump(stats.dead_letters);
  counters::bump(stats.dead_letters_by_reason[static_cast<std::size_t>(reason) % stats.dead_letters_by_reason.size()]);
  log(log_level::debug, "dead letter to {}: {} ({})", target.to_string(), type, to_string(reason));
  if (config.on_dead_letter) {
    try {
      config.on_dead_letter(aether::dead_letter{target, type, reason});
    } catch (const std::exception& e) {
      log(log_level::warn, "the dead letter callback threw: {}", e.what());
    }
  }
}

const type_entry* system_core::find_type(std::string_view name) const {
  std::shared_lock lock{types_mutex};
  auto it = types.find(std::string{name});
  return it == types.end() ? nullptr : it->second.get();
}

void actor_reply_slot::deliver(message&& answer) {
  entered_core core{*link_};
  if (!core) {
    // The system closed: its asker is gone, and its callbacks go now.
    on_answer = nullptr;
    return;
  }
  envelope env{asker_, {}, intrusive_ptr<reply_slot>{this}, std::move(answer), envelope_kind::answer};
  if (!core->send(std::move(env), false)) core->dead_letter(asker_, "answer", errc::mailbox_full);
}

bool ask_deadlines::add(const intrusive_ptr<reply_slot>& slot, executor::time_point due) {
  std::lock_guard lock{mutex_};
  const key k{due, ++next_seq_};
  entries_.emplace(k, slot);
  slot->deadline = k.first;
  slot->deadline_seq = k.second;
  if (due >= scheduled_) return false; // the timer is set for this deadline or an earlier one
  scheduled_ = due;
  return true;
}

void ask_deadlines::remove(reply_slot& slot) noexcept {
  intrusive_ptr<reply_slot> gone; // released after the lock
  std::lock_guard lock{mutex_};
  if (slot.deadline_seq == 0) return;
  if (auto it = entries_.find(key{slot.deadline, slot.deadline_seq}); it != entries_.end()) {
    gone = std::move(it->second);
    entries_.erase(it);
  }
  slot.deadline_seq = 0;
}

std::size_t ask_deadlines::size() const {
  std::lock_guard lock{mutex_};
  return entries_.size();
}

void ask_deadlines::rearm(system_core& core) {
  executor::time_point next = executor::time_point::max();
  {
    std::lock_guard lock{mutex_};
    if (!entries_.empty()) next = entries_.begin()->first.first;
    scheduled_ = next;
  }
  if (next == armed_) return;
  if (timer_ != 0) core.exec.cancel_timer(lane, std::exchange(timer_, 0));
  armed_ = next;
  if (next == executor::time_point::max()) return;
  const auto delay = std::max(executor::duration::zero(), next - core.exec.now());
  timer_ = core.exec.start_timer(lane, delay, executor::duration::zero(), [link = core.link] {
    entered_core c{*link};
    if (c) c->deadlines.fire(*c);
  });
}

void ask_deadlines::fire(system_core& core) {
  timer_ = 0;
  armed_ = executor::time_point::max();
  std::vector<intrusive_ptr<reply_slot>> due;
  const auto now = core.exec.now();
  {
    std::lock_guard lock{mutex_};
    while (!entries_.empty() && entries_.begin()->first.first <= now) {
      auto node = entries_.extract(entries_.begin());
      node.mapped()->deadline_seq = 0;
      due.push_back(std::move(node.mapped()));
    }
  }
  // Exactly once: an answer racing this loses or wins `complete`.
  for (auto& s : due) {
    if (s->complete(message{error{errc::timeout}})) counters::bump(core.stats.ask_timeouts);
  }
  rearm(core);
}

void forget_deadline(core_link& link, reply_slot& slot) noexcept {
  entered_core core{link};
  if (core) core->deadlines.remove(slot);
}

void core_link::close() noexcept {
  open_.store(false);
  while (users_.load() != 0) std::this_thread::yield();
}

} // namespace detail

actor_system::actor_system(system_config config, executor& exec)
    : core_{std::make_unique<detail::system_core>(std::move(config), exec)} {}

actor_system::~actor_system() = default;

void actor_system::register_actor(std::string_view type, actor_factory factory, actor_options options) {
  actor_id::validate_part(type, "actor type").value();
  auto entry = std::make_unique<detail::type_entry>();
  entry->name = std::string{type};
  entry->factory = std::move(factory);
  entry->options = options;
  entry->idle_timeout = options.idle_timeout.count() >= 0 ? options.idle_timeout : core_->config.idle_timeout;
  entry->counts = std::make_unique<detail::type_shard_counts[]>(core_->config.shard_count);
  std::unique_lock lock{core_->types_mutex};
  // Replacing a type keeps the old entry alive: active cells point at it.
  auto& slot = core_->types[entry->name];
  if (slot) {
    log(log_level::warn, "actor type {} registered twice; the first registration stays", type);
    return;
  }
  slot = std::move(entry);
}

expected<std::unique_ptr<actor>> actor_system::make_detached(const actor_id& id) const {
  const auto* type = core_->find_type(id.type());
  if (type == nullptr) return error{errc::unknown_actor_type, fmt::format("no actor type {} is registered", id.type())};
  auto instance = type->factory(id);
  if (!instance) return error{errc::unknown_actor_type, fmt::format("the factory of {} made no actor", id.type())};
  return instance;
}

expected<void> actor_system::tell_message(const actor_id& to, message&& m) {
  if (!core_->accepting.load(std::memory_order_acquire)) return error{errc::shutting_down};
  return core_->send(detail::envelope{to, {}, {}, std::move(m)}, true);
}

void actor_system::ask_message(const actor_id& to, message&& m, executor::duration timeout,
                               intrusive_ptr<detail::reply_slot> slot) {
  if (!core_->accepting.load(std::memory_order_acquire)) {
    slot->complete(message{error{errc::shutting_down}});
    return;
  }
  if (to.empty()) {
    slot->complete(message{error{errc::invalid_id, "the target id is empty"}});
    return;
  }
  start_external_timeout(timeout, slot);
  detail::envelope env{to, {}, slot, std::move(m)};
  if (auto sent = core_->send(std::move(env), true, timeout); !sent) slot->complete(message{sent.error()});
}

void actor_system::report_dead_letter(const actor_id& target, std::string_view type, errc reason) {
  core_->dead_letter(target, type, reason);
}

void actor_system::set_placement(placement* p) noexcept {
  if (p != nullptr) p->attach(core_->mailboxes);
  core_->placement_.store(p, std::memory_order_release);
}

expected<void> actor_system::deliver(const actor_id& to, const actor_id& from, message&& m,
                                     intrusive_ptr<detail::reply_slot> reply) {
  if (to.empty()) return error{errc::invalid_id, "the target id is empty"};
  return core_->send_local(detail::envelope{to, from, std::move(reply), std::move(m)}, true);
}

void actor_system::start_external_timeout(executor::duration timeout, const intrusive_ptr<detail::reply_slot>& slot) {
  const auto now = core_->exec.now();
  if (timeout > executor::time_point::max() - now) return; // never
  if (core_->deadlines.add(slot, now + timeout)) {
    core_->exec.post(detail::ask_deadlines::lane, [link = core_->link] {
      detail::entered_core c{*link};
      if (c) c->deadlines.rearm(*c);
    });
  }
}

void actor_system::stop_accepting() noexcept { core_->accepting.store(false, std::memory_order_release); }

bool actor_system::idle() const noexcept {
  for (const auto& s : core_->shards) {
    if (!s->idle()) return false;
  }
  return true;
}

void actor_system::close(unique_function<void()> done) {
  stop_accepting();
  auto remaining = std::make_shared<std::atomic<std::size_t>>(core_->shards.size());
  auto finish = std::make_shared<unique_function<void()>>(std::move(done));
  for (auto& s : core_->shards) {
    core_->exec.post(s->lane(), [p = s.get(), remaining, finish] {
      p->close();
      if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1 && *finish) (*finish)();
    });
  }
}

void actor_system::release(std::function<bool(const actor_id&)> moved, unique_function<void(std::size_t)> done) {
  auto remaining = std::make_shared<std::atomic<std::size_t>>(core_->shards.size());
  auto busy = std::make_shared<std::atomic<std::size_t>>(0);
  auto finish = std::make_shared<unique_function<void(std::size_t)>>(std::move(done));
  auto pick = std::make_shared<const std::function<bool(const actor_id&)>>(std::move(moved));
  for (auto& s : core_->shards) {
    core_->exec.post(s->lane(), [p = s.get(), remaining, busy, finish, pick] {
      busy->fetch_add(p->release(*pick), std::memory_order_relaxed);
      if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1 && *finish) (*finish)(busy->load());
    });
  }
}

void close_and_join(actor_system& system, thread_pool_executor& pool) {
  std::promise<void> closed;
  system.close([&closed] { closed.set_value(); });
  closed.get_future().wait();
  pool.stop();
  pool.join();
  system.discard_queued();
}

void actor_system::discard_queued() {
  for (auto& s : core_->shards) s->discard_queued();
}

metrics_snapshot actor_system::metrics() const noexcept {
  const auto& c = core_->stats;
  auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  metrics_snapshot m{0,
                     0,
                     0,
                     get(c.handler_failures),
                     get(c.restarts),
                     get(c.dead_letters),
                     get(c.late_replies),
                     get(c.mailbox_full),
                     get(c.ask_timeouts)};
  for (const auto& s : core_->shards) {
    m.messages += get(s->counts().messages);
    m.activations += get(s->counts().activations);
    m.passivations += get(s->counts().passivations);
  }
  return m;
}

std::uint32_t actor_system::shard_count() const noexcept { return core_->config.shard_count; }

system_detail_metrics actor_system::detail_metrics() const {
  system_detail_metrics d;
  for (const auto& s : core_->shards) d.mailbox_depth += s->depth();
  {
    std::shared_lock lock{core_->types_mutex};
    for (const auto& [name, t] : core_->types) {
      type_metrics m;
      m.type = name;
      m.handler_failures = t->handler_failures.load(std::memory_order_relaxed);
      m.restarts = t->restarts.load(std::memory_order_relaxed);
      for (std::uint32_t i = 0; i < core_->config.shard_count; ++i) {
        m.active += t->counts[i].active.load(std::memory_order_relaxed);
        m.activations += t->counts[i].activations.load(std::memory_order_relaxed);
        m.passivations += t->counts[i].passivations.load(std::memory_order_relaxed);
      }
      m.active = std::max<std::int64_t>(0, m.active);
      d.types.push_back(std::move(m));
    }
  }
  for (std::size_t r = 0; r < core_->stats.dead_letters_by_reason.size(); ++r) {
    if (const auto n = core_->stats.dead_letters_by_reason[r].load(std::memory_order_relaxed); n > 0) {
      d.dead_letters.emplace_back(static_cast<errc>(r), n);
    }
  }
  if (core_->handling) {
    d.handling.emplace();
    for (std::uint32_t i = 0; i < core_->config.shard_count; ++i) *d.handling += core_->handling[i].read();
  }
  return d;
}

std::size_t actor_system::lane_of(const actor_id& to) const noexcept {
  // The empty id is refused by ask_message; any lane does for its answer.
  return to.empty() ? 0 : core_->lane_of(to);
}
executor& actor_system::exec() const noexcept { return core_->exec; }
intrusive_ptr<detail::core_link> actor_system::link() const noexcept { return core_->link; }
std::size_t actor_system::active_actors() const noexcept {
  std::int64_t active = 0;
  for (const auto& s : core_->shards) active += s->counts().active.load(std::memory_order_relaxed);
  return static_cast<std::size_t>(std::max<std::int64_t>(0, active));
}

} // namespace aether
