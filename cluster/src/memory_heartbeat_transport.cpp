#include <aether/cluster/memory_heartbeat_transport.hpp>

#include <map>
#include <mutex>
#include <set>

namespace aether {

struct memory_heartbeat_transport::shared {
  std::recursive_mutex mutex;
  std::uint64_t next = 1;
  std::map<std::uint64_t, std::shared_ptr<std::function<void(const heartbeat&)>>> handlers;
  std::set<std::string> silent;
};

namespace {
class memory_subscription final : public heartbeat_subscription {
public:
  memory_subscription(std::weak_ptr<memory_heartbeat_transport::shared> s, std::uint64_t id)
      : shared_{std::move(s)}, id_{id} {}
  ~memory_subscription() override {
    if (auto s = shared_.lock()) {
      std::lock_guard lock{s->mutex};
      s->handlers.erase(id_);
    }
  }
  memory_subscription(const memory_subscription&) = delete;
  memory_subscription& operator=(const memory_subscription&) = delete;

private:
  std::weak_ptr<memory_heartbeat_transport::shared> shared_;
  std::uint64_t id_;
};
} // namespace

memory_heartbeat_transport::memory_heartbeat_transport() : shared_{std::make_shared<shared>()} {}
memory_heartbeat_transport::~memory_heartbeat_transport() = default;

expected<void> memory_heartbeat_transport::publish(const heartbeat& hb) {
  std::lock_guard lock{shared_->mutex};
  if (shared_->silent.contains(hb.from.node)) return {};
  auto handlers = shared_->handlers;
  for (auto& [id, h] : handlers) (*h)(hb);
  return {};
}

expected<std::unique_ptr<heartbeat_subscription>>
memory_heartbeat_transport::subscribe(std::function<void(const heartbeat&)> handler) {
  std::lock_guard lock{shared_->mutex};
  const auto id = shared_->next++;
  shared_->handlers.emplace(id, std::make_shared<std::function<void(const heartbeat&)>>(std::move(handler)));
  return std::unique_ptr<heartbeat_subscription>{new memory_subscription{shared_, id}};
}

void memory_heartbeat_transport::silence(const std::string& node, bool silent) {
  std::lock_guard lock{shared_->mutex};
  if (silent) {
    shared_->silent.insert(node);
  } else {
    shared_->silent.erase(node);
  }
}

} // namespace aether
