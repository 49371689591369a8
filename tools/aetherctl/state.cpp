// state: an event-sourced actor's state folded to a point, answered by a
// node that has the actor's type registered (`aether::query_state`); the
// live actor is never touched and nothing is written.

#include "aetherctl.hpp"

#include <aether/actors/actor_id.hpp>
#include <aether/cluster/state_query.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace aetherctl {

namespace {

constexpr std::chrono::seconds query_timeout{10};

struct state_json {
  std::string actor;
  std::uint64_t version = 0;
  std::string time;
  std::int64_t timestamp_ns = 0;
  std::uint64_t last_version = 0;
  std::uint64_t snapshot_version = 0;
  aether::json::raw state;
};
AETHER_JSON_FIELDS(state_json, actor, version, time, timestamp_ns, last_version, snapshot_version, state)

} // namespace

int run_state(const command_line& cl) {
  cl.expect(1, 1, 1, {"at-version", "at-time"});
  const auto& text = cl.words[1];
  if (std::count(text.begin(), text.end(), '/') != 2) {
    bad_input(fmt::format("actor id '{}': write it NS/TYPE/KEY (e.g. shop/account/alice)", text));
  }
  auto id = aether::actor_id::parse(text);
  if (!id) bad_input(fmt::format("actor id '{}': {}", text, id.error().detail()));
  const auto at_version = number_option(cl, "at-version");
  const auto at_time = time_option(cl, "at-time");
  if (at_version && at_time) bad_input("state: give --at-version or --at-time, not both");
  if (at_version && *at_version == 0) bad_input("--at-version 0: versions start at 1");
  const auto point = at_version ? aether::state_point::at_version(*at_version)
                     : at_time  ? aether::state_point::at_time(*at_time)
                                : aether::state_point::latest();
  auto conn = connect(cl);
  const auto stream = aether::jetstream_event_store::stream_name(id->ns());
  if (auto count = conn->stream_message_count(stream); !count) {
    if (count.error().code() == aether::errc::not_found) {
      bad_input(fmt::format("unknown namespace '{}': it has no event stream ({})", id->ns(), stream));
    }
    fail(count.error(), fmt::format("reading stream {}", stream));
  }
  auto folded = aether::query_state(*conn, *id, point, query_timeout);
  if (!folded) {
    const auto& e = folded.error();
    const auto why = aether::state_failure_of(e);
    const auto message = fmt::format("state of {}: {} ({})", id->to_string(), e.to_string(), aether::to_string(why));
    // What the input names does not exist, or the point lies outside the history.
    const bool input = why == aether::state_failure::unknown_type || why == aether::state_failure::not_event_sourced ||
                       why == aether::state_failure::no_events || why == aether::state_failure::beyond_last_version ||
                       why == aether::state_failure::before_first_event;
    throw failure{input ? exit_bad_input : exit_failed, message};
  }
  state_json out;
  out.actor = id->to_string();
  out.version = folded->version;
  out.time = format_time(folded->timestamp_ns);
  out.timestamp_ns = folded->timestamp_ns;
  out.last_version = folded->last_version;
  out.snapshot_version = folded->snapshot_version;
  out.state.text = folded->state;
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  std::printf(
      "%s at version %llu of %llu (%s)%s\n%s\n", out.actor.c_str(), static_cast<unsigned long long>(out.version),
      static_cast<unsigned long long>(out.last_version), out.time.c_str(),
      out.snapshot_version == 0 ? "" : fmt::format(", from the snapshot at version {}", out.snapshot_version).c_str(),
      folded->state.c_str());
  return exit_ok;
}

} // namespace aetherctl
