#include "bus_core.hpp"
#include "names.hpp"
#include "stored_event.hpp"

#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace aether {

namespace detail {

namespace {

// Events a drain hands to the handler before it lets the strand go.
constexpr std::size_t drain_batch = 256;

bool is_wildcard(std::string_view token) noexcept { return token == "*" || token == ">"; }

} // namespace

expected<bus_selector> bus_selector::make(std::string_view ns_pattern, const event_filter& filter) {
  bus_selector s;
  if (auto r = validate_namespace_pattern(ns_pattern); !r) return r.error();
  s.ns_pattern_ = ns_pattern;
  if (ns_pattern.find_first_of("*>") == std::string_view::npos) s.ns_ = ns_pattern;
  for (const auto& t : filter.event_types) {
    if (t.empty()) return error{errc::invalid_argument, "an empty event type in a filter"};
  }
  s.types_ = filter.event_types;
  std::sort(s.types_.begin(), s.types_.end());
  s.types_.erase(std::unique(s.types_.begin(), s.types_.end()), s.types_.end());

  const std::string_view p = filter.actor_pattern;
  if (p.empty() || p == ">") return s;
  const auto bad = [&](std::string_view why) {
    return error{errc::invalid_argument, fmt::format("actor pattern '{}': {}", p, why)};
  };
  const auto dot = p.find('.');
  if (dot == std::string_view::npos) return bad("it is type.key, or '>' for every actor");
  const auto type = p.substr(0, dot);
  const auto key = p.substr(dot + 1);
  if (type == ">") return bad("'>' must be the last token");
  if (type != "*") {
    if (auto r = actor_id::validate_part(type, "actor type"); !r) return bad(r.error().detail());
  }
  if (!is_wildcard(key)) {
    if (auto r = actor_id::validate_part(key, "actor key"); !r) return bad(r.error().detail());
  }
  s.type_ = type;
  // A key is one token: `>` after the type is `*`.
  s.key_ = is_wildcard(key) ? std::string_view{"*"} : key;
  return s;
}

bool bus_selector::matches(const event& e) const noexcept {
  if (ns_.empty() ? !namespace_matches(ns_pattern_, e.actor.ns()) : e.actor.ns() != ns_) return false;
  if (!types_.empty() && !std::binary_search(types_.begin(), types_.end(), e.type)) return false;
  if (type_ != "*" && e.actor.type() != type_) return false;
  return key_ == "*" || e.actor.key() == key_;
}

std::string bus_selector::subject(std::string_view kind) const { return bus_filter(kind, type_, key_, ns_pattern_); }

bus_subscription::bus_subscription(executor& e, std::size_t l, bus_selector s, event_bus::handler h,
                                   subscribe_options options)
    : ex{e},
      lane{l},
      selector{std::move(s)},
      durable{!options.durable.empty()},
      capacity{std::max<std::size_t>(options.buffer, 1)},
      handler_{std::move(h)},
      on_error_{std::move(options.on_error)} {}

void bus_subscription::push(bus_item item) {
  bool schedule = false;
  {
    std::lock_guard lock{mutex_};
    if (ended_.load(std::memory_order_relaxed)) return;
    // A durable subscription's server sends no more than the buffer allows.
    if (!durable && queue_.size() >= capacity) {
      const auto n = dropped.fetch_add(1, std::memory_order_relaxed) + 1;
      if (drop_counts && item.ev) drop_counts->add(item.ev->actor.ns(), "subscriber_full");
      if (drop_reported_) return;
      drop_reported_ = true;
      report(error{errc::mailbox_full, fmt::format("a subscriber fell behind; {} events dropped so far", n), n});
      return;
    }
    queue_.push_back(std::move(item));
    schedule = !scheduled_;
    scheduled_ = true;
  }
  if (schedule) ex.post(lane, [self = shared_from_this()] { self->drain(); });
}

void bus_subscription::report(error e) {
  if (!on_error_ || ended_.load()) return;
  ex.post(lane, [self = shared_from_this(), e = std::move(e)] { self->notify(e); });
}

void bus_subscription::notify(const error& e) {
  if (!on_error_ || ended_.load()) return;
  try {
    on_error_(e);
  } catch (const std::exception& x) {
    log(log_level::error, "an event bus error callback threw: {}", x.what());
  }
}

void bus_subscription::count_drop(const event& e, const error& why) {
  const auto n = dropped.fetch_add(1, std::memory_order_relaxed) + 1;
  if (drop_counts) drop_counts->add(e.actor.ns(), to_string(why.code()));
  bool first = false;
  {
    std::lock_guard lock{mutex_};
    first = !drop_reported_;
    drop_reported_ = true;
  }
  if (first) notify(error{why.code(), fmt::format("{}; {} events dropped so far", why.detail(), n), n});
}

void bus_subscription::drain() {
  std::vector<bus_item> batch;
  {
    std::lock_guard lock{mutex_};
    const auto n = std::min(queue_.size(), drain_batch);
    batch.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  for (auto& item : batch) {
    if (ended_.load(std::memory_order_relaxed)) break;
    if (item.restart) {
      if (source) source->restart(acknowledged_.load(std::memory_order_relaxed));
      continue;
    }
    // A durable delivery sent again after its acknowledgement got lost.
    const bool seen = durable && item.sequence <= acknowledged_.load(std::memory_order_relaxed);
    if (item.ev && !seen) {
      // Counted first, so that whatever the handler did is seen with its count.
      delivered.fetch_add(1, std::memory_order_relaxed);
      try {
        handler_(*item.ev);
      } catch (const dropped_event& d) {
        delivered.fetch_sub(1, std::memory_order_relaxed);
        count_drop(*item.ev, d.reason);
      } catch (const std::exception& x) {
        notify(error{errc::handler_failed, fmt::format("an event handler threw on {} of {}: {}", item.ev->type,
                                                       item.ev->actor.to_string(), x.what())});
      }
    }
    if (!item.ack.empty()) {
      if (auto r = conn->ack(item.ack); !r) log(log_level::debug, "acknowledging: {}", r.error().to_string());
      acknowledged_.store(std::max(acknowledged_.load(std::memory_order_relaxed), item.sequence));
    }
  }
  bool again = false;
  {
    std::lock_guard lock{mutex_};
    again = !queue_.empty() && !ended_.load(std::memory_order_relaxed);
    scheduled_ = again;
    if (queue_.empty()) drop_reported_ = false; // caught up: the next drop is news
  }
  if (again) ex.post(lane, [self = shared_from_this()] { self->drain(); });
}

void bus_subscription::end() noexcept {
  {
    std::lock_guard lock{mutex_};
    if (ended_.exchange(true)) return;
    queue_.clear();
  }
  feeds.clear(); // unsubscribes; their callbacks hold only weak references
  if (source) source->stop();
  if (detach) detach();
  if (durable && conn) settle_acknowledgements();
}

void bus_subscription::settle_acknowledgements() noexcept {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{3};
  (void)conn->flush(std::chrono::seconds{2});
  // The server applies acknowledgements after it answers the flush.
  while (std::chrono::steady_clock::now() < deadline) {
    auto state = conn->consumer(stream, consumer);
    if (!state || state->ack_floor >= acknowledged()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
}

std::shared_ptr<bus_subscription> bus_registry::make(bus_selector selector, event_bus::handler h,
                                                     subscribe_options options) {
  const auto lane = next_lane_.fetch_add(1, std::memory_order_relaxed) % ex_.lane_count();
  auto s = std::make_shared<bus_subscription>(ex_, lane, std::move(selector), std::move(h), std::move(options));
  s->drop_counts = drops_;
  return s;
}

void bus_drop_counts::add(std::string_view ns, std::string_view reason) {
  std::lock_guard lock{mutex_};
  ++counts_[{std::string{ns}, std::string{reason}}];
}

void bus_drop_counts::collect(metric_sink& sink) const {
  std::lock_guard lock{mutex_};
  for (const auto& [key, n] : counts_) {
    sink.counter("aether_bus_dropped_events_total",
                 "Events the bus's subscriptions dropped: a full subscription queue (subscriber_full) or a delivery "
                 "an actor refused (its errc).",
                 static_cast<double>(n), {{"namespace", key.first}, {"reason", key.second}});
  }
}

void bus_registry::collect(metric_sink& sink) const {
  drops_->collect(sink);
  std::vector<std::shared_ptr<bus_subscription>> durables;
  {
    std::shared_lock lock{mutex_};
    for (const auto& s : subs_) {
      if (s->durable && s->conn) durables.push_back(s);
    }
  }
  for (const auto& s : durables) {
    auto state = s->conn->consumer(s->stream, s->consumer);
    if (!state) continue; // no figure rather than a wrong one
    sink.gauge("aether_bus_durable_lag_messages",
               "Messages of a durable subscription's namespace stream it has not acknowledged yet.",
               static_cast<double>(state->pending), {{"namespace", s->selector.ns()}, {"durable", s->consumer}});
  }
}

expected<void> bus_registry::add(const std::shared_ptr<bus_subscription>& s) {
  s->detach = [weak = weak_from_this(), raw = s.get()] {
    if (auto self = weak.lock()) self->remove(raw);
  };
  std::unique_lock lock{mutex_};
  if (closed_.load()) return error{errc::shutting_down, "the event bus is closed"};
  subs_.push_back(s);
  return {};
}

void bus_registry::close() {
  std::vector<std::shared_ptr<bus_subscription>> ended;
  {
    std::unique_lock lock{mutex_};
    closed_.store(true);
    ended.swap(subs_);
  }
  for (auto& s : ended) s->end();
}

void bus_registry::remove(const bus_subscription* s) {
  std::unique_lock lock{mutex_};
  std::erase_if(subs_, [s](const auto& p) { return p.get() == s; });
}

void bus_registry::dispatch(const std::shared_ptr<const event>& e) {
  std::shared_lock lock{mutex_};
  for (const auto& s : subs_) {
    if (!s->durable && s->selector.matches(*e)) s->push(bus_item{e, {}, 0});
  }
}

void bus_registry::dispatch(const std::vector<event>& events) {
  std::shared_lock lock{mutex_};
  for (const auto& e : events) {
    std::shared_ptr<const event> copy; // made only if someone wants it
    for (const auto& s : subs_) {
      if (s->durable || !s->selector.matches(e)) continue;
      if (!copy) copy = std::make_shared<const event>(e);
      s->push(bus_item{copy, {}, 0});
    }
  }
}

expected<void> prepare_publish(std::string_view ns, event& e) {
  if (auto r = actor_id::validate_namespace(ns); !r) return r.error();
  if (e.actor.empty()) return error{errc::invalid_id, fmt::format("an event of type '{}' names no actor", e.type)};
  if (e.actor.ns() != ns) {
    return error{errc::invalid_argument,
                 fmt::format("{} belongs to namespace {}, not {}", e.actor.to_string(), e.actor.ns(), ns)};
  }
  return prepare_event(e);
}

} // namespace detail

// event_subscription

event_subscription& event_subscription::operator=(event_subscription&& o) noexcept {
  if (this != &o) {
    unsubscribe();
    state_ = std::move(o.state_);
  }
  return *this;
}

event_subscription::~event_subscription() { unsubscribe(); }

std::uint64_t event_subscription::delivered() const noexcept { return state_ ? state_->delivered.load() : 0; }
std::uint64_t event_subscription::dropped() const noexcept { return state_ ? state_->dropped.load() : 0; }

void event_subscription::unsubscribe() noexcept {
  if (!state_) return;
  state_->end();
  state_.reset();
}

// event_bus

expected<event_subscription> event_bus::subscribe(std::string_view ns_pattern, event_filter filter,
                                                  actor_system& system, actor_id target, subscribe_options options) {
  if (target.empty()) return error{errc::invalid_id, "no actor to deliver events to"};
  return subscribe(
      ns_pattern, std::move(filter),
      [&system, target = std::move(target)](const event& e) {
        if (auto r = system.tell(target, e); !r) throw detail::dropped_event{r.error()};
      },
      std::move(options));
}

// local_event_bus

struct local_event_bus::impl {
  explicit impl(executor& ex) : registry{std::make_shared<detail::bus_registry>(ex)} {}
  std::shared_ptr<detail::bus_registry> registry;
};

local_event_bus::local_event_bus(executor& ex) : impl_{std::make_shared<impl>(ex)} {}
local_event_bus::~local_event_bus() { close(); }

void local_event_bus::close() { impl_->registry->close(); }

expected<void> local_event_bus::publish(std::string_view ns, event e) {
  if (impl_->registry->closed()) return error{errc::shutting_down, "the event bus is closed"};
  if (auto r = detail::prepare_publish(ns, e); !r) return r;
  impl_->registry->dispatch(std::make_shared<const event>(std::move(e)));
  return {};
}

expected<event_subscription> local_event_bus::subscribe(std::string_view ns_pattern, event_filter filter, handler h,
                                                        subscribe_options options) {
  if (!options.durable.empty()) {
    return error{errc::invalid_argument, "durable subscriptions need the NATS bus: the local bus keeps no events"};
  }
  auto selector = detail::bus_selector::make(ns_pattern, filter);
  if (!selector) return selector.error();
  auto s = impl_->registry->make(std::move(*selector), std::move(h), std::move(options));
  if (auto r = impl_->registry->add(s); !r) return r.error();
  return event_subscription{std::move(s)};
}

void local_event_bus::stored(const std::vector<event>& events) { impl_->registry->dispatch(events); }

void local_event_bus::collect(metric_sink& sink) const { impl_->registry->collect(sink); }

void event_bus::collect(metric_sink&) const {}

} // namespace aether
