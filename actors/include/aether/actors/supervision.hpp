#pragma once

#include <chrono>
#include <cstdint>

namespace aether {

/// What happens to an actor whose handler threw.
enum class supervision {
  resume,  ///< keep the instance and its state; go on with the next message
  restart, ///< replace the instance with a fresh one from the factory, after a backoff
  stop,    ///< drop the instance; the next message activates a fresh one
};

/// Limits of `supervision::restart`. Restarts back off exponentially from
/// `min_backoff` to `max_backoff`; messages that arrive meanwhile wait, in
/// order, for the new instance. More than `max_restarts` failures within
/// `window` stop the actor instead, failing the messages that waited.
struct restart_limits {
  std::uint32_t max_restarts = 3;
  std::chrono::milliseconds window{10'000};
  std::chrono::milliseconds min_backoff{10};
  std::chrono::milliseconds max_backoff{1'000};
};

/// Per actor type settings.
struct actor_options {
  supervision on_failure = supervision::restart;
  restart_limits restart{};
  /// Overrides the system's idle timeout for this type; zero never passivates.
  std::chrono::milliseconds idle_timeout{-1};
};

} // namespace aether
