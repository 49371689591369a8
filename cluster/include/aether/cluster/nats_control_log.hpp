#pragma once

#include <aether/cluster/control_log.hpp>
#include <aether/runtime/nats.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace aether {

/// Where a cluster's control records live on NATS.
struct nats_control_options {
  /// The cluster's name: the stream is `aether_cluster_{name}`, its subjects
  /// `aether_cluster.{name}.ctl.>`.
  std::string cluster = "aether";
  int replicas = 1;
  /// Records the stream keeps; the oldest go first. No age limit: on 2.9.10
  /// each replica would expire messages on its own clock.
  std::int64_t max_messages = 100'000;
  /// Whether `open` creates (or updates) the stream. False opens an existing
  /// log to follow it and writes nothing: `not_found` when the cluster has
  /// no stream (for tools that only read).
  bool create = true;
};

/// The control log on a JetStream stream.
///
/// An append is a publish to `aether_cluster.{name}.ctl.{subject}` with
/// `Nats-Expected-Last-Subject-Sequence: 0`, which the server checks and
/// stores under the stream's lock (R1) or in its replicated log's order (R3):
/// of two writers of one subject at most one is stored. Appends run one at a
/// time on a thread of the log (a publish waits for the server's
/// acknowledgement). Followers read the stream with an ordered consumer.
///
/// Thread-safety: every member from any thread; callbacks run on the log's
/// thread (appends) or a nats.c thread (follows).
class nats_control_log final : public control_log {
public:
  /// Creates the stream if it is missing (unless `options.create` is false).
  [[nodiscard]] static expected<std::shared_ptr<nats_control_log>> open(std::shared_ptr<nats::connection> conn,
                                                                        nats_control_options options);
  ~nats_control_log() override;
  nats_control_log(const nats_control_log&) = delete;
  nats_control_log& operator=(const nats_control_log&) = delete;

  void append(std::string subject, std::string data, append_done done) override;
  [[nodiscard]] expected<std::unique_ptr<control_log_follow>> follow(control_log_follower f) override;

  [[nodiscard]] const std::string& stream() const noexcept;

  struct impl;

private:
  explicit nats_control_log(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
