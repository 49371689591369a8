#include "state_service.hpp"

#include "state_wire.hpp"
#include "subjects.hpp"

#include <aether/actors/actor_system.hpp>
#include <aether/persistence/state_fold.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

namespace aether {

struct state_service::shared {
  std::shared_ptr<nats::connection> conn;
  std::string node;
  // Held while a handler uses the system; `system` is null once stopped.
  std::mutex mutex;
  actor_system* system = nullptr;
};

namespace {

void answer(const std::shared_ptr<state_service::shared>& s, const std::string& reply, const state_wire::answer& a) {
  if (reply.empty()) return;
  if (auto sent = s->conn->publish(reply, json::encode(a)); !sent) {
    log(log_level::debug, "state query: the answer to {} was not sent: {}", reply, sent.error().to_string());
  }
}

state_wire::answer failed(const std::shared_ptr<state_service::shared>& s, const error& e) {
  state_wire::answer a;
  a.error = std::string{to_string(e.code())};
  a.detail = e.detail();
  a.value = e.value();
  a.node = s->node;
  return a;
}

void handle(const std::shared_ptr<state_service::shared>& s, std::string_view type, const nats::message_view& m) {
  std::string reply{m.reply()};
  auto r = json::decode<state_wire::request>(m.data());
  if (!r) {
    answer(s, reply, failed(s, error{errc::malformed_payload, fmt::format("state request: {}", r.error().detail())}));
    return;
  }
  auto id = actor_id::parse(r->actor);
  if (!id) {
    answer(s, reply, failed(s, id.error()));
    return;
  }
  if (id->type() != type) {
    answer(s, reply,
           failed(s, error{errc::invalid_argument,
                           fmt::format("{} was asked on the state subject of type {}", id->to_string(), type)}));
    return;
  }
  const auto kind = state_wire::at_kind(r->at);
  if (!kind) {
    answer(s, reply,
           failed(s, error{errc::malformed_payload,
                           fmt::format("state request: 'at' is {:?}, not latest, version or time", r->at)}));
    return;
  }
  const state_point point{*kind, r->version, r->time_ns};
  std::lock_guard lock{s->mutex};
  if (s->system == nullptr) {
    answer(s, reply, failed(s, error{errc::shutting_down, fmt::format("node {} is stopping", s->node)}));
    return;
  }
  fold_state(*s->system, *id, point, [s, reply = std::move(reply)](expected<state_at> folded) {
    if (!folded) {
      answer(s, reply, failed(s, folded.error()));
      return;
    }
    state_wire::answer a;
    a.state.text = std::move(folded->state);
    a.version = folded->version;
    a.timestamp_ns = folded->timestamp_ns;
    a.last_version = folded->last_version;
    a.snapshot_version = folded->snapshot_version;
    a.node = s->node;
    answer(s, reply, a);
  });
}

} // namespace

state_service::state_service(std::shared_ptr<nats::connection> conn, actor_system& system, std::string node_name)
    : shared_{std::make_shared<shared>()} {
  shared_->conn = std::move(conn);
  shared_->node = std::move(node_name);
  shared_->system = &system;
}

state_service::~state_service() { stop(); }

expected<void> state_service::serve(std::string_view type) {
  std::lock_guard lock{mutex_};
  if (subscriptions_.contains(type)) return {};
  {
    std::lock_guard running{shared_->mutex};
    if (shared_->system == nullptr) return error{errc::shutting_down, "the state service stopped"};
  }
  auto sub = shared_->conn->queue_subscribe(
      cluster_subjects::state_request(type), cluster_subjects::state_queue,
      [s = shared_, t = std::string{type}](const nats::message_view& m) { handle(s, t, m); });
  if (!sub) return sub.error();
  // Answers only once the server knows of the subscription: a query right
  // after registration must not hear "no responders".
  if (auto flushed = shared_->conn->flush(std::chrono::seconds{5}); !flushed) return flushed.error();
  subscriptions_.emplace(std::string{type}, std::move(*sub));
  return {};
}

void state_service::stop() {
  {
    std::lock_guard lock{mutex_};
    subscriptions_.clear();
  }
  // A handler running now holds this lock while it uses the system.
  std::lock_guard running{shared_->mutex};
  shared_->system = nullptr;
}

} // namespace aether
