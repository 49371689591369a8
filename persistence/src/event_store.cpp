#include <aether/persistence/event_store.hpp>

#include "stored_event.hpp"

#include "wait.hpp"

#include <fmt/format.h>

#include <mutex>
#include <unordered_map>

namespace aether {

expected<append_result> event_store::append_wait(const actor_id& actor, std::uint64_t expected_version,
                                                 std::vector<event> events) {
  return detail::wait_for<append_result>(
      [&](auto cb) { append(actor, expected_version, std::move(events), std::move(cb)); });
}

expected<std::vector<event>> event_store::read_wait(const actor_id& actor, std::uint64_t from_version) {
  return detail::wait_for<std::vector<event>>([&](auto cb) { read(actor, from_version, 0, std::move(cb)); });
}

expected<std::uint64_t> event_store::latest_version_wait(const actor_id& actor) {
  return detail::wait_for<std::uint64_t>([&](auto cb) { latest_version(actor, std::move(cb)); });
}

void event_store::read_report(const actor_id& actor, std::uint64_t from_version, report_callback done) {
  read(actor, from_version, 0, [done = std::move(done)](expected<std::vector<event>> events) mutable {
    if (events) {
      done(history_report{std::move(*events), {}, {}});
    } else {
      done(events.error());
    }
  });
}

expected<history_report> event_store::read_report_wait(const actor_id& actor, std::uint64_t from_version) {
  return detail::wait_for<history_report>([&](auto cb) { read_report(actor, from_version, std::move(cb)); });
}

struct memory_event_store::impl {
  std::mutex mutex;
  // Keyed by the id itself: namespace, type and key all take part.
  std::unordered_map<actor_id, std::vector<event>> histories;
};

memory_event_store::memory_event_store() : impl_{std::make_unique<impl>()} {}
memory_event_store::~memory_event_store() = default;

void memory_event_store::append(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events,
                                append_callback done) {
  if (auto ok = detail::prepare_append(actor, expected_version, events); !ok) {
    done(ok.error());
    return;
  }
  expected<append_result> result = append_result{};
  const auto& watch = watcher();
  std::vector<event> stored;
  if (watch) stored = events;
  {
    std::lock_guard lock{impl_->mutex};
    auto& history = impl_->histories[actor];
    if (history.size() != expected_version) {
      result = error{errc::version_conflict,
                     fmt::format("{} is at version {}, not {}", actor.to_string(), history.size(), expected_version),
                     history.size()};
    } else {
      result = append_result{expected_version + 1, expected_version + events.size(), 0};
      for (auto& e : events) history.push_back(std::move(e));
    }
  }
  if (watch && result) (*watch)(stored);
  done(std::move(result));
}

void memory_event_store::read(const actor_id& actor, std::uint64_t from_version, std::uint64_t, read_callback done) {
  std::vector<event> out;
  {
    std::lock_guard lock{impl_->mutex};
    if (auto it = impl_->histories.find(actor); it != impl_->histories.end()) {
      const auto first = std::max<std::uint64_t>(from_version, 1);
      for (auto v = first; v <= it->second.size(); ++v) out.push_back(it->second[v - 1]);
    }
  }
  done(std::move(out));
}

void memory_event_store::latest_version(const actor_id& actor, version_callback done) {
  std::uint64_t v = 0;
  {
    std::lock_guard lock{impl_->mutex};
    if (auto it = impl_->histories.find(actor); it != impl_->histories.end()) v = it->second.size();
  }
  done(v);
}

} // namespace aether
