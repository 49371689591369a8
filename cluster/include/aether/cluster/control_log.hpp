#pragma once

#include <aether/runtime/expected.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace aether {

/// One record of a cluster's control log.
struct control_record {
  /// Its position in the log: strictly increasing in delivery order.
  std::uint64_t sequence = 0;
  /// Its subject, relative to the cluster (`term.7`, `map.12`, ...).
  std::string subject;
  std::string data;
};

/// What a follower of the control log is told. Callbacks may run on any
/// thread (a nats.c thread for the NATS log), one at a time and in log order:
/// hop to a strand before touching anything.
struct control_log_follower {
  /// Each record, in log order, from the start of what the log retains.
  std::function<void(control_record)> on_record;
  /// Once, after the records the log held when following began.
  std::function<void()> on_caught_up;
  /// The follow ended (e.g. the server is gone for good); no call follows.
  std::function<void(error)> on_error;
};

/// A follow of the control log; ends when destroyed.
class control_log_follow {
public:
  virtual ~control_log_follow() = default;
};

/// The cluster's control log: an ordered log of records, each on a subject
/// that is written at most once.
///
/// Every record a cluster writes names a subject never used before (a member's
/// join, a term, a map epoch), and `append` stores it only if the subject is
/// still empty: of two writers of one subject at most one is stored, and every
/// follower sees the records in the same order. The first record of a subject
/// is its value: followers ignore a later one (see the R3 note in the
/// architecture).
///
/// Thread-safety: `append` and `follow` from any thread; `done` and the
/// follower's callbacks run on any thread.
class control_log {
public:
  using append_done = unique_function<void(expected<std::uint64_t>)>;

  virtual ~control_log() = default;
  /// Stores `data` on `subject` if nothing is stored there yet. `done` gets
  /// the record's sequence, `version_conflict` when the subject holds a
  /// record already, or `unavailable` (the outcome may then be unknown: the
  /// follower will tell).
  virtual void append(std::string subject, std::string data, append_done done) = 0;
  /// Follows the log from its start.
  [[nodiscard]] virtual expected<std::unique_ptr<control_log_follow>> follow(control_log_follower f) = 0;
};

} // namespace aether
