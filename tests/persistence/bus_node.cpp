// A node process on the event bus, for tests across processes.
//
//   bus_node <nats-url> publish <ns>[,<ns>...] <count> <first>
//     Deposits into the event-sourced account `account/acc` of <ns> <count>
//     times (persisted events) and publishes <count> `notice/n` events with
//     versions <first>, <first>+1, ... (published events). Its own live
//     subscriber counts what it gets; once it has them all (or after 10 s)
//     it prints "own <n>" and exits.
//   bus_node <nats-url> subscribe <ns> [<durable name> [<hold after>]]
//     Prints "E <type>/<key> <version> <sequence> <ns>" per event.
//   bus_node <nats-url> watch <pattern>...
//     A live subscription per namespace pattern; prints
//     "M <pattern index> <ns> <type>/<key> <version>" per event.
//     Prints "ready" once subscribed, then "E <type>/<key> <version>
//     <sequence>" for every event, until SIGTERM. With <hold after> N > 0 the
//     handler of the (N+1)-th event blocks before it prints anything, until
//     the process is killed: a subscriber stuck mid-stream.
#include "bank.hpp"

#include <aether/aether.hpp>

#include <atomic>
#include <cstdio>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

aether::node_config config(const char* url) {
  aether::node_config cfg;
  cfg.nats_url = url;
  cfg.threads = 2;
  cfg.system.shard_count = 8;
  // Processes of a test run side by side: each is a node of its own.
  cfg.cluster.node_id = "bus-" + std::to_string(::getpid());
  // Each runs the actors it is sent: the bus is under test, not routing.
  cfg.cluster.route_messages = false;
  return cfg;
}

int publish(aether::node& node, const std::string& namespaces, int count, std::uint64_t first) {
  std::atomic<int> own{0};
  std::vector<aether::event_subscription> subs;
  std::vector<std::string> list;
  for (std::size_t start = 0;;) {
    const auto comma = namespaces.find(',', start);
    list.push_back(namespaces.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (const auto& ns : list) {
    auto sub = node.bus().subscribe(ns, {}, [&own](const aether::event&) { own.fetch_add(1); });
    if (!sub) {
      std::fprintf(stderr, "bus_node: %s\n", sub.error().to_string().c_str());
      return 1;
    }
    subs.push_back(std::move(*sub));
  }
  for (const auto& ns : list) {
    const aether::actor_id account{"account", "acc", ns};
    for (int i = 0; i < count; ++i) {
      auto r = node.ask<std::int64_t>(account, bank::deposit{1}, std::chrono::seconds{10}).get();
      aether::event e;
      e.actor = aether::actor_id{"notice", "n", ns};
      e.type = "noticed";
      e.version = first + static_cast<std::uint64_t>(i);
      auto p = node.bus().publish(ns, std::move(e));
      if (!r || !p) {
        std::fprintf(stderr, "bus_node: %s\n", (!r ? r.error() : p.error()).to_string().c_str());
        return 1;
      }
    }
  }
  const auto all = 2 * count * static_cast<int>(list.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (own.load() < all && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  std::printf("own %d\n", own.load());
  std::fflush(stdout);
  return 0;
}

int subscribe(aether::node& node, const std::string& ns, const std::string& durable, int hold_after) {
  std::mutex out;
  aether::subscribe_options o;
  o.durable = durable;
  o.buffer = 64;
  // Deliveries may start before subscribe returns: "ready" still comes first.
  std::unique_lock ready{out};
  auto sub = node.bus().subscribe(
      ns, {},
      [&out, hold_after, handled = 0](const aether::event& e) mutable {
        if (hold_after > 0 && handled++ == hold_after) {
          std::promise<void> never;
          never.get_future().wait(); // until the process is killed
        }
        std::lock_guard lock{out};
        std::printf("E %s/%s %llu %llu %s\n", std::string{e.actor.type()}.c_str(), std::string{e.actor.key()}.c_str(),
                    static_cast<unsigned long long>(e.version), static_cast<unsigned long long>(e.sequence),
                    std::string{e.actor.ns()}.c_str());
        std::fflush(stdout);
      },
      o);
  if (!sub) {
    std::fprintf(stderr, "bus_node: %s\n", sub.error().to_string().c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  ready.unlock();
  return node.run(); // closing the bus ends the subscription, acknowledgements recorded
}

int watch(aether::node& node, const std::vector<std::string>& patterns) {
  std::mutex out;
  std::vector<aether::event_subscription> subs;
  std::unique_lock ready{out};
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    auto sub = node.bus().subscribe(patterns[i], {}, [&out, i](const aether::event& e) {
      std::lock_guard lock{out};
      std::printf("M %zu %s %s/%s %llu\n", i, std::string{e.actor.ns()}.c_str(), std::string{e.actor.type()}.c_str(),
                  std::string{e.actor.key()}.c_str(), static_cast<unsigned long long>(e.version));
      std::fflush(stdout);
    });
    if (!sub) {
      std::fprintf(stderr, "bus_node: %s: %s\n", patterns[i].c_str(), sub.error().to_string().c_str());
      return 1;
    }
    subs.push_back(std::move(*sub));
  }
  std::printf("ready\n");
  std::fflush(stdout);
  ready.unlock();
  return node.run();
}

} // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 2 ? argv[2] : "";
  if (argc < 4 || (mode == "publish" && argc != 6) || (mode != "publish" && mode != "subscribe" && mode != "watch")) {
    std::fprintf(stderr, "usage: bus_node <nats-url> publish <ns> <count> <first>\n"
                         "       bus_node <nats-url> subscribe <ns> [<durable name> [<hold after>]]\n"
                         "       bus_node <nats-url> watch <pattern>...\n");
    return 2;
  }
  try {
    aether::node node{config(argv[1])};
    node.register_event_sourced<bank::account>("account");
    if (mode == "publish") return publish(node, argv[3], std::stoi(argv[4]), std::stoull(argv[5]));
    if (mode == "watch") return watch(node, std::vector<std::string>(argv + 3, argv + argc));
    return subscribe(node, argv[3], argc > 4 ? argv[4] : "", argc > 5 ? std::stoi(argv[5]) : 0);
  } catch (const aether::startup_error& e) {
    std::fprintf(stderr, "bus_node: %s\n", e.what());
    return 1;
  }
}
