// A node process for the cluster tests: configured by the AETHER_*
// variables, it prints one line per change it applies, flushed at once:
//
//   ready <self>
//   view <self> term=<T> leader=<member|none> epoch=<E> serving=<0|1> alive=<a,b,...>
//   map <self> <E> <term> <owner of shard 0> <owner of shard 1> ...
//   error <what>                 (it could not start; exit code 3)
//
// A member is `node/incarnation`; an owner `-` is none. It runs until SIGTERM.
#include <aether/aether.hpp>

#include <cstdio>
#include <mutex>
#include <string>

namespace {

std::mutex out_mutex;

void line(const std::string& text) {
  std::lock_guard lock{out_mutex};
  std::fputs(text.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string name(const aether::member_id& m) { return m.empty() ? "none" : m.to_string(); }

} // namespace

int main() {
  auto cfg = aether::node_config::from_env();
  if (!cfg) {
    line("error " + cfg.error().to_string());
    return 3;
  }
  cfg->threads = 2;
  cfg->system.shard_count = 4;
  try {
    aether::node node{*cfg};
    std::uint64_t last_epoch = 0;
    auto print = [&last_epoch](const aether::cluster_snapshot& s) {
      std::string alive;
      for (const auto& m : s.alive_members()) alive += (alive.empty() ? "" : ",") + name(m);
      line(fmt::format("view {} term={} leader={} epoch={} serving={} alive={}", name(s.self), s.term, name(s.leader),
                       s.epoch(), s.serving ? 1 : 0, alive));
      if (s.epoch() != last_epoch) {
        last_epoch = s.epoch();
        std::string owners;
        for (const auto& o : s.map->owners()) owners += " " + (o.empty() ? std::string{"-"} : o.to_string());
        line(fmt::format("map {} {} {}{}", name(s.self), s.epoch(), s.map->term(), owners));
      }
    };
    // The watch sees every change from now on; the snapshot what came before.
    std::mutex m;
    auto watch = node.cluster().watch([&](const aether::cluster_snapshot& s) {
      std::lock_guard lock{m};
      print(s);
    });
    {
      std::lock_guard lock{m};
      print(*node.cluster().snapshot());
    }
    line("ready " + name(node.cluster().snapshot()->self));
    return node.run();
  } catch (const aether::startup_error& e) {
    line(std::string{"error "} + e.what());
    return 3;
  }
}
