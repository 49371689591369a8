// A node process under load, for fault tests: clients deposit into their own
// event-sourced accounts, one command at a time, each deposit named
// (<account>-<n>) and of 1 to 7 cents, and print every acknowledged one as
// "ack <account> <deposit> <cents> <balance>"; any other answer as
// "fail <account> <deposit> <error>". Deposits are named <account>-<run>-<n>.
//
//   load_node <nats-url> <clients> <run>
#include "bank.hpp"

#include <aether/aether.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: load_node <nats-url> <clients> <run>\n");
    return 2;
  }
  aether::node_config cfg;
  cfg.nats_url = argv[1];
  cfg.threads = 2;
  cfg.system.shard_count = 8;
  cfg.snapshot_every = 25;
  // Processes of a test may run side by side: each is a node of its own, in
  // a cluster of its own (one per run), so that two of them hosting the same
  // accounts race through the store instead of routing to one owner.
  cfg.cluster.node_id = "load-" + std::string{argv[3]} + "-" + std::to_string(::getpid());
  cfg.cluster.name = "load-" + std::string{argv[3]};
  try {
    aether::node node{cfg};
    node.register_event_sourced<bank::account>("account");
    std::vector<std::thread> clients;
    for (int c = 0; c < std::stoi(argv[2]); ++c) {
      clients.emplace_back([&node, c, run = std::string{argv[3]}] {
        const aether::actor_id account{"account", "load-" + std::to_string(c)};
        const std::string key{account.key()};
        for (long n = 1;; ++n) {
          const std::int64_t cents = 1 + n % 7;
          const auto memo = key + "-" + run + "-" + std::to_string(n);
          auto r = node.ask<std::int64_t>(account, bank::deposit{cents, memo}, std::chrono::seconds{10}).get();
          // One whole line per answer, so a reader never sees half of one.
          if (r) {
            std::printf("ack %s %s %lld %lld\n", key.c_str(), memo.c_str(), static_cast<long long>(cents),
                        static_cast<long long>(*r));
          } else {
            std::printf("fail %s %s %s\n", key.c_str(), memo.c_str(), r.error().to_string().c_str());
          }
          std::fflush(stdout);
          if (!r && r.error().code() == aether::errc::shutting_down) return;
        }
      });
    }
    const int code = node.run();
    for (auto& t : clients) t.join();
    return code;
  } catch (const aether::startup_error& e) {
    std::fprintf(stderr, "load_node: %s\n", e.what());
    return 1;
  }
}
