#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <aether/actors/actor_id.hpp>
#include <aether/runtime/error.hpp>
#include <aether/runtime/metrics.hpp>

namespace aether {

/// Counters of an actor system since it started.
struct metrics_snapshot {
  std::uint64_t messages = 0; ///< messages handled by actors
  std::uint64_t activations = 0;
  std::uint64_t passivations = 0;
  std::uint64_t handler_failures = 0; ///< handlers that threw
  std::uint64_t restarts = 0;
  std::uint64_t dead_letters = 0; ///< messages nobody could take
  std::uint64_t late_replies = 0; ///< replies after the ask had timed out or failed
  std::uint64_t mailbox_full = 0; ///< sends refused by a full mailbox
  std::uint64_t ask_timeouts = 0;
};

/// Counts of one actor type since the system started.
struct type_metrics {
  std::string type;
  std::int64_t active = 0;
  std::uint64_t activations = 0;
  std::uint64_t passivations = 0;
  std::uint64_t handler_failures = 0;
  std::uint64_t restarts = 0;
};

/// What `actor_system::detail_metrics` reads: per type, dead letters by
/// reason, messages waiting in mailboxes and, when measured, handling times.
struct system_detail_metrics {
  std::vector<type_metrics> types;
  std::vector<std::pair<errc, std::uint64_t>> dead_letters; ///< reasons seen, with their counts
  std::uint64_t mailbox_depth = 0;
  std::optional<latency_histogram::snapshot> handling; ///< with `system_config::measure_handling`
};

/// A message that could not be delivered, as reported to
/// `system_config::on_dead_letter`.
struct dead_letter {
  const actor_id& target;
  std::string_view message_type;
  errc reason;
};

} // namespace aether
