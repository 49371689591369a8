#include "state_wire.hpp"
#include "subjects.hpp"

#include <aether/cluster/state_query.hpp>

#include <fmt/format.h>

namespace aether {

expected<state_at> query_state(nats::connection& conn, const actor_id& id, state_point point,
                               std::chrono::milliseconds timeout) {
  if (id.empty()) return error{errc::invalid_id, "the actor id is empty"};
  if (timeout.count() <= 0) return error{errc::invalid_argument, "the timeout must be positive"};
  if (!conn.connected()) return error{errc::unavailable, "querying state: not connected to a NATS server"};
  state_wire::request r{id.to_string(), std::string{state_wire::at_name(point.at)}, point.version, point.time_ns};
  const auto subject = cluster_subjects::state_request(id.type());
  auto reply = conn.request(subject, json::encode(r), timeout);
  if (!reply) {
    const auto& e = reply.error();
    if (e.code() == errc::not_found) {
      return error{
          errc::unknown_actor_type,
          fmt::format("no node serves state queries for actor type {} (no responders on {})", id.type(), subject)};
    }
    if (e.code() == errc::timeout) {
      return error{errc::timeout, fmt::format("no node answered the state query for {} within {} ms", id.to_string(),
                                              timeout.count())};
    }
    return e;
  }
  auto a = json::decode<state_wire::answer>(reply->data);
  if (!a) return error{errc::malformed_payload, fmt::format("a state answer: {}", a.error().detail())};
  if (a->error) {
    const auto code = state_wire::errc_named(*a->error);
    if (!code) {
      return error{errc::malformed_payload,
                   fmt::format("a state answer names an unknown error {:?}: {}", *a->error, a->detail)};
    }
    return error{*code, a->detail, a->value};
  }
  return state_at{std::move(a->state.text), a->version, a->timestamp_ns, a->last_version, a->snapshot_version};
}

} // namespace aether
