#include <aether/cluster/failure_detector.hpp>

namespace aether {

void failure_detector::watch(const member_id& m, time_point now) { last_heard_[m] = now; }

void failure_detector::forget(const member_id& m) { last_heard_.erase(m); }

void failure_detector::heard(const member_id& m, time_point now) {
  if (auto it = last_heard_.find(m); it != last_heard_.end() && it->second < now) it->second = now;
}

bool failure_detector::suspected(const member_id& m, time_point now) const {
  const auto it = last_heard_.find(m);
  return it != last_heard_.end() && now - it->second > timeout_;
}

std::vector<member_id> failure_detector::suspects(time_point now) const {
  std::vector<member_id> out;
  for (const auto& [m, t] : last_heard_) {
    if (now - t > timeout_) out.push_back(m);
  }
  return out;
}

void failure_detector::restart(time_point now) {
  for (auto& entry : last_heard_) entry.second = now;
}

} // namespace aether
