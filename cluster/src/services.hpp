#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace aether {

/// The node's services, started in order and stopped in reverse.
///
/// `start` runs a service's start step; if it throws, the services started
/// before are stopped (in reverse) and the exception goes on. `stop_all`
/// stops every started service once, last started first.
///
/// Thread-safety: none; the node serialises start and stop.
class services {
public:
  services() = default;
  services(const services&) = delete;
  services& operator=(const services&) = delete;
  ~services() { stop_all(); }

  template <class Start>
  void start(std::string name, Start&& start_step, std::function<void()> stop_step) {
    try {
      std::forward<Start>(start_step)();
    } catch (...) {
      stop_all();
      throw;
    }
    started_.emplace_back(std::move(name), std::move(stop_step));
  }

  void stop_all() noexcept {
    while (!started_.empty()) {
      auto s = std::move(started_.back());
      started_.pop_back();
      if (s.second) {
        try {
          s.second();
        } catch (...) { // a stop step never keeps the others from stopping
        }
      }
    }
  }

private:
  std::vector<std::pair<std::string, std::function<void()>>> started_;
};

} // namespace aether
