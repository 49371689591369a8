#include "bus_core.hpp"
#include "names.hpp"
#include "namespace_stream.hpp"
#include "stored_event.hpp"

#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace aether {

namespace {

constexpr std::chrono::milliseconds subscribe_timeout{5'000};
/// How long a durable subscribe waits for a previous holder of the name to go.
constexpr std::chrono::milliseconds held_wait{2'000};
constexpr std::chrono::milliseconds held_poll{50};
/// How often an idle durable consumer says how far it delivered, so that a
/// last delivery lost on its way is noticed.
constexpr std::chrono::milliseconds idle_heartbeat{2'000};

/// The events of a message on a bus subject
/// (`aether_bus.{pub|stored}.{type}.{key}.{version}.{ns}`), or, read from a
/// namespace's stream by a durable subscriber, on a store subject
/// (`aether.{token}.ev.{type}.{key}.{version}`) or a bus subject of a stream
/// written before namespaces had several tokens (`aether.{ns}.pub.{type}.{key}.{version}`).
expected<std::vector<event>> decode_message(const nats::message_view& m, std::uint64_t sequence) {
  const auto subject = m.subject();
  const auto malformed = [&](std::string_view why) {
    return error{errc::malformed_payload, fmt::format("a message on {}: {}", subject, why)};
  };
  // The first five tokens, then the rest (none on a store subject of the
  // per-actor layout, `aether.{token}.ev.{type}.{key}`).
  std::string_view tokens[5];
  std::optional<std::string_view> rest;
  std::size_t start = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    const auto dot = subject.find('.', start);
    if (dot == std::string_view::npos) {
      if (i < 4) return malformed("not an event subject");
      tokens[i] = subject.substr(start);
      break;
    }
    tokens[i] = subject.substr(start, dot - start);
    start = dot + 1;
    if (i == 4) rest = subject.substr(start);
  }
  std::string ns;
  std::string_view type;
  std::string_view key;
  std::string_view version_text;
  if (tokens[0] == detail::bus_root && (tokens[1] == "pub" || tokens[1] == "stored") && rest) {
    type = tokens[2];
    key = tokens[3];
    version_text = tokens[4];
    ns = *rest;
  } else if (tokens[0] == "aether" && (tokens[2] == "ev" || (tokens[2] == "pub" && rest)) &&
             (!rest || rest->find('.') == std::string_view::npos)) {
    auto decoded = detail::namespace_from_token(tokens[1]);
    if (!decoded) return malformed(decoded.error().detail());
    ns = std::move(*decoded);
    type = tokens[3];
    key = tokens[4];
    // No version: a per-actor write, whose events' own versions count.
    version_text = rest.value_or("0");
  } else {
    return malformed("not an event subject");
  }
  auto actor = actor_id::make(type, key, ns);
  if (!actor) return malformed(actor.error().detail());
  std::uint64_t version = 0;
  if (const auto [end, ec] = std::from_chars(version_text.data(), version_text.data() + version_text.size(), version);
      ec != std::errc{} || end != version_text.data() + version_text.size()) {
    return malformed("no version");
  }
  // A published event may be of version 0; a stored write whose place names
  // no version (the per-actor layout, republished with 0) names its own.
  const bool published = tokens[0] == detail::bus_root ? tokens[1] == "pub" : tokens[2] == "pub";
  auto events = version == 0 && !published ? detail::decode_batch_own_versions(*actor, sequence, m.data())
                                           : detail::decode_batch(*actor, version, sequence, m.data());
  if (!events) return malformed(events.error().detail());
  return events;
}

/// The stream sequence of a republished message; 0 for others.
std::uint64_t stream_sequence(const nats::message_view& m) {
  std::uint64_t n = 0;
  if (const auto h = m.header("Nats-Sequence")) std::from_chars(h->data(), h->data() + h->size(), n);
  return n;
}

/// Durable names become consumer names.
expected<void> validate_durable(std::string_view name) {
  if (auto r = actor_id::validate_name(name, "durable name"); !r) {
    return error{errc::invalid_argument, fmt::format("durable name '{}': letters, digits, '-' and '_' only, 1 to {}",
                                                     name, actor_id::max_namespace_size)};
  }
  return {};
}

/// The feed of a durable subscription: its consumer, made anew when a
/// delivery got lost on its way. A server or route that dies with messages
/// in flight loses them while the consumer counts them delivered; the next
/// delivery then skips past them, and acknowledging it (the consumer takes an
/// acknowledgement for everything up to a sequence) would lose them for good.
/// So a delivery that skips delivery and stream sequences, or an idle
/// heartbeat naming a delivery never received, stops the feed; once the
/// subscription has handled what came before, the consumer is made again
/// after what it acknowledged, on a thread of the feed's own (the calls
/// wait for the server, which may be electing a leader).
class durable_feed final : public detail::durable_source, public std::enable_shared_from_this<durable_feed> {
public:
  durable_feed(std::weak_ptr<detail::bus_subscription> s, std::shared_ptr<nats::connection> c,
               nats::durable_consumer_config config)
      : sub_{std::move(s)}, conn_{std::move(c)}, config_{std::move(config)} {}
  ~durable_feed() override { stop(); }

  /// Makes the consumer from `config.start_sequence` and subscribes.
  expected<void> start() {
    std::uint64_t generation = 0;
    {
      std::lock_guard lock{mutex_};
      generation = ++generation_;
      received_ = config_.start_sequence - 1;
      delivered_ = 0;
      stalled_ = false;
    }
    auto feed = conn_->consume_durable(config_, [weak = weak_from_this(), generation](const nats::message_view& m) {
      if (auto self = weak.lock()) self->on_message(generation, m);
    });
    if (!feed) return feed.error();
    std::lock_guard lock{mutex_};
    if (!stopped_) feed_ = std::move(*feed);
    return {};
  }

  void restart(std::uint64_t acknowledged) override {
    std::lock_guard lock{mutex_};
    if (stopped_) return;
    restart_from_ = acknowledged + 1;
    if (!restarter_.joinable()) restarter_ = std::thread{[this] { restart_loop(); }};
    wake_.notify_all();
  }

  void stop() noexcept override {
    std::optional<nats::subscription> feed;
    {
      std::lock_guard lock{mutex_};
      stopped_ = true;
      feed = std::move(feed_);
      feed_.reset();
    }
    wake_.notify_all();
    if (restarter_.joinable() && restarter_.get_id() != std::this_thread::get_id()) restarter_.join();
  }

private:
  void on_message(std::uint64_t generation, const nats::message_view& m) {
    std::shared_ptr<detail::bus_subscription> self; // outlives the lock
    std::lock_guard lock{mutex_};
    if (generation != generation_ || stalled_ || stopped_) return;
    self = sub_.lock();
    if (!self) return;
    if (m.reply().empty()) {
      // A status; an idle heartbeat names the last delivery made.
      std::uint64_t last = 0;
      if (const auto h = m.header("Nats-Last-Consumer")) std::from_chars(h->data(), h->data() + h->size(), last);
      if (last > delivered_) stall(*self, fmt::format("the consumer made {} deliveries, {} arrived", last, delivered_));
      return;
    }
    auto position = m.delivery();
    const auto sequence = position ? position->stream_sequence : 0;
    const auto delivery = position ? position->delivery_sequence : 0;
    // Both skip when deliveries got lost; only the stream sequence skips
    // over messages deleted from the stream.
    if (delivery > delivered_ + 1 && sequence > received_ + 1) {
      stall(*self, fmt::format("delivery {} of stream sequence {} came after {} of {}", delivery, sequence, delivered_,
                               received_));
      return;
    }
    delivered_ = std::max(delivered_, delivery);
    received_ = std::max(received_, sequence);
    std::vector<detail::bus_item> items;
    if (auto events = decode_message(m, sequence); !events) {
      self->report(events.error()); // skipped, or it would block the stream
    } else {
      for (auto& e : *events) {
        if (self->selector.matches(e)) items.push_back({std::make_shared<const event>(std::move(e)), {}, sequence});
      }
    }
    if (items.empty()) items.push_back({nullptr, {}, sequence});
    items.back().ack = m.reply();
    for (auto& item : items) self->push(std::move(item));
  }

  /// Takes nothing more from this consumer; the subscription restarts it
  /// once it handled what is queued.
  void stall(detail::bus_subscription& s, std::string_view why) {
    stalled_ = true;
    log(log_level::warn,
        "durable subscription {} on {}: deliveries got lost on the way ({}); making its consumer "
        "again after what it acknowledged",
        config_.name, config_.stream, why);
    s.push(detail::bus_item{nullptr, {}, 0, true});
  }

  void restart_loop() {
    std::unique_lock lock{mutex_};
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || restart_from_ != 0; });
      if (stopped_) return;
      config_.start_sequence = restart_from_;
      auto old = std::move(feed_);
      feed_.reset();
      lock.unlock();
      old.reset(); // unsubscribes; what it still delivers is of an older generation
      auto made = remake();
      if (!made) {
        if (auto self = sub_.lock()) self->report(made.error());
      }
      lock.lock();
      if (made) {
        restart_from_ = 0;
        continue;
      }
      // The server may be electing a leader: try again in a while.
      wake_.wait_for(lock, std::chrono::milliseconds{500}, [&] { return stopped_; });
    }
  }

  expected<void> remake() {
    if (auto r = conn_->delete_consumer(config_.stream, config_.name); !r && r.error().code() != errc::not_found) {
      return r;
    }
    return start();
  }

  std::weak_ptr<detail::bus_subscription> sub_;
  std::shared_ptr<nats::connection> conn_;
  nats::durable_consumer_config config_; // start_sequence: written by the restarter only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::uint64_t generation_ = 0; // of the consumer messages are taken from
  std::uint64_t received_ = 0;   // the last stream sequence taken
  std::uint64_t delivered_ = 0;  // the last delivery sequence taken
  bool stalled_ = false;         // a delivery got lost: nothing more taken until made anew
  bool stopped_ = false;
  std::uint64_t restart_from_ = 0; // a restart asked for, from this stream sequence
  std::optional<nats::subscription> feed_;
  std::thread restarter_;
};

} // namespace

struct nats_event_bus::impl {
  impl(executor& e, std::shared_ptr<nats::connection> c, nats_bus_options o)
      : ex{e},
        conn{std::move(c)},
        options{o},
        origin{new_event_id()},
        registry{std::make_shared<detail::bus_registry>(e)} {}

  executor& ex;
  std::shared_ptr<nats::connection> conn;
  nats_bus_options options;
  const std::string origin;
  std::shared_ptr<detail::bus_registry> registry;
  detail::namespace_streams streams;

  /// Live: what NATS carries from now on, but this bus's own messages (those
  /// reach the subscription from the registry): persisted events as the
  /// server republishes them once stored, published ones as published.
  expected<void> feed_live(const std::shared_ptr<detail::bus_subscription>& s) {
    for (const std::string_view kind : {"stored", "pub"}) {
      auto feed = conn->subscribe(
          s->selector.subject(kind),
          [weak = std::weak_ptr{s}, origin = origin](const nats::message_view& m) {
            auto self = weak.lock();
            if (!self || m.header(detail::origin_header) == std::optional<std::string_view>{origin}) return;
            auto events = decode_message(m, stream_sequence(m));
            if (!events) {
              self->report(events.error());
              return;
            }
            for (auto& e : *events) {
              if (self->selector.matches(e))
                self->push(detail::bus_item{std::make_shared<const event>(std::move(e)), {}, 0});
            }
          },
          // The client's own queue stays far from full: the handler only queues.
          static_cast<int>(std::min<std::size_t>(std::max<std::size_t>(s->capacity, 65536), INT_MAX)));
      if (!feed) return feed.error();
      s->feeds.push_back(std::move(*feed));
    }
    // The server has the interest once this returns: later publishes reach it.
    if (auto r = conn->flush(subscribe_timeout); !r) return r;
    // The server refuses a subject the user may not subscribe to only in an
    // error of its own, sent before it answered the flush.
    for (const auto& feed_subject : {s->selector.subject("stored"), s->selector.subject("pub")}) {
      if (auto r = conn->check_permitted(feed_subject); !r) {
        return error{errc::permission_denied, fmt::format("subscribing to {}: {}", feed_subject, r.error().detail())};
      }
    }
    return {};
  }

  /// Durable: the namespace's stream through a durable consumer, starting
  /// after what the subscription acknowledged before. The consumer is made
  /// anew at that point, so what was delivered but not acknowledged comes
  /// again first, in order, rather than after a redelivery timeout.
  expected<void> feed_durable(const std::shared_ptr<detail::bus_subscription>& s, const std::string& name) {
    const auto& ns = s->selector.ns();
    if (auto r = streams.ensure(*conn, ns, options.replicas); !r) return r.error();
    const auto stream = detail::namespace_stream_name(ns);
    std::uint64_t start = 1;
    // A subscriber that just ended may still look bound for a moment (on a
    // cluster the server learns of it over a route): wait a little first.
    const auto deadline = std::chrono::steady_clock::now() + held_wait;
    for (;;) {
      auto state = conn->consumer(stream, name);
      if (!state) {
        if (state.error().code() != errc::not_found) return state.error();
        break;
      }
      if (!state->bound) {
        start = state->ack_floor + 1;
        if (auto r = conn->delete_consumer(stream, name); !r && r.error().code() != errc::not_found) return r;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return in_use(name, ns);
      }
      std::this_thread::sleep_for(held_poll);
    }
    nats::durable_consumer_config c;
    c.stream = stream;
    c.name = name;
    c.start_sequence = start;
    c.max_ack_pending = static_cast<int>(std::min<std::size_t>(s->capacity, INT_MAX));
    c.idle_heartbeat = idle_heartbeat;
    s->conn = conn;
    s->stream = stream;
    s->consumer = name;
    auto feed = std::make_shared<durable_feed>(s, conn, c);
    if (auto r = feed->start(); !r) {
      // Another subscriber made the consumer between the check and here.
      if (conn->consumer(stream, name)) return in_use(name, ns);
      return r.error();
    }
    s->source = std::move(feed);
    return {};
  }

  static error in_use(std::string_view name, std::string_view ns) {
    return error{errc::in_use,
                 fmt::format("durable subscription {} on namespace {}: another subscriber holds it", name, ns)};
  }
};

nats_event_bus::nats_event_bus(std::shared_ptr<impl> p) noexcept : impl_{std::move(p)} {}
nats_event_bus::~nats_event_bus() { close(); }

expected<std::shared_ptr<nats_event_bus>> nats_event_bus::open(executor& ex, std::shared_ptr<nats::connection> conn,
                                                               nats_bus_options options) {
  if (!conn) return error{errc::invalid_argument, "no connection"};
  return std::shared_ptr<nats_event_bus>{new nats_event_bus{std::make_shared<impl>(ex, std::move(conn), options)}};
}

const std::string& nats_event_bus::origin() const noexcept { return impl_->origin; }

void nats_event_bus::close() { impl_->registry->close(); }

expected<void> nats_event_bus::publish(std::string_view ns, event e) {
  if (impl_->registry->closed()) return error{errc::shutting_down, "the event bus is closed"};
  if (auto r = detail::prepare_publish(ns, e); !r) return r;
  const auto payload = detail::encode_batch(std::span<const event>{&e, 1});
  // Headers and subject ride along; keep well inside the server's limit.
  const auto limit = impl_->conn->max_payload() - 512;
  if (static_cast<std::int64_t>(payload.size()) > limit) {
    return error{errc::payload_too_large, fmt::format("event {} of {} takes {} bytes; the server takes at most {}",
                                                      e.type, e.actor.to_string(), payload.size(), limit)};
  }
  const nats::header headers[] = {{detail::origin_header, impl_->origin}};
  const auto subject = detail::bus_subject("pub", e.actor, e.version);
  if (auto r = impl_->conn->publish(subject, payload, headers); !r) return r;
  impl_->registry->dispatch(std::make_shared<const event>(std::move(e)));
  return {};
}

expected<event_subscription> nats_event_bus::subscribe(std::string_view ns_pattern, event_filter filter, handler h,
                                                       subscribe_options options) {
  auto selector = detail::bus_selector::make(ns_pattern, filter);
  if (!selector) return selector.error();
  const auto name = options.durable;
  if (!name.empty()) {
    if (auto r = validate_durable(name); !r) return r.error();
    if (selector->ns().empty()) {
      return error{errc::invalid_argument,
                   fmt::format("durable subscription {}: it reads one namespace's stream, so name the namespace, "
                               "not '{}'",
                               name, ns_pattern)};
    }
  }
  // A lost connection would only make the setup below wait out its timeouts.
  if (!impl_->conn->connected()) return error{errc::unavailable, "subscribing: not connected to a server"};
  auto s = impl_->registry->make(std::move(*selector), std::move(h), std::move(options));
  event_subscription handle{s}; // ends it on every early return
  if (auto r = name.empty() ? impl_->feed_live(s) : impl_->feed_durable(s, name); !r) return r.error();
  if (auto r = impl_->registry->add(s); !r) return r.error();
  return handle;
}

void nats_event_bus::stored(const std::vector<event>& events) { impl_->registry->dispatch(events); }

void nats_event_bus::collect(metric_sink& sink) const { impl_->registry->collect(sink); }

} // namespace aether
