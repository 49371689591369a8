#include "wait.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/state_fold.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

namespace aether {

state_failure state_failure_of(const error& e) noexcept {
  switch (e.code()) {
  case errc::unknown_actor_type:
    return state_failure::unknown_type;
  case errc::unknown_message_type:
    return state_failure::not_event_sourced;
  case errc::not_found:
    return e.value() == 0 ? state_failure::no_events : state_failure::beyond_last_version;
  case errc::invalid_argument:
    return state_failure::before_first_event;
  case errc::replay_failed:
    return state_failure::corrupted_event;
  default:
    return state_failure::other;
  }
}

std::string_view to_string(state_failure f) noexcept {
  switch (f) {
  case state_failure::unknown_type:
    return "unknown_type";
  case state_failure::not_event_sourced:
    return "not_event_sourced";
  case state_failure::no_events:
    return "no_events";
  case state_failure::beyond_last_version:
    return "beyond_last_version";
  case state_failure::before_first_event:
    return "before_first_event";
  case state_failure::corrupted_event:
    return "corrupted_event";
  case state_failure::other:
    return "other";
  }
  return "other";
}

namespace {

/// One fold in flight: the detached instance it folds into, and where to.
struct fold_job {
  std::unique_ptr<actor> instance; // owns `core`
  detail::event_sourced_core* core = nullptr;
  actor_id id;
  state_point point;
  state_callback done;
  std::uint64_t snapshot_version = 0;
};

std::string point_text(const state_point& p) {
  switch (p.at) {
  case state_point::kind::latest:
    return "its last event";
  case state_point::kind::version:
    return fmt::format("version {}", p.version);
  case state_point::kind::time:
    return fmt::format("time {} ns", p.time_ns);
  }
  return "?";
}

/// Whether `e` lies past the point (so it and everything after is not folded).
bool beyond(const state_point& p, const event& e) {
  switch (p.at) {
  case state_point::kind::latest:
    return false;
  case state_point::kind::version:
    return e.version > p.version;
  case state_point::kind::time:
    return e.timestamp_ns > p.time_ns;
  }
  return false;
}

error damaged(const actor_id& id, const unread_write& w) {
  return error{errc::replay_failed,
               fmt::format("{} version {} (stream sequence {}) does not decode: {}", id.to_string(), w.version,
                           w.sequence, w.reason),
               w.version};
}

/// Folds what the read found into the job's instance and answers.
void finish(fold_job& job, history_report report) {
  const auto& id = job.id;
  const auto& point = job.point;
  auto& events = report.events;
  // The read began at the snapshot's version, for that event's time; the
  // snapshot holds it already.
  const std::uint64_t start = job.snapshot_version;
  std::uint64_t last = start;
  for (const auto& e : events) last = std::max(last, e.version);
  for (const auto& w : report.undecodable) last = std::max(last, w.version);
  if (last == 0) {
    job.done(error{errc::not_found, fmt::format("{} has no events", id.to_string()), 0});
    return;
  }
  if (point.at == state_point::kind::version && point.version > last) {
    job.done(error{errc::not_found,
                   fmt::format("{} has no version {}: its last is {}", id.to_string(), point.version, last), last});
    return;
  }
  auto damaged_at = [&](std::uint64_t v) -> const unread_write* {
    for (const auto& w : report.undecodable) {
      if (w.version == v) return &w;
    }
    return nullptr;
  };

  std::int64_t reached_time = 0;
  std::uint64_t reached = start;
  std::vector<event> fold;
  for (auto& e : events) {
    if (e.version <= start) {
      if (e.version == start) reached_time = e.timestamp_ns;
      continue;
    }
    if (beyond(point, e)) break;
    if (e.version != reached + 1) break; // a write in between did not decode: below
    reached = e.version;
    reached_time = e.timestamp_ns;
    fold.push_back(std::move(e));
  }
  // A damaged write right after what was folded is in range unless the
  // point ends before it; its time is unknown, so a time point counts it in.
  if (const auto* w = damaged_at(reached + 1)) {
    const bool in_range = point.at != state_point::kind::version || w->version <= point.version;
    if (in_range) {
      job.done(damaged(id, *w));
      return;
    }
  }
  if (reached == 0) {
    // Nothing at or before the point: a time before the first event.
    job.done(error{errc::invalid_argument,
                   fmt::format("{} has no event at or before {}: its first was recorded at {} ns", id.to_string(),
                               point_text(point), events.empty() ? 0 : events.front().timestamp_ns)});
    return;
  }
  if (point.at == state_point::kind::version && reached < point.version) {
    // The events stop before the version, and no damaged write explains it
    // (one whose end is unknown hides what follows).
    job.done(
        error{errc::replay_failed,
              fmt::format("{}: version {} cannot be placed after version {}", id.to_string(), reached + 1, reached),
              reached + 1});
    return;
  }
  if (auto ok = job.core->fold_events(id, fold); !ok) {
    job.done(ok.error());
    return;
  }
  auto state = job.core->folded_state();
  if (!state) {
    job.done(error{errc::no_wire_form, fmt::format("the state of {} is not a declared JSON type", id.type())});
    return;
  }
  job.done(state_at{std::move(*state), job.core->version(), reached_time, last, job.snapshot_version});
}

void read_from(const std::shared_ptr<fold_job>& job, std::uint64_t from) {
  const auto& stores = job->core->stores();
  stores->events->read_report(job->id, from, [job](expected<history_report> r) {
    if (!r) {
      job->done(error{r.error().code(),
                      fmt::format("reading the history of {}: {}", job->id.to_string(), r.error().detail()),
                      r.error().value()});
      return;
    }
    finish(*job, std::move(*r));
  });
}

} // namespace

void fold_state(actor_system& system, const actor_id& id, state_point point, state_callback done) {
  if (id.empty()) {
    done(error{errc::invalid_id, "the actor id is empty"});
    return;
  }
  if (point.at == state_point::kind::version && point.version == 0) {
    done(error{errc::invalid_argument, "version 0 is before the first event (versions start at 1)"});
    return;
  }
  auto job = std::make_shared<fold_job>();
  job->id = id;
  job->point = point;
  job->done = std::move(done);
  try {
    auto made = system.make_detached(id);
    if (!made) {
      job->done(made.error());
      return;
    }
    job->instance = std::move(*made);
  } catch (const std::exception& e) {
    job->done(error{errc::handler_failed, fmt::format("constructing a {}: {}", id.type(), e.what())});
    return;
  }
  job->core = dynamic_cast<detail::event_sourced_core*>(job->instance.get());
  if (job->core == nullptr) {
    job->done(
        error{errc::unknown_message_type, fmt::format("{} is not an event-sourced actor type: no fold", id.type())});
    return;
  }
  const auto& stores = job->core->stores();
  if (!stores || !stores->events) {
    job->done(error{errc::unavailable, fmt::format("the actor type {} has no event store", id.type())});
    return;
  }
  // Snapshots carry no time: a time point folds from the first event.
  if (point.at == state_point::kind::time || !stores->snapshots) {
    read_from(job, 1);
    return;
  }
  stores->snapshots->load(id, [job](expected<std::optional<snapshot>> s) {
    if (!s) {
      log(log_level::warn, "folding {}: ignoring its snapshot: {}", job->id.to_string(), s.error().to_string());
    } else if (*s && (job->point.at == state_point::kind::latest || (*s)->version <= job->point.version)) {
      if (auto ok = job->core->fold_snapshot(**s); ok) {
        job->snapshot_version = (*s)->version;
        // From the snapshot's own version: its event gives the time.
        read_from(job, (*s)->version);
        return;
      } else {
        log(log_level::warn, "folding {}: the snapshot at version {} does not restore ({}); folding every event",
            job->id.to_string(), (*s)->version, ok.error().detail());
      }
    }
    read_from(job, 1);
  });
}

expected<state_at> fold_state_wait(actor_system& system, const actor_id& id, state_point point) {
  return detail::wait_for<state_at>([&](auto cb) { fold_state(system, id, point, std::move(cb)); });
}

} // namespace aether
