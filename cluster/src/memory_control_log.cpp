#include <aether/cluster/memory_control_log.hpp>

#include <fmt/format.h>

#include <map>

namespace aether {

struct memory_control_log::shared {
  mutable std::recursive_mutex mutex;
  bool available = true;
  std::vector<control_record> records;
  std::set<std::string, std::less<>> subjects;
  std::uint64_t next_follower = 1;
  std::map<std::uint64_t, std::shared_ptr<control_log_follower>> followers;
};

namespace {
class memory_follow final : public control_log_follow {
public:
  memory_follow(std::weak_ptr<memory_control_log::shared> s, std::uint64_t id) : shared_{std::move(s)}, id_{id} {}
  ~memory_follow() override {
    if (auto s = shared_.lock()) {
      std::lock_guard lock{s->mutex};
      s->followers.erase(id_);
    }
  }
  memory_follow(const memory_follow&) = delete;
  memory_follow& operator=(const memory_follow&) = delete;

private:
  std::weak_ptr<memory_control_log::shared> shared_;
  std::uint64_t id_;
};
} // namespace

memory_control_log::memory_control_log() : shared_{std::make_shared<shared>()} {}
memory_control_log::~memory_control_log() = default;

void memory_control_log::append(std::string subject, std::string data, append_done done) {
  std::unique_lock lock{shared_->mutex};
  if (!shared_->available) {
    lock.unlock();
    done(error{errc::unavailable, "the control log is unavailable"});
    return;
  }
  if (shared_->subjects.contains(subject)) {
    lock.unlock();
    done(error{errc::version_conflict, fmt::format("{} holds a record already", subject)});
    return;
  }
  const auto seq = shared_->records.size() + 1;
  shared_->subjects.insert(subject);
  shared_->records.push_back(control_record{seq, std::move(subject), std::move(data)});
  const auto record = shared_->records.back();
  // Delivered under the lock: every follower sees the records in log order.
  auto followers = shared_->followers;
  for (auto& [id, f] : followers) f->on_record(record);
  lock.unlock();
  done(seq);
}

expected<std::unique_ptr<control_log_follow>> memory_control_log::follow(control_log_follower f) {
  std::lock_guard lock{shared_->mutex};
  auto follower = std::make_shared<control_log_follower>(std::move(f));
  for (const auto& r : shared_->records) follower->on_record(r);
  if (follower->on_caught_up) follower->on_caught_up();
  const auto id = shared_->next_follower++;
  shared_->followers.emplace(id, std::move(follower));
  return std::unique_ptr<control_log_follow>{new memory_follow{shared_, id}};
}

void memory_control_log::set_available(bool available) {
  std::lock_guard lock{shared_->mutex};
  shared_->available = available;
}

std::vector<control_record> memory_control_log::records() const {
  std::lock_guard lock{shared_->mutex};
  return shared_->records;
}

} // namespace aether
