#include "subjects.hpp"

#include <aether/actors/actor_id.hpp>
#include <aether/cluster/nats_heartbeat_transport.hpp>
#include <aether/runtime/json.hpp>

namespace aether {

namespace {

struct heartbeat_body {
  std::string node;
  std::uint64_t incarnation = 0;
  std::uint64_t sequence = 0;
  std::uint64_t term = 0;
  std::uint64_t epoch = 0;
};
AETHER_JSON_FIELDS(heartbeat_body, node, incarnation, sequence, term, epoch)

class nats_heartbeat_subscription final : public heartbeat_subscription {
public:
  explicit nats_heartbeat_subscription(nats::subscription s) : sub_{std::move(s)} {}

private:
  nats::subscription sub_;
};

} // namespace

nats_heartbeat_transport::nats_heartbeat_transport(std::shared_ptr<nats::connection> conn, std::string cluster)
    : conn_{std::move(conn)}, cluster_{std::move(cluster)} {}

expected<void> nats_heartbeat_transport::publish(const heartbeat& hb) {
  const heartbeat_body body{hb.from.node, hb.from.incarnation, hb.sequence, hb.term, hb.epoch};
  return conn_->publish(cluster_subjects::heartbeat(cluster_, hb.from.node, hb.from.incarnation), json::encode(body));
}

expected<std::unique_ptr<heartbeat_subscription>>
nats_heartbeat_transport::subscribe(std::function<void(const heartbeat&)> handler) {
  auto sub = conn_->subscribe(cluster_subjects::heartbeat_all(cluster_),
                              [handler = std::move(handler)](const nats::message_view& m) {
                                auto body = json::decode<heartbeat_body>(m.data());
                                if (!body || !actor_id::validate_part(body->node, "node id")) return;
                                heartbeat hb;
                                hb.from = member_id{body->node, body->incarnation};
                                hb.sequence = body->sequence;
                                hb.term = body->term;
                                hb.epoch = body->epoch;
                                handler(hb);
                              });
  if (!sub) return sub.error();
  return std::unique_ptr<heartbeat_subscription>{new nats_heartbeat_subscription{std::move(*sub)}};
}

} // namespace aether
