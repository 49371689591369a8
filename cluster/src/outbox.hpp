#pragma once

#include "remote_envelope.hpp"

#include <aether/cluster/member.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/nats.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace aether {

/// What a node publishes to other nodes' inboxes.
///
/// Tells to one node incarnation are gathered into one NATS message (an
/// `envelope_batch`): the first tell into an empty outbox posts a flush to
/// `lane`, and what was gathered by the time it runs goes out as one message
/// per node; a batch that reaches `max_bytes` or `max_count` is published at
/// once by the sender that filled it. Every other envelope (asks, answers,
/// handoff messages) is published at once, right after what was gathered for
/// its node. So the messages to one node leave in the order of the calls,
/// and a sender's order per receiver holds as before.
///
/// A tell waits at most one flush: with an idle lane, about one thread
/// wake-up (tens of microseconds); nothing waits for a NATS round trip.
/// A batch is handed over under the lock and published outside it, so
/// senders gather the next batch while one is published.
///
/// Thread-safety: `send` and `flush` from any thread.
class outbox final : public std::enable_shared_from_this<outbox> {
public:
  struct limits {
    /// A batch is published once it holds this many bytes or envelopes.
    std::size_t max_bytes = std::size_t{256} << 10;
    std::size_t max_count = 1024;
  };

  /// `subject_of` names the inbox subject of a node incarnation.
  outbox(executor& exec, std::size_t lane, std::shared_ptr<nats::connection> conn,
         std::function<std::string(const member_id&)> subject_of, limits lim);
  outbox(executor& exec, std::size_t lane, std::shared_ptr<nats::connection> conn,
         std::function<std::string(const member_id&)> subject_of)
      : outbox(exec, lane, std::move(conn), std::move(subject_of), limits{}) {}

  /// Sends `e` to the inbox of `to`: a tell is gathered, anything else is
  /// published now. The error of a publish that failed now (a gathered tell
  /// that fails later is logged and counted in `lost`).
  expected<void> send(const member_id& to, const remote_envelope& e);
  /// Publishes everything gathered, now.
  void flush();

  /// NATS messages published, envelopes sent in them, and gathered tells
  /// whose publish failed.
  [[nodiscard]] std::uint64_t messages() const noexcept { return messages_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t envelopes() const noexcept { return envelopes_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t lost() const noexcept { return lost_.load(std::memory_order_relaxed); }

private:
  struct destination {
    std::string subject;
    envelope_batch batch;   // gathering, under `mutex_`
    envelope_batch leaving; // being published, under `publish_mutex_`
  };

  /// The destination of `to`. Under `mutex_`.
  destination& at(const member_id& to);
  /// Hands what `d` gathered to its `leaving` batch. Under both locks.
  static void hand_over(destination& d) noexcept;
  /// Publishes `d.leaving`. Under `publish_mutex_` only.
  expected<void> publish_leaving(destination& d);
  expected<void> publish(const std::string& subject, std::string_view bytes, std::size_t envelopes);
  void flush_posted();
  /// Publishes every gathered batch; `posted`: as the posted flush.
  void flush_all(bool posted);

  executor& exec_;
  std::size_t lane_;
  std::shared_ptr<nats::connection> conn_;
  std::function<std::string(const member_id&)> subject_of_;
  limits limits_;
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> envelopes_{0};
  std::atomic<std::uint64_t> lost_{0};

  // Publishing (a copy into the connection's buffer, now and then a socket
  // write) happens outside `mutex_`, so senders keep gathering meanwhile.
  // `publish_mutex_` is taken while `mutex_` is held, so batches leave in the
  // order they were handed over.
  std::mutex mutex_;
  std::mutex publish_mutex_;
  std::map<member_id, destination> destinations_; // a node's entry is erased only under both locks
  std::vector<destination*> leaving_;             // under `publish_mutex_`
  bool flush_pending_ = false;
};

} // namespace aether
