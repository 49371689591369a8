#pragma once

#include "remote_envelope.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/actors/placement.hpp>
#include <aether/cluster/cluster.hpp>
#include <aether/runtime/executor.hpp>
#include <aether/runtime/nats.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace aether {

/// The cluster's placement: an actor is local when this node owns its
/// cluster shard in the newest map it applied; messages for the others go
/// to their owner's inbox subject on NATS, and this node's inbox delivers
/// what others send here to the actors of the shards it owns.
///
/// Asks are retried only where they were certainly not delivered: while no
/// node owns the shard (nothing was sent), and after the receiver answered
/// `not_owner`; every retry uses the newest map, until the ask's deadline.
///
/// Thread-safety: `is_local` and `forward` from any thread; `apply` on the
/// cluster strand; inbox messages arrive on a nats.c thread; retries and the
/// sweep run on `lane`.
class shard_router final : public placement, public std::enable_shared_from_this<shard_router> {
public:
  shard_router(actor_system& system, executor& exec, std::size_t lane, std::shared_ptr<nats::connection> conn,
               std::string cluster, std::uint32_t shard_count);
  ~shard_router() override;

  /// Takes what the cluster knows now: the owned shards, the map, this
  /// node's incarnation (its inbox).
  void apply(const cluster_snapshot& view);
  /// Stops taking messages from other nodes and retrying.
  void stop();

  [[nodiscard]] bool is_local(const actor_id& target) const noexcept override;
  expected<void> forward(outbound_message&& m) override;

  /// Envelopes that did not decode (counted, logged, dropped).
  [[nodiscard]] std::uint64_t malformed_envelopes() const noexcept { return malformed_.load(); }

  /// This node's incarnation, as of the newest snapshot.
  [[nodiscard]] member_id self() const;
  /// Publishes `e` to the inbox of `to`.
  expected<void> send(const member_id& to, const remote_envelope& e);

private:
  struct pending_ask {
    intrusive_ptr<detail::reply_slot> reply;
    actor_id target;
    actor_id sender;
    std::string type;
    std::string payload;
    executor::time_point deadline;
  };

  void on_inbox(std::string_view bytes);
  void on_message(remote_envelope&& e);
  void on_answer(remote_envelope&& e);
  /// Sends ask `correlation` to the shard's owner in the newest map, or
  /// waits for one (on `lane`).
  void route_ask(std::uint64_t correlation);
  void retry_later(std::uint64_t correlation);
  void sweep();

  actor_system& system_;
  executor& exec_;
  std::size_t lane_;
  std::shared_ptr<nats::connection> conn_;
  std::string cluster_;
  std::uint32_t shard_count_;
  std::unique_ptr<std::atomic<bool>[]> owned_;
  std::atomic<std::uint64_t> next_correlation_{1};
  std::atomic<std::uint64_t> malformed_{0};

  mutable std::mutex mutex_;
  std::shared_ptr<const cluster_snapshot> view_;
  std::optional<nats::subscription> inbox_;
  std::unordered_map<std::uint64_t, pending_ask> pending_;
  executor::timer_id sweep_timer_ = 0;
  bool stopped_ = false;
};

} // namespace aether
