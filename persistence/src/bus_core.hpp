#pragma once

// What the local and the NATS bus share: patterns and filters, the
// subscriptions with their bounded queues and strands, and the registry that
// delivers events published or stored in this process.

#include <aether/persistence/event_bus.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace aether::detail {

/// A namespace pattern and a filter, checked and ready to match.
class bus_selector {
public:
  /// `invalid_argument` naming what is wrong.
  static expected<bus_selector> make(std::string_view ns_pattern, const event_filter& filter);

  [[nodiscard]] bool matches(const event& e) const noexcept;
  /// The one NATS subject filter that carries what matches, for the subject
  /// kind `stored` (persisted) or `pub` (published): exact but for the
  /// event types, which are filtered here.
  [[nodiscard]] std::string subject(std::string_view kind) const;
  /// The namespace when the pattern names exactly one, else empty.
  [[nodiscard]] const std::string& ns() const noexcept { return ns_; }
  [[nodiscard]] const std::string& ns_pattern() const noexcept { return ns_pattern_; }

private:
  std::string ns_pattern_;
  std::string ns_;
  std::vector<std::string> types_; // sorted
  // The actor's type and key: a token or `*`.
  std::string type_ = "*";
  std::string key_ = "*";
};

/// An event for a handler, or for a durable subscription only an
/// acknowledgement to send, or the point where its feed must be made anew.
struct bus_item {
  std::shared_ptr<const event> ev;
  std::string ack;            ///< durable: the reply subject to acknowledge once handled
  std::uint64_t sequence = 0; ///< durable: the stream sequence
  bool restart = false;       ///< durable: everything before is handled; restart the feed after it
};

/// What feeds a durable subscription from its stream.
class durable_source {
public:
  virtual ~durable_source() = default;
  /// Makes the feed anew from the stream sequence after `acknowledged`;
  /// called on the subscription's strand, must not wait.
  virtual void restart(std::uint64_t acknowledged) = 0;
  /// Stops the feed for good; waits for a restart in progress.
  virtual void stop() noexcept = 0;
};

/// Thrown by a handler to say its event was refused downstream (an actor's
/// full mailbox): counted as dropped, not as a failure.
struct dropped_event {
  error reason;
};

/// The events a bus's subscriptions dropped, by namespace and reason:
/// `subscriber_full` (the subscription's queue) or the `errc` name of what
/// refused the delivery (an actor's full mailbox: `mailbox_full`). Counted on
/// drops only, never per delivered event.
///
/// Thread-safety: from any thread.
class bus_drop_counts {
public:
  void add(std::string_view ns, std::string_view reason);
  void collect(metric_sink& sink) const;

private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> counts_;
};

/// One subscription: a bounded queue drained on a strand.
struct bus_subscription : std::enable_shared_from_this<bus_subscription> {
  bus_subscription(executor& ex, std::size_t lane, bus_selector selector, event_bus::handler h,
                   subscribe_options options);

  /// Queues an item for the handler; from any thread.
  void push(bus_item item);
  /// Reports an error to `on_error` on the strand; from any thread.
  void report(error e);
  /// The stream sequence up to which a durable subscription has acknowledged.
  [[nodiscard]] std::uint64_t acknowledged() const noexcept { return acknowledged_.load(); }
  /// Stops delivery and detaches from the bus and from NATS. A durable one
  /// first waits (a few seconds at most) until the server has recorded its
  /// acknowledgements, so its next subscriber starts right after them.
  void end() noexcept;

  executor& ex;
  const std::size_t lane;
  const bus_selector selector;
  const bool durable;
  const std::size_t capacity;
  /// Acknowledges durable deliveries, for the consumer `consumer` of `stream`.
  std::shared_ptr<nats::connection> conn;
  std::string stream;
  std::string consumer;
  /// NATS subscriptions feeding this one; set up before it is shared.
  std::vector<nats::subscription> feeds;
  /// Durable: what feeds it; set up before it is shared.
  std::shared_ptr<durable_source> source;
  /// Detaches it from its bus's registry.
  std::function<void()> detach;
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> dropped{0};
  /// The bus's drop counts; set up before it is shared.
  std::shared_ptr<bus_drop_counts> drop_counts;

private:
  void drain();
  void count_drop(const event& e, const error& why);
  void notify(const error& e);
  void settle_acknowledgements() noexcept;

  event_bus::handler handler_;
  std::function<void(const error&)> on_error_;
  std::mutex mutex_;
  std::deque<bus_item> queue_;
  bool scheduled_ = false;
  bool drop_reported_ = false;
  std::atomic<bool> ended_{false};
  std::atomic<std::uint64_t> acknowledged_{0}; // durable: written on the strand
};

/// The subscriptions that take events published or stored in this process.
class bus_registry : public std::enable_shared_from_this<bus_registry> {
public:
  explicit bus_registry(executor& ex) : ex_{ex} {}

  /// A new subscription on the next lane.
  std::shared_ptr<bus_subscription> make(bus_selector selector, event_bus::handler h, subscribe_options options);
  /// Tracks a subscription: a live one takes what is published or stored
  /// in this process from now on. `shutting_down` after `close`.
  expected<void> add(const std::shared_ptr<bus_subscription>& s);
  void dispatch(const std::shared_ptr<const event>& e);
  void dispatch(const std::vector<event>& events);
  /// Ends every subscription; adds fail from now on.
  void close();
  [[nodiscard]] bool closed() const noexcept { return closed_.load(); }
  /// The drops, and the lag of each durable subscription (asked of the server).
  void collect(metric_sink& sink) const;

private:
  void remove(const bus_subscription* s);

  executor& ex_;
  std::shared_ptr<bus_drop_counts> drops_ = std::make_shared<bus_drop_counts>();
  std::atomic<std::size_t> next_lane_{0};
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<bus_subscription>> subs_;
  std::atomic<bool> closed_{false};
};

/// Checks a publish: namespace, actor, type and data; fills in id and timestamp.
expected<void> prepare_publish(std::string_view ns, event& e);

} // namespace aether::detail
