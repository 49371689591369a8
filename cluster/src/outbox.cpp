#include "outbox.hpp"

#include <aether/runtime/log.hpp>

namespace aether {

namespace {

/// The encoding of an envelope, made before the lock is taken.
fmt::memory_buffer& scratch() {
  thread_local fmt::memory_buffer buffer;
  if (buffer.capacity() > (std::size_t{1} << 20)) buffer = fmt::memory_buffer{}; // after a big one
  buffer.clear();
  return buffer;
}

} // namespace

outbox::outbox(executor& exec, std::size_t lane, std::shared_ptr<nats::connection> conn,
               std::function<std::string(const member_id&)> subject_of, limits lim)
    : exec_{exec}, lane_{lane}, conn_{std::move(conn)}, subject_of_{std::move(subject_of)}, limits_{lim} {}

outbox::destination& outbox::at(const member_id& to) {
  auto it = destinations_.find(to);
  if (it == destinations_.end()) {
    // Incarnations come and go: forget the idle ones now and then (never
    // one whose batch is being published).
    if (destinations_.size() >= 64) {
      if (std::unique_lock publishing{publish_mutex_, std::try_to_lock}; publishing) {
        std::erase_if(destinations_, [](const auto& d) { return d.second.batch.empty(); });
      }
    }
    it = destinations_.emplace(to, destination{subject_of_(to), {}, {}}).first;
  }
  return it->second;
}

expected<void> outbox::publish(const std::string& subject, std::string_view bytes, std::size_t envelopes) {
  auto sent = conn_->publish(subject, bytes);
  if (sent) {
    messages_.fetch_add(1, std::memory_order_relaxed);
    envelopes_.fetch_add(envelopes, std::memory_order_relaxed);
  }
  return sent;
}

void outbox::hand_over(destination& d) noexcept { std::swap(d.batch, d.leaving); }

expected<void> outbox::publish_leaving(destination& d) {
  auto& batch = d.leaving;
  if (batch.empty()) return {};
  const auto count = batch.count();
  auto sent = publish(d.subject, count == 1 ? batch.only() : batch.finish(), count);
  batch.clear();
  if (!sent) {
    lost_.fetch_add(count, std::memory_order_relaxed);
    log(log_level::warn, "{} tells to {} not sent: {}", count, d.subject, sent.error().to_string());
  }
  return sent;
}

expected<void> outbox::send(const member_id& to, const remote_envelope& e) {
  thread_local envelope_encoder encoder; // a sender's envelopes mostly repeat the last one's fields
  auto& encoded = scratch();
  encoder.encode(encoded, e);
  const std::string_view json{encoded.data(), encoded.size()};
  std::unique_lock lock{mutex_};
  auto* d = &at(to);
  if (e.kind != remote_kind::tell) {
    // What was gathered for `to` leaves first.
    std::lock_guard publishing{publish_mutex_};
    hand_over(*d);
    lock.unlock();
    (void)publish_leaving(*d);
    return publish(d->subject, json, 1);
  }
  if (!d->batch.empty() && d->batch.size() + json.size() + 16 > limits_.max_bytes) {
    // A batch never grows past the limit with a big envelope: what was
    // gathered leaves first (a message over the server's limit would lose it all).
    {
      std::lock_guard publishing{publish_mutex_};
      hand_over(*d);
      lock.unlock();
      (void)publish_leaving(*d);
    }
    lock.lock();
    d = &at(to); // it may have been forgotten meanwhile
  }
  d->batch.add_encoded(json);
  if (d->batch.count() >= limits_.max_count || d->batch.size() >= limits_.max_bytes) {
    // Full: the sender publishes it (and so is held back while it cannot keep up).
    std::lock_guard publishing{publish_mutex_};
    hand_over(*d);
    lock.unlock();
    return publish_leaving(*d);
  }
  if (!flush_pending_) {
    flush_pending_ = true;
    lock.unlock();
    exec_.post(lane_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->flush_posted();
    });
  }
  return {};
}

void outbox::flush_posted() { flush_all(true); }

void outbox::flush() { flush_all(false); }

void outbox::flush_all(bool posted) {
  std::unique_lock lock{mutex_};
  if (posted) flush_pending_ = false;
  std::lock_guard publishing{publish_mutex_};
  auto& leaving = leaving_; // under `publish_mutex_`
  leaving.clear();
  for (auto& [to, d] : destinations_) {
    if (d.batch.empty()) continue;
    hand_over(d);
    leaving.push_back(&d);
  }
  lock.unlock();
  for (auto* d : leaving) (void)publish_leaving(*d);
}

} // namespace aether
