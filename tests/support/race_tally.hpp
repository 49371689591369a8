#pragma once

// The checker of races for one version between writers (threads, processes,
// nodes), and of a whole history of writes under faults.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aether::testing {

/// What one writer saw of one write.
struct write_outcome {
  enum class kind { won, conflict, failed, no_answer };
  kind what = kind::no_answer;
  /// won: the last version it stored; conflict: the current version the
  /// store reported (`error::value()`).
  std::uint64_t version = 0;
  std::string detail;

  /// The line form child processes print: `win <v>`, `conflict <v>`,
  /// `error <text>`.
  [[nodiscard]] std::string to_line() const;
  /// Parses `to_line`'s form; anything else is `failed` with the text as detail.
  [[nodiscard]] static write_outcome from_line(std::string_view line);
};

/// Tallies races in which several writers append the same version of one
/// actor per trial, and checks each trial whole:
/// - exactly one writer won, and (if given) at the expected version;
/// - every other writer got a conflict whose value is the winner's version
///   (never behind what the server acknowledged);
/// - the event stored for the trial is the winner's (when the test read it back).
/// `both_sides_won` tells whether the race was real (each writer won some).
///
/// Thread-safety: `record` and `stored` from any thread; the checks after
/// the writers are done.
class race_tally {
public:
  explicit race_tally(std::size_t writers) : writers_{writers} {}

  void record(std::size_t trial, std::size_t writer, write_outcome outcome);
  /// The version the winner of `trial` must end at.
  void expect_version(std::size_t trial, std::uint64_t version);
  /// Which writer's event the store holds for `trial` (nullopt: none, or
  /// one of nobody's).
  void stored(std::size_t trial, std::optional<std::size_t> writer);

  /// One line per trial that broke a rule (also a trial a writer never answered).
  [[nodiscard]] std::vector<std::string> problems() const;
  [[nodiscard]] std::size_t trials() const;
  [[nodiscard]] std::size_t wins(std::size_t writer) const;
  /// Whether every writer won at least one trial.
  [[nodiscard]] bool every_writer_won() const;
  /// "wins: 97 / 103", for messages.
  [[nodiscard]] std::string summary() const;

private:
  struct trial_record {
    std::vector<std::optional<write_outcome>> outcomes;
    std::optional<std::uint64_t> expected;
    bool checked_store = false;
    std::optional<std::size_t> stored_writer;
  };
  std::size_t writers_;
  mutable std::mutex mutex_;
  std::map<std::size_t, trial_record> trials_;
};

/// A Jepsen-style record of writes made under faults, checked against what
/// the store holds afterwards. Each operation is identified by the id of the
/// event it wrote and ends ok (acknowledged), failed (certainly not stored)
/// or unknown (it may or may not have been stored).
///
/// The check: every ok write is present exactly once, at the version it was
/// acknowledged at; no version is held twice; a failed write is never
/// present; an unknown one may be present at most once.
///
/// Thread-safety: `invoke`/`complete` from any thread; `check` afterwards.
class write_history {
public:
  enum class result { ok, failed, unknown };

  /// Records the start of a write of event `id` at `version` by `writer`.
  void invoke(const std::string& id, std::string writer, std::uint64_t version);
  /// Records its end; for ok, `version` is the version acknowledged.
  void complete(const std::string& id, result r, std::uint64_t version = 0, std::string detail = {});

  /// One stored event, as read back from the store.
  struct stored_event {
    std::string id;
    std::uint64_t version = 0;
  };
  /// The rules above, over everything `stored` holds of the writers' actors;
  /// one line per violation.
  [[nodiscard]] std::vector<std::string> check(const std::vector<stored_event>& stored) const;
  [[nodiscard]] std::size_t count(result r) const;
  [[nodiscard]] std::size_t size() const;

private:
  struct op {
    std::string writer;
    std::uint64_t version = 0;
    std::optional<result> outcome;
    std::string detail;
  };
  mutable std::mutex mutex_;
  std::map<std::string, op> ops_;
};

} // namespace aether::testing
