#pragma once

// The request and answer of a state query on NATS (docs/WIRE_FORMAT.md,
// "State queries"), shared by the nodes' service and the client.

#include <aether/persistence/state_fold.hpp>
#include <aether/runtime/error.hpp>
#include <aether/runtime/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aether::state_wire {

/// Which actor, and to where: `at` is "latest", "version" or "time".
struct request {
  static constexpr std::string_view type_name = "aether.state_request";
  std::string actor; ///< its text form, `ns/type/key`
  std::string at;
  std::uint64_t version = 0;
  std::int64_t time_ns = 0;
};
AETHER_JSON_FIELDS(request, actor, at, version, time_ns)

/// The folded state, or the fold's error (`error` its errc name, `detail`,
/// `value`); `node` names the node that folded.
struct answer {
  static constexpr std::string_view type_name = "aether.state_answer";
  std::optional<std::string> error;
  std::string detail;
  std::uint64_t value = 0;
  json::raw state;
  std::uint64_t version = 0;
  std::int64_t timestamp_ns = 0;
  std::uint64_t last_version = 0;
  std::uint64_t snapshot_version = 0;
  std::string node;
};
AETHER_JSON_FIELDS(answer, error, detail, value, state, version, timestamp_ns, last_version, snapshot_version, node)

[[nodiscard]] inline std::string_view at_name(state_point::kind k) noexcept {
  switch (k) {
  case state_point::kind::latest:
    return "latest";
  case state_point::kind::version:
    return "version";
  case state_point::kind::time:
    return "time";
  }
  return "latest";
}

[[nodiscard]] inline std::optional<state_point::kind> at_kind(std::string_view name) noexcept {
  if (name == "latest") return state_point::kind::latest;
  if (name == "version") return state_point::kind::version;
  if (name == "time") return state_point::kind::time;
  return std::nullopt;
}

/// The `errc` named `name`, if any.
[[nodiscard]] inline std::optional<errc> errc_named(std::string_view name) noexcept {
  for (int c = static_cast<int>(errc::invalid_id); to_string(static_cast<errc>(c)) != "unknown"; ++c) {
    if (to_string(static_cast<errc>(c)) == name) return static_cast<errc>(c);
  }
  return std::nullopt;
}

} // namespace aether::state_wire
