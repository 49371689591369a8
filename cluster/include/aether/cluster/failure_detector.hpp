#pragma once

#include <aether/cluster/member.hpp>
#include <aether/runtime/executor.hpp>

#include <map>
#include <vector>

namespace aether {

/// Which members have been silent for longer than the failure timeout, on
/// the observer's monotonic clock. Heartbeats carry no time: only when this
/// node heard one counts, so another node's clock (or its skew) never matters.
///
/// Thread-safety: none; used on one strand.
class failure_detector {
public:
  using time_point = executor::time_point;
  using duration = executor::duration;

  explicit failure_detector(duration timeout) : timeout_{timeout} {}

  /// Starts watching `m` as if heard now (a member is given the whole timeout
  /// from when this node learns of it).
  void watch(const member_id& m, time_point now);
  void forget(const member_id& m);
  /// A heartbeat from `m`; ignored for members not watched.
  void heard(const member_id& m, time_point now);
  /// Silent for longer than the timeout (false for members not watched).
  [[nodiscard]] bool suspected(const member_id& m, time_point now) const;
  /// The watched members silent for longer than the timeout.
  [[nodiscard]] std::vector<member_id> suspects(time_point now) const;
  /// Counts every member as heard now: after this node itself stalled (a
  /// pause, a lost connection), silence it could not observe proves nothing.
  void restart(time_point now);
  [[nodiscard]] duration timeout() const noexcept { return timeout_; }

private:
  duration timeout_;
  std::map<member_id, time_point> last_heard_;
};

} // namespace aether
