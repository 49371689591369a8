#pragma once

#include <cstdint>
#include <string_view>

#include <aether/actors/actor_id.hpp>
#include <aether/runtime/error.hpp>

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

/// A message that could not be delivered, as reported to
/// `system_config::on_dead_letter`.
struct dead_letter {
  const actor_id& target;
  std::string_view message_type;
  errc reason;
};

} // namespace aether
