#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/persistence/event.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aether {

/// What an append stored.
struct append_result {
  std::uint64_t first_version = 0;
  std::uint64_t last_version = 0;
  std::uint64_t sequence = 0; ///< the stream sequence of the write (0 in memory)
};

/// A stored write a read left out: one that does not decode, or one
/// stored beside the history.
struct unread_write {
  std::uint64_t version = 0;  ///< the first version it claims (0 when it names none)
  std::uint64_t sequence = 0; ///< where it is stored (the stream sequence)
  std::string reason;
};

/// What a reporting read found: the clean events, in version order, and
/// each write it could not decode or left out.
struct history_report {
  std::vector<event> events;
  std::vector<unread_write> undecodable;
  std::vector<unread_write> skipped; ///< stored beside the history (see the store's rule)
};

/// Where actors' events live. Versions per actor are 1, 2, 3, ... with no
/// gaps; an append names the version it expects to follow, and of two
/// appends after the same version exactly one succeeds: the other gets
/// `version_conflict` with the current version as the error's `value()`.
/// An append of several events is all or nothing.
///
/// Thread-safety: every member may be called from any thread. Callbacks may
/// run inline or on a store thread; hop to a strand before touching state.
class event_store {
public:
  using append_callback = unique_function<void(expected<append_result>)>;
  using read_callback = unique_function<void(expected<std::vector<event>>)>;
  using version_callback = unique_function<void(expected<std::uint64_t>)>;
  using append_watcher = std::function<void(const std::vector<event>&)>;
  using report_callback = unique_function<void(expected<history_report>)>;

  virtual ~event_store() = default;

  /// Calls `fn` with the events of every append the store acknowledges,
  /// before the appender hears of it, on the thread that completes the
  /// append; this is how the event bus of this process sees persisted
  /// events. Set it before the first append.
  void watch_appends(append_watcher fn) { watcher_ = std::make_shared<const append_watcher>(std::move(fn)); }

  /// Stores `events` (their ids, types and data set) as versions
  /// `expected_version + 1`, ... of `actor`.
  virtual void append(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events,
                      append_callback done) = 0;
  /// The actor's events with version >= `from_version`, in order. A
  /// nonzero `hint` (from a snapshot) says that `from_version` starts a
  /// write, as an actor's own version + 1 always does, and is a stream
  /// sequence at or before it; it lets a store skip what comes before.
  virtual void read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint, read_callback done) = 0;
  /// The actor's last version; 0 when it has no events.
  virtual void latest_version(const actor_id& actor, version_callback done) = 0;
  /// The actor's events with version >= `from_version` that decode, and for
  /// each stored write that does not, its version, stream sequence and
  /// why: for tools that must see a damaged history without losing its
  /// clean part (`read` stops at the first such write with `replay_failed`).
  /// Events after a write whose end is unknown cannot be placed and are
  /// not returned. The default reads strictly: its stores hold no bytes.
  virtual void read_report(const actor_id& actor, std::uint64_t from_version, report_callback done);

  // Blocking forms, for tools, tests and `main()`: never on a runtime thread.
  expected<append_result> append_wait(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events);
  expected<std::vector<event>> read_wait(const actor_id& actor, std::uint64_t from_version = 1);
  expected<std::uint64_t> latest_version_wait(const actor_id& actor);
  expected<history_report> read_report_wait(const actor_id& actor, std::uint64_t from_version = 1);

protected:
  /// What `watch_appends` set, or null; an append in flight keeps its own reference.
  [[nodiscard]] const std::shared_ptr<const append_watcher>& watcher() const noexcept { return watcher_; }

private:
  std::shared_ptr<const append_watcher> watcher_;
};

/// Events in memory, per namespace: the embedded default and the reference
/// the JetStream store is tested against.
class memory_event_store final : public event_store {
public:
  memory_event_store();
  ~memory_event_store() override;
  void append(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events,
              append_callback done) override;
  void read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint, read_callback done) override;
  void latest_version(const actor_id& actor, version_callback done) override;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace aether
