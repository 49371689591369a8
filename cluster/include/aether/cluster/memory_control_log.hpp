#pragma once

#include <aether/cluster/control_log.hpp>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace aether {

/// The control log in memory: the one-node cluster of the embedded default,
/// and several members in one process for deterministic tests.
///
/// Appends and follower callbacks run on the calling thread, synchronously
/// and in log order, so on a manual executor a test decides every
/// interleaving. `set_available(false)` makes appends fail with
/// `unavailable`, as a lost server would.
///
/// Thread-safety: every member from any thread (one lock; a callback may
/// append again).
class memory_control_log final : public control_log {
public:
  memory_control_log();
  ~memory_control_log() override;

  void append(std::string subject, std::string data, append_done done) override;
  [[nodiscard]] expected<std::unique_ptr<control_log_follow>> follow(control_log_follower f) override;

  void set_available(bool available);
  /// Every record stored, in order.
  [[nodiscard]] std::vector<control_record> records() const;

  struct shared;

private:
  std::shared_ptr<shared> shared_;
};

} // namespace aether
